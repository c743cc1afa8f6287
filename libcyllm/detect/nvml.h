// NVML (libnvidia-ml.so.1), loaded with dlopen at run time: libcyllm has no link-time
// dependency on the NVIDIA driver and builds on hosts without it.
//
// Where the library comes from:
//   - under a fixture root: <root>/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 only (a
//     test never loads the NVML of the machine running it);
//   - on the real host (ctx.fs.is_host_root()): dlopen("libnvidia-ml.so.1"), i.e. the
//     dynamic linker's search path.
//
// Design goals: every string NVML hands back is untrusted (bounded buffers, forced NUL,
// non-printable bytes replaced); a missing optional symbol or a failing per-device call
// degrades that field with a warning, not the probe. Init and shutdown are paired and the
// library is dlclosed afterwards.
// Non-goals: a timeout around NVML calls. NVML talks to the kernel driver through ioctls
// and cannot be interrupted in-process; a host with a wedged driver should be probed with
// DetectOptions::use_nvml = false (nvidia-smi runs under a timeout).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cyllm/context.h"
#include "cyllm/detect.h"
#include "cyllm/error.h"

namespace cyllm::detect {

// Probes every GPU NVML enumerates (no CUDA_VISIBLE_DEVICES filter; total_gpus set,
// source "nvml", vram in bytes, MIG slices with profile names and memory).
// Returns:
//   nullopt  - no libnvidia-ml on this host / under this root (not an error, no warning);
//   an Error - the library is there but unusable: dlopen failed, a required symbol is
//              missing, or nvmlInit_v2 failed (NvmlUnavailable, quoting nvmlErrorString
//              and the NVML error code), or nvmlDeviceGetCount_v2 failed (NvmlCallFailed);
//   info     - otherwise; per-field failures were appended to `warnings`.
// Not thread-safe with respect to other NVML users in the process (init/shutdown are
// process-global in NVML).
Result<std::optional<NvidiaInfo>> detect_nvml(const Context& ctx, std::vector<Warning>& warnings);

// 12050 -> "12.5", 11080 -> "11.8" (NVML's CUDA_VERSION encoding: major*1000 + minor*10).
// nullopt for values <= 0 or beyond major 999.
std::optional<std::string> format_cuda_driver_version(int version);

// MIG profile from the name NVML gives a MIG device handle:
// "NVIDIA A100-SXM4-80GB MIG 3g.40gb" -> "3g.40gb"; "" when there is no " MIG " word.
std::string parse_mig_profile(std::string_view mig_device_name);

}  // namespace cyllm::detect
