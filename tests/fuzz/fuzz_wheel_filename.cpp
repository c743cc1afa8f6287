// libFuzzer target: wheel filenames and tag compatibility.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cyllm/wheel.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto w = cyllm::wheel::parse_wheel_filename(text);
  if (!w.ok()) return 0;
  cyllm::wheel::TargetEnvironment t;
  static const auto supported = cyllm::wheel::supported_tags(t);
  if (!cyllm::wheel::wheel_rank(*w, supported)) (void)cyllm::wheel::explain_incompatibility(*w, t);
  return 0;
}
