// cgroup limits: the CPU quota and memory limit a containerised process really has.
//
// Formats (Documentation/admin-guide/cgroup-v2.rst and cgroup-v1/):
//   /proc/self/cgroup    "<hier-id>:<controller,list>:<path>" per line; v2 is "0::<path>"
//   v2 cpu.max           "<quota|max> <period>"   e.g. "400000 100000" = 4 CPUs
//   v2 memory.max        "<bytes|max>"
//   v1 cpu.cfs_quota_us  "-1" (unlimited) or microseconds; cpu.cfs_period_us
//   v1 memory.limit_in_bytes  bytes; values near 2^63 (page-rounded LONG_MAX) mean none
//   cpuset.cpus.effective / cpuset.effective_cpus  a CPU list "0-3,8"
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cyllm/error.h"

namespace cyllm::detect {

struct CgroupMembership {
  std::string v2_path;                      // from the "0::" line; empty when absent
  std::vector<std::pair<std::string, std::string>> v1;  // controller -> path
};
Result<CgroupMembership> parse_proc_self_cgroup(std::string_view text);

// cpu.max -> cores (quota/period); nullopt for "max". Error on garbage.
Result<std::optional<double>> parse_cpu_max(std::string_view text);
// memory.max / memory.limit_in_bytes -> bytes; nullopt for "max" or the v1 sentinel.
Result<std::optional<std::uint64_t>> parse_memory_limit(std::string_view text);
// v1 quota and period -> cores; nullopt for -1.
Result<std::optional<double>> parse_cfs_quota(std::string_view quota, std::string_view period);

}  // namespace cyllm::detect
