// libFuzzer target: the registry loader on untrusted bytes, read once as YAML and once as
// JSON (a user's --registry file). Must never crash, hang or throw.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cyllm/external.h"
#include "cyllm/registry.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  for (const char* name : {"fuzz.yaml", "fuzz.json"}) {
    auto r = cyllm::registry::load_registry_from_strings({{name, text}});
    if (!r.ok()) {
      (void)r.error().to_string();
      continue;
    }
    (void)r->rows_for_engine("vllm");
    // Every launcher the input defines, rendered (templates, config trees, extras).
    for (const auto& l : r->launchers) {
      cyllm::external::LaunchInputs in;
      in.engine = l.engine;
      in.model = "/m";
      in.port = 8000;
      in.work_dir = "/w";
      in.ray_address = "h:6379";
      in.nnodes = 2;
      in.config.tensor_parallel_size = 2;
      in.config.extra_config = {{"a.b", "1"}, {"L[0].x", "true"}};
      if (auto spec = cyllm::external::build_launch(*r, in)) (void)cyllm::external::format_launch(*spec);
      if (auto plan = cyllm::external::build_multinode_launch(*r, in))
        (void)cyllm::external::format_multinode_launch(*plan);
    }
  }
  return 0;
}
