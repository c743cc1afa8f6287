// libFuzzer target: the registry loader on untrusted bytes, read once as YAML and once as
// JSON (a user's --registry file). Must never crash, hang or throw.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cyllm/registry.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  for (const char* name : {"fuzz.yaml", "fuzz.json"}) {
    auto r = cyllm::registry::load_registry_from_strings({{name, text}});
    if (r.ok()) (void)r->rows_for_engine("vllm");
    else (void)r.error().to_string();
  }
  return 0;
}
