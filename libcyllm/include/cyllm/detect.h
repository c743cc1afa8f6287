// Hardware detection: what accelerators, CPU and memory a host has, as a HardwareProfile.
//
// Every file read goes through Context::fs (so a fixture root stands in for the host) and
// every vendor tool through Context::runner, with a timeout. Nothing here throws or
// aborts on bad input: unreadable or garbled sources become entries in
// HardwareProfile::warnings and detection carries on with what it has.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cyllm/context.h"
#include "cyllm/error.h"

namespace cyllm::detect {

inline constexpr const char* kSchema = "cy-llm.detect/v1";

struct Warning {
  std::string code;     // stable id, e.g. "detect.tool_timeout"
  std::string message;  // human text quoting the source and the bad value
};

struct CpuInfo {
  std::string vendor;        // "GenuineIntel", "AuthenticAMD", "HiSilicon", ...
  std::string model_name;    // "AMD EPYC 9654 96-Core Processor"
  std::string architecture;  // "x86_64", "aarch64"
  std::vector<std::string> isa;  // canonical names, sorted: avx2, avx512f, neon, ...
  std::string isa_source;    // "cpuid" or "/proc/cpuinfo"
  int physical_cores = 0;
  int logical_cores = 0;
  int sockets = 0;
  int numa_nodes = 0;        // nodes with CPUs; memory-only nodes are not counted
  std::uint64_t memory_total_bytes = 0;
  std::uint64_t memory_available_bytes = 0;
};

// The operating system and C library: what decides which wheels (manylinux_2_N) install.
struct OsInfo {
  std::string name;          // PRETTY_NAME from /etc/os-release, "Debian GNU/Linux 12 (bookworm)"
  std::string id;            // "debian", "ubuntu", "openEuler"
  std::string version_id;    // "12", "22.04"
  std::string kernel;        // /proc/sys/kernel/osrelease
  std::string libc;          // "glibc", "musl" or "" when unknown
  std::string libc_version;  // "2.36" for glibc; "" when unknown
};

struct CgroupLimits {
  int version = 0;                              // 0 = none found, 1 or 2
  std::optional<double> cpu_quota_cores;        // cpu.max / cfs_quota; nullopt = no limit
  std::optional<int> cpuset_cpus;               // cpuset.cpus.effective count
  std::optional<std::uint64_t> memory_limit_bytes;  // nullopt = no limit
  std::optional<std::uint64_t> memory_current_bytes;
};

struct MigDevice {
  std::string uuid;  // "MIG-..."
  std::string name;  // profile, e.g. "1g.10gb" when known
  std::uint64_t vram_total_bytes = 0;
};

struct NvidiaGpu {
  int index = 0;                     // index as the driver enumerates it
  std::string name;                  // "NVIDIA A100-SXM4-80GB"
  std::string uuid;                  // "GPU-..."
  std::string pci_bus_id;            // "00000000:68:00.0"
  std::uint64_t vram_total_bytes = 0;
  std::optional<std::uint64_t> vram_free_bytes;
  std::string compute_capability;    // "8.0"; empty when unknown
  std::optional<bool> mig_enabled;   // nullopt when not supported / unknown
  std::vector<MigDevice> mig_devices;
};

struct NvidiaInfo {
  std::string source;                // "nvml", "nvidia-smi", "procfs"
  std::string driver_version;        // "555.42.02"
  std::string cuda_driver_version;   // "12.5"
  std::vector<NvidiaGpu> gpus;       // visible GPUs only (CUDA_VISIBLE_DEVICES applied)
  int total_gpus = 0;                // before the visibility filter
};

struct AmdGpu {
  int index = 0;                     // position among KFD GPU nodes (HIP index)
  int kfd_node = 0;
  std::string name;                  // marketing name when known, else gfx target
  std::string gfx_target;            // "gfx942"; empty when the kernel does not say
  std::string pci_bus_id;            // "0000:26:00.0"
  std::string unique_id;             // hex, as in "GPU-<unique_id>"
  std::uint64_t vram_total_bytes = 0;
  std::optional<std::uint64_t> vram_used_bytes;
  int compute_units = 0;
  int simd_count = 0;
  std::uint32_t device_id = 0;       // PCI device id
};

struct AmdInfo {
  std::string rocm_version;          // from /opt/rocm/.info/version
  std::string driver_version;        // /sys/module/amdgpu/version, may be empty
  std::vector<AmdGpu> gpus;
  int total_gpus = 0;
};

struct AscendNpu {
  int index = 0;                     // logical index (ASCEND_RT_VISIBLE_DEVICES)
  int npu_id = 0;
  int chip_id = 0;
  std::string name;                  // "910B3"
  std::string soc_version;           // "Ascend910B3"
  std::string pci_bus_id;
  std::string health;                // "OK", "Warning", ...
  std::uint64_t hbm_total_bytes = 0;
  std::optional<std::uint64_t> hbm_used_bytes;
  std::string device_node;           // "/dev/davinci0" when present
};

struct AscendInfo {
  std::string driver_version;        // driver/version.info package_version or Version
  std::string firmware_version;
  std::string cann_version;
  std::string npu_smi_version;
  std::vector<AscendNpu> npus;
  int total_npus = 0;
};

struct HardwareProfile {
  // The seed's HardwareProfile fields, for the primary accelerator.
  std::string vendor = "cpu";        // nvidia | amd | ascend | cpu
  std::string device_name;
  std::uint64_t vram_total_bytes = 0;
  std::string compute_capability;    // nvidia "8.0", amd "gfx942", ascend "Ascend910B3"
  std::string driver_version;
  int device_count = 0;              // visible devices of the primary vendor

