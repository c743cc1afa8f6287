// detect_hardware: runs every probe and picks the primary accelerator.
#include <algorithm>
#include <cmath>
#include <set>

#include "cyllm/detect.h"
#include "detect/warnings.h"

namespace cyllm::detect {

HardwareProfile detect_hardware(const Context& ctx, const DetectOptions& options) {
  HardwareProfile p;
  p.cpu = detect_cpu(ctx, p.warnings);
  p.os = detect_os(ctx, p.warnings);
  p.cgroup = detect_cgroup(ctx, p.warnings);

  // Effective resources: what a process here may really use.
  p.effective_cpus = p.cpu.logical_cores;
  if (p.cgroup.cpu_quota_cores) {
    int quota = std::max(1, static_cast<int>(std::ceil(*p.cgroup.cpu_quota_cores - 1e-9)));
    if (p.effective_cpus == 0 || quota < p.effective_cpus) p.effective_cpus = quota;
  }
  if (p.cgroup.cpuset_cpus && (p.effective_cpus == 0 || *p.cgroup.cpuset_cpus < p.effective_cpus))
    p.effective_cpus = *p.cgroup.cpuset_cpus;
  p.effective_memory_bytes = p.cpu.memory_total_bytes;
  if (p.cgroup.memory_limit_bytes &&
      (p.effective_memory_bytes == 0 || *p.cgroup.memory_limit_bytes < p.effective_memory_bytes))
    p.effective_memory_bytes = *p.cgroup.memory_limit_bytes;

  if (!ctx.cancelled()) p.nvidia = detect_nvidia(ctx, options, p.warnings);
  if (!ctx.cancelled()) p.amd = detect_amd(ctx, options, p.warnings);
  if (!ctx.cancelled()) p.ascend = detect_ascend(ctx, options, p.warnings);

  // Primary accelerator: the first visible device of the first vendor that has one, in
  // the order NVIDIA, AMD, Ascend (the order engines support them best). Mixed vendors
  // on one host are rare and reported as a warning.
  int vendors_with_devices = 0;
  auto offer_primary = [&](const char* vendor, std::string name, std::uint64_t memory,
                           std::string capability, std::string driver, std::size_t count) {
    if (vendors_with_devices++ > 0) return;  // an earlier vendor already is the primary
    p.vendor = vendor;
    p.device_name = std::move(name);
    p.vram_total_bytes = memory;
    p.compute_capability = std::move(capability);
    p.driver_version = std::move(driver);
    p.device_count = static_cast<int>(count);
  };
  if (p.nvidia && !p.nvidia->gpus.empty()) {
    const auto& g = p.nvidia->gpus.front();
    // A GPU in MIG mode is not usable whole: CUDA enumerates its slices, so the profile
    // describes the first visible slice.
    std::string name = g.name;
    std::uint64_t memory = g.vram_total_bytes;
    if (g.mig_enabled.value_or(false) && !g.mig_devices.empty()) {
      const auto& m = g.mig_devices.front();
      name += " MIG " + (m.name.empty() ? m.uuid : m.name);
      if (m.vram_total_bytes > 0) memory = m.vram_total_bytes;
    }
    offer_primary("nvidia", name, memory, g.compute_capability, p.nvidia->driver_version,
                  p.nvidia->gpus.size());
    std::set<std::string> names;
    for (const auto& x : p.nvidia->gpus) names.insert(x.name);
    if (names.size() > 1)
      p.warnings.push_back({"detect.mixed_gpus",
                            "the visible NVIDIA GPUs are of " + std::to_string(names.size()) +
                                " different models; the profile describes GPU " +
                                std::to_string(g.index) + " (" + g.name +
                                "); set CUDA_VISIBLE_DEVICES to choose"});
  }
  if (p.amd && !p.amd->gpus.empty()) {
    const auto& g = p.amd->gpus.front();
    // The kernel driver (amdgpu) when known; in-box kernels have none, then ROCm's version.
    offer_primary("amd", g.name, g.vram_total_bytes, g.gfx_target,
                  !p.amd->driver_version.empty() ? p.amd->driver_version : p.amd->rocm_version,
                  p.amd->gpus.size());
  }
  if (p.ascend && !p.ascend->npus.empty()) {
    const auto& n = p.ascend->npus.front();
    offer_primary("ascend", n.name, n.hbm_total_bytes, n.soc_version, p.ascend->driver_version,
                  p.ascend->npus.size());
  }
  if (vendors_with_devices > 1)
    p.warnings.push_back({"detect.mixed_vendors",
                          "accelerators of " + std::to_string(vendors_with_devices) +
                              " vendors found; the profile describes the " + p.vendor +
                              " devices"});
  if (vendors_with_devices == 0) {
    p.vendor = "cpu";
    p.device_name = p.cpu.model_name;
    p.vram_total_bytes = 0;
    p.compute_capability.clear();
    p.driver_version.clear();
    p.device_count = 0;
  }
  return p;
}

}  // namespace cyllm::detect
