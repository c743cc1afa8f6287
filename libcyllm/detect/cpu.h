// CPU and memory probing: pure parsers for /proc/cpuinfo and /proc/meminfo, and the
// x86 cpuid probe used when detecting the real host.
//
// /proc/cpuinfo is a sequence of blank-line-separated blocks, one per logical CPU, of
// "key<TAB>*: value" lines. x86 blocks carry vendor_id, model name, physical id, core id
// and flags; arm64 blocks carry Features, CPU implementer and CPU part but no model name
// or topology (that comes from /sys/devices/system/cpu/cpuN/topology).
// /proc/meminfo is "Key:   <n> kB" lines.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cyllm/error.h"

namespace cyllm::detect {

struct CpuinfoSummary {
  std::string vendor;
  std::string model_name;
  std::string architecture;          // "x86_64" / "aarch64" inferred from the keys
  std::vector<std::string> raw_flags;  // flags/Features of the first CPU
  int logical_cpus = 0;
  int physical_cores = 0;            // unique (physical id, core id); 0 when absent
  int sockets = 0;                   // unique physical id; 0 when absent
};

// Fails (Errc::BadSysfs) when no "processor" entry is found.
Result<CpuinfoSummary> parse_cpuinfo(std::string_view text);

struct Meminfo {
  std::uint64_t total_bytes = 0;
  std::uint64_t available_bytes = 0;  // MemAvailable, or MemFree+Buffers+Cached on old kernels
};
// Fails (Errc::BadSysfs) when MemTotal is missing or a value is not a number.
Result<Meminfo> parse_meminfo(std::string_view text);

// Maps kernel flag names (x86 "flags", arm64 "Features") to cy-llm's canonical ISA names
// (sse4.2 avx avx2 fma f16c avx512f ... neon sve dotprod). Sorted, unique.
std::vector<std::string> canonical_isa(const std::vector<std::string>& raw_flags,
                                       std::string_view architecture);

struct CpuidInfo {
  std::string vendor;
  std::string model_name;
  std::vector<std::string> isa;      // canonical names, OS support (XCR0) checked
};
// Queries cpuid on the running x86 CPU; nullopt on other architectures.
std::optional<CpuidInfo> read_cpuid();

}  // namespace cyllm::detect
