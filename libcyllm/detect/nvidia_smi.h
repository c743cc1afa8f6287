// Parsers for what nvidia-smi prints and for /proc/driver/nvidia/version. All pure: the
// caller runs the tool (Context::runner) or reads the file (Context::fs).
//
// Formats (whitespace as the driver prints it):
//
//  1. `nvidia-smi --query-gpu=<kNvidiaSmiQueryFields> --format=csv,noheader,nounits`
//     One line per GPU, cells separated by ", ", memory in MiB without unit:
//       0, NVIDIA A100-SXM4-80GB, GPU-31515c3d-..., 00000000:07:00.0, 81920, 81158, 8.0, 555.42.02, Disabled
//     A cell may read "[N/A]" or "[Not Supported]" (unknown). 470.x drivers do not know
//     compute_cap and answer, with a non-zero exit:
//       Field "compute_cap" is not a valid field to query.
//     so the caller retries with kNvidiaSmiQueryFieldsNoCc (8 columns).
//  2. `nvidia-smi -L`
//       GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-7f57f032-...)
//         MIG 2g.20gb     Device  0: (UUID: MIG-377e0049-...)
//  3. `nvidia-smi` (no arguments): a table whose banner holds the CUDA driver version:
//       | NVIDIA-SMI 555.42.02   Driver Version: 555.42.02   CUDA Version: 12.5     |
//  4. /proc/driver/nvidia/version, first line, proprietary or open kernel module:
//       NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 ... 2024
//       NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  565.57.01  Release Build ...
//  Failures print one line and exit non-zero, e.g.
//       NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. ...
//       Failed to initialize NVML: Driver/library version mismatch
//       No devices were found
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cyllm/detect.h"
#include "cyllm/error.h"

namespace cyllm::detect {

inline constexpr std::string_view kNvidiaSmiQueryFields =
    "index,name,uuid,pci.bus_id,memory.total,memory.free,compute_cap,driver_version,"
    "mig.mode.current";
inline constexpr std::string_view kNvidiaSmiQueryFieldsNoCc =
    "index,name,uuid,pci.bus_id,memory.total,memory.free,driver_version,mig.mode.current";

struct SmiQueryResult {
  std::vector<NvidiaGpu> gpus;   // in output order; vram in bytes; no mig_devices yet
  std::string driver_version;    // from the first row; empty when every row says N/A
};

// Format 1. with_compute_cap selects the 9- or 8-column layout. Blank lines are skipped;
// any other malformed line (column count, index, memory, compute_cap, MIG mode) is a
// BadToolOutput error quoting the line. Empty output gives no GPUs.
Result<SmiQueryResult> parse_smi_query_gpu(std::string_view text, bool with_compute_cap);

// The field name when `text` is nvidia-smi's "Field \"<f>\" is not a valid field to
// query." complaint, else nullopt.
std::optional<std::string> parse_smi_invalid_field(std::string_view text);

struct SmiListedGpu {
  int index = 0;
  std::string name;
  std::string uuid;
  std::vector<MigDevice> mig_devices;  // uuid and profile name; vram_total_bytes = 0
};

// Format 2. Lines that are neither a GPU nor a MIG line are a BadToolOutput error, as is
// a MIG line before any GPU line.
Result<std::vector<SmiListedGpu>> parse_smi_list(std::string_view text);

// Format 3: "12.5". BadToolOutput when no "CUDA Version:" with a dotted number is found
// (a "CUDA Version: N/A" banner, e.g. when no GPU is usable, is also an error).
Result<std::string> parse_smi_cuda_version(std::string_view banner);

// Format 4: the kernel module version, e.g. "550.54.14". BadSysfs when there is no
// "NVRM version:" line with a dotted version after "Module".
Result<std::string> parse_proc_driver_version(std::string_view text);

// The line that explains a failed nvidia-smi run: its first non-blank line of stdout,
// else of stderr, trimmed and at most 200 bytes; "" when both are blank.
std::string smi_failure_message(std::string_view out, std::string_view err);

}  // namespace cyllm::detect
