// libFuzzer target: reading a HardwareProfile from untrusted JSON (cy-llm-resolve's input).
#include <cstddef>
#include <cstdint>

#include "cyllm/detect.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto doc = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return 0;
  if (auto p = cyllm::detect::profile_from_json(doc); p.ok()) {
    (void)cyllm::detect::to_json(*p);
    (void)cyllm::detect::to_text(*p);
  }
  return 0;
}
