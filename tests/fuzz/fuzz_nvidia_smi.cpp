// libFuzzer target: every nvidia-smi / procfs parser in detect/nvidia_smi.h on the same
// bytes. They must never crash, hang or read out of bounds, whatever the input; a parse
// that succeeds must give values within the documented bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "detect/nvidia_smi.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (bool cc : {true, false}) {
    auto r = cyllm::detect::parse_smi_query_gpu(text, cc);
    if (r.ok()) {
      for (const auto& g : r->gpus) {
        if (g.index < 0 || g.index >= (1 << 16)) std::abort();
        if (g.vram_total_bytes % 1048576 != 0) std::abort();
        if (!cc && !g.compute_capability.empty()) std::abort();
      }
    }
  }
  (void)cyllm::detect::parse_smi_invalid_field(text);
  if (auto l = cyllm::detect::parse_smi_list(text); l.ok())
    for (const auto& g : *l)
      if (g.uuid.empty()) std::abort();
  (void)cyllm::detect::parse_smi_cuda_version(text);
  (void)cyllm::detect::parse_proc_driver_version(text);
  auto half = text.size() / 2;
  if (cyllm::detect::smi_failure_message(text.substr(0, half), text.substr(half)).size() > 200)
    std::abort();
  return 0;
}
