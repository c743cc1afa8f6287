// libFuzzer target: /proc/self/cgroup and the cgroup v1/v2 limit files.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "detect/cgroup.h"
#include "util/strings.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)cyllm::detect::parse_proc_self_cgroup(text);
  (void)cyllm::detect::parse_cpu_max(text);
  (void)cyllm::detect::parse_memory_limit(text);
  auto nl = text.find('\n');
  if (nl != std::string_view::npos)
    (void)cyllm::detect::parse_cfs_quota(text.substr(0, nl), text.substr(nl + 1));
  (void)cyllm::util::count_cpu_list(text);
  return 0;
}
