// Does a host (detect::HardwareProfile) satisfy a registry hardware profile, and if not,
// why not, in one sentence that quotes both sides:
//   "needs compute capability >= 7.0; NVIDIA Tesla P100-PCIE-16GB is 6.0"
//   "needs NVIDIA driver >= 570.26; found 535.104.05"
#pragma once

#include <string>
#include <string_view>

#include "cyllm/detect.h"
#include "cyllm/registry.h"

namespace cyllm::resolve {

struct HardwareMatch {
  bool ok = false;
  std::string reason;  // why not; empty when ok
};

// Pure. A profile with vendor "cpu" describes the host CPU, which every host has, so it
// can match a GPU host too (the CPU engines run there).
HardwareMatch match_hardware(const registry::HardwareProfile& want,
                             const detect::HardwareProfile& host);

// Same for a variant's driver and compute-capability window (cu128, rocm6.3, ...).
HardwareMatch match_variant(const registry::Variant& variant, const detect::HardwareProfile& host);

// Compares dotted versions numerically field by field ("570.26" < "570.124.06");
// non-numeric fields compare as text ("25.0.rc1" vs "25.0.rc2"); missing fields are 0.
int compare_dotted(std::string_view a, std::string_view b);

}  // namespace cyllm::resolve