  CpuInfo cpu;
  OsInfo os;
  CgroupLimits cgroup;
  int effective_cpus = 0;                      // min(logical, quota, cpuset)
  std::uint64_t effective_memory_bytes = 0;    // min(MemTotal, cgroup limit)

  std::optional<NvidiaInfo> nvidia;
  std::optional<AmdInfo> amd;
  std::optional<AscendInfo> ascend;
  std::vector<Warning> warnings;
};

// What the caller knows that the filesystem does not: environment variables (read by the
// tool, never by the library) and tool policy.
struct DetectOptions {
  std::optional<std::string> cuda_visible_devices;
  std::optional<std::string> hip_visible_devices;
  std::optional<std::string> rocr_visible_devices;
  std::optional<std::string> ascend_rt_visible_devices;
  std::vector<std::string> path;  // $PATH entries, used to find vendor tools when fs is the host
  std::chrono::milliseconds tool_timeout{5000};
  bool use_nvml = true;           // try libnvidia-ml before nvidia-smi
};

// Probes everything. Never fails as a whole: problems become warnings.
HardwareProfile detect_hardware(const Context& ctx, const DetectOptions& options);

// Individual probes (public for tests and for other programs linking libcyllm).
CpuInfo detect_cpu(const Context& ctx, std::vector<Warning>& warnings);
CgroupLimits detect_cgroup(const Context& ctx, std::vector<Warning>& warnings);
// On the host: gnu_get_libc_version(); under a fixture root: the "release version X.Y"
// banner inside lib*/libc.so.6, or musl's loader.
OsInfo detect_os(const Context& ctx, std::vector<Warning>& warnings);
std::optional<NvidiaInfo> detect_nvidia(const Context& ctx, const DetectOptions& options,
                                        std::vector<Warning>& warnings);
std::optional<AmdInfo> detect_amd(const Context& ctx, const DetectOptions& options,
                                  std::vector<Warning>& warnings);
std::optional<AscendInfo> detect_ascend(const Context& ctx, const DetectOptions& options,
                                        std::vector<Warning>& warnings);

// Finds a vendor tool: under a fixture root only <root>/usr/bin, /usr/local/bin,
// /usr/local/sbin, /usr/sbin, /opt/rocm/bin; on the host also each $PATH entry.
// Returns the host path, or nullopt.
std::optional<std::string> find_tool(const Context& ctx, const DetectOptions& options,
                                     std::string_view name);

// JSON (schema cy-llm.detect/v1) and a readable text table.
nlohmann::ordered_json to_json(const HardwareProfile& profile);
std::string to_text(const HardwareProfile& profile);
// Reads a profile back (cy-llm-resolve reads detect's stdout). Checks "schema".
Result<HardwareProfile> profile_from_json(const nlohmann::json& doc);

}  // namespace cyllm::detect
