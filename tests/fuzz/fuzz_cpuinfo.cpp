// libFuzzer target: /proc/cpuinfo and /proc/meminfo parsers.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "detect/cpu.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto s = cyllm::detect::parse_cpuinfo(text); s.ok())
    (void)cyllm::detect::canonical_isa(s->raw_flags, s->architecture);
  (void)cyllm::detect::parse_meminfo(text);
  return 0;
}
