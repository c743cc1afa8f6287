// libFuzzer target: select_visible_devices on arbitrary *_VISIBLE_DEVICES strings. The
// first byte picks how many of eight A100-like candidates exist (and whether GPU 3 has MIG
// slices); the rest is the spec. Every match must name an existing candidate, at most once.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "detect/visible_devices.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const char* kUuids[] = {
      "GPU-31515c3d-1414-7c2c-004a-f86a898946ac", "GPU-9c8f2a4e-5b71-3d06-e2a9-71c04f3b8d12",
      "GPU-e4d1b7a0-2c63-8f95-1a7e-b5c9d30f6e48", "GPU-5a27c9e3-8d14-4b6f-93a2-0e7f1c68d5b9",
      "GPU-b06e3f81-7a29-c54d-d8e1-4f92a6c0b37e", "",
      "GPU-d7a4e092-41c6-9b3f-fe58-26a0c8d1e79b", "GPU-68c31f5b-b9e2-7d40-a5c7-93f4e0b2186d"};
  std::vector<cyllm::detect::VisibleCandidate> devices;
  int n = data[0] % 9;
  for (int i = 0; i < n; ++i) devices.push_back({i * (1 + (data[0] >> 7)), kUuids[i], {}});
  if (n > 3 && (data[0] & 0x40))
    devices[3].sub_uuids = {"MIG-1f8b2c6d-93e0-5a74-b1d8-6c2e9f04a3b7",
                            "MIG-a3e07d94-2b5c-5f18-8e6a-d40c7b13f925"};
  std::string_view spec(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<cyllm::detect::Warning> warnings;
  auto matches = cyllm::detect::select_visible_devices(spec, devices, warnings, "FUZZ");
  if (matches.size() > devices.size() * 3) std::abort();
  for (std::size_t i = 0; i < matches.size(); ++i) {
    bool known = false;
    for (const auto& d : devices) known = known || d.index == matches[i].index;
    if (!known) std::abort();
    for (std::size_t j = 0; j < i; ++j)
      if (matches[j] == matches[i]) std::abort();
  }
  if (warnings.size() > spec.size() + 1) std::abort();
  (void)cyllm::detect::select_visible(spec, devices, warnings, "FUZZ");
  return 0;
}
