// NVML loaded with dlopen (no link-time dependency on the driver). nvmlProcessInfo_v2_t is
// {unsigned pid; unsigned long long usedGpuMemory; unsigned gpuInstanceId, computeInstanceId}
// (NVML API, nvml.h); the _v2 query fills it on every driver since R450.
#include "external/gpu_memory.h"
#include "external/child_process.h"

#include <dlfcn.h>
#include <unistd.h>

#include <vector>

namespace cyllm::external {
namespace {

struct ProcessInfoV2 {
  unsigned int pid;
  unsigned long long used_gpu_memory;
  unsigned int gpu_instance_id;
  unsigned int compute_instance_id;
};

constexpr unsigned long long kNotAvailable = ~0ull;  // NVML_VALUE_NOT_AVAILABLE

}  // namespace

std::optional<std::uint64_t> gpu_memory_of_group(pid_t pgid, const char* library) {
  void* lib = ::dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (!lib) return std::nullopt;
  using InitFn = int (*)();
  using CountFn = int (*)(unsigned int*);
  using HandleFn = int (*)(unsigned int, void**);
  using ProcsFn = int (*)(void*, unsigned int*, ProcessInfoV2*);
  auto init = reinterpret_cast<InitFn>(::dlsym(lib, "nvmlInit_v2"));
  auto shutdown = reinterpret_cast<InitFn>(::dlsym(lib, "nvmlShutdown"));
  auto count = reinterpret_cast<CountFn>(::dlsym(lib, "nvmlDeviceGetCount_v2"));
  auto handle = reinterpret_cast<HandleFn>(::dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
  auto procs = reinterpret_cast<ProcsFn>(::dlsym(lib, "nvmlDeviceGetComputeRunningProcesses_v2"));
  std::optional<std::uint64_t> total;
  if (init && shutdown && count && handle && procs && init() == 0) {
    unsigned int n = 0;
    if (count(&n) == 0) {
      for (unsigned int i = 0; i < n && i < 64; ++i) {
        void* dev = nullptr;
        if (handle(i, &dev) != 0) continue;
        std::vector<ProcessInfoV2> infos(256);
        unsigned int m = static_cast<unsigned int>(infos.size());
        if (procs(dev, &m, infos.data()) != 0) continue;
        for (unsigned int k = 0; k < m && k < infos.size(); ++k) {
          if (infos[k].used_gpu_memory == kNotAvailable) continue;
          const auto st = read_proc_stat(static_cast<pid_t>(infos[k].pid));
          if (!st || st->pgrp != pgid) continue;
          total = total.value_or(0) + infos[k].used_gpu_memory;
        }
      }
    }
    shutdown();
  }
  ::dlclose(lib);
  return total;
}

}  // namespace cyllm::external
