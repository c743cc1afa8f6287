// libFuzzer target: /etc/os-release and the glibc version banner.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "detect/os.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)cyllm::detect::parse_os_release(text);
  auto v = cyllm::detect::parse_glibc_banner(text);
  if (v.size() > 16) __builtin_trap();  // the banner parser caps what it takes
  return 0;
}
