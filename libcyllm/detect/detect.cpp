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
  if (p.nvidia && !p.nvidia->gpus.empty()) {
    ++vendors_with_devices;
    const auto& g = p.nvidia->gpus.front();
    p.vendor = "nvidia";
    p.device_name = g.name;
    p.vram_total_bytes = g.vram_total_bytes;
    p.compute_capability = g.compute_capability;
    p.driver_version = p.nvidia->driver_version;
    p.device_count = static_cast<int>(p.nvidia->gpus.size());
    // A GPU in MIG mode is not usable whole: CUDA enumerates its slices, so the profile
    // describes the first visible slice.
    if (g.mig_enabled.value_or(false) && !g.mig_devices.empty()) {
      const auto& m = g.mig_devices.front();
      p.device_name = g.name + " MIG " + (m.name.empty() ? m.uuid : m.name);
      if (m.vram_total_bytes > 0) p.vram_total_bytes = m.vram_total_bytes;
    }
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
    if (vendors_with_devices++ == 0) {
      const auto& g = p.amd->gpus.front();
      p.vendor = "amd";
      p.device_name = g.name;
      p.vram_total_bytes = g.vram_total_bytes;
      p.compute_capability = g.gfx_target;
      // The kernel driver (amdgpu) when known; in-box kernels have none, then ROCm's version.
      p.driver_version = !p.amd->driver_version.empty() ? p.amd->driver_version : p.amd->rocm_version;
      p.device_count = static_cast<int>(p.amd->gpus.size());
    }
  }
  if (p.ascend && !p.ascend->npus.empty()) {
    if (vendors_with_devices++ == 0) {
      const auto& n = p.ascend->npus.front();
      p.vendor = "ascend";
      p.device_name = n.name;
      p.vram_total_bytes = n.hbm_total_bytes;
      p.compute_capability = n.soc_version;
      p.driver_version = p.ascend->driver_version;
      p.device_count = static_cast<int>(p.ascend->npus.size());
    }
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
