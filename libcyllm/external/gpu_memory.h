// GPU memory held by a process group, from NVML's per-process accounting.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace cyllm::external {

// Sum of NVML's usedGpuMemory over every GPU for the processes in process group `pgid`.
// nullopt when libnvidia-ml.so.1 cannot be loaded or initialised (no NVIDIA driver), or
// when no process of the group uses a GPU.
std::optional<std::uint64_t> gpu_memory_of_group(pid_t pgid, const char* library = "libnvidia-ml.so.1");

}  // namespace cyllm::external
