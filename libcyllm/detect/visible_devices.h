// *_VISIBLE_DEVICES lists (CUDA_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES,
// ASCEND_RT_VISIBLE_DEVICES): which of the enumerated devices a runtime would expose.
//
// Format (as the CUDA runtime reads it):
//   spec   := "" | entry ("," entry)*
//   entry  := index | uuid-prefix          (surrounding spaces/tabs are ignored)
//   index  := decimal, matches VisibleCandidate::index (the driver's enumeration index;
//             we assume CUDA_DEVICE_ORDER=PCI_BUS_ID, which is what NVML/nvidia-smi list)
//   uuid-prefix := anything not all digits, e.g. "GPU-3151" or a full "MIG-..." UUID; it
//             matches the one device (or sub-device) whose UUID starts with it,
//             case-insensitively. A prefix that matches two devices is invalid.
// The first invalid entry (no match, ambiguous, negative, empty, out of range) ends the
// list: it and every entry after it are ignored, as the CUDA runtime does, and one
// Warning (detect.bad_visible_devices) says so. A repeated device is ignored with a
// warning. The empty string selects no device. "Unset" is the caller's business: it
// means every device and callers should not call this at all.
//
// Design goals: one implementation for every vendor (AMD and Ascend reuse it; their
// devices simply have no sub-devices, Ascend ones usually no UUID); pure and fuzzable.
// Non-goals: the pre-R470 "MIG-GPU-<uuid>/<gi>/<ci>" syntax (treated as a prefix that
// matches nothing); CUDA_DEVICE_ORDER=FASTEST_FIRST reordering.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cyllm/detect.h"

namespace cyllm::detect {

struct VisibleCandidate {
  int index = 0;                         // driver enumeration index
  std::string uuid;                      // "GPU-..."; empty when unknown (index-only)
  std::vector<std::string> sub_uuids;    // selectable sub-devices, e.g. "MIG-..." slices
};

struct VisibleMatch {
  int index = 0;          // VisibleCandidate::index of the selected device
  std::string sub_uuid;   // the sub-device named by the entry; empty = the whole device
  bool operator==(const VisibleMatch&) const = default;
};

// Selected devices in the order the spec names them (that order is the runtime's device
// numbering). Never fails: problems become warnings naming `var_name`.
std::vector<VisibleMatch> select_visible_devices(std::string_view spec,
                                                 const std::vector<VisibleCandidate>& devices,
                                                 std::vector<Warning>& warnings,
                                                 std::string_view var_name);

// Convenience for vendors without sub-devices: just the selected indices, in spec order
// (an entry naming a sub-device yields its parent's index).
std::vector<int> select_visible(std::string_view spec,
                                const std::vector<VisibleCandidate>& devices,
                                std::vector<Warning>& warnings, std::string_view var_name);

}  // namespace cyllm::detect
