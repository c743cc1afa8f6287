// libFuzzer target: the Ascend text parsers (detect/npu_smi.h) on arbitrary bytes: the
// `npu-smi info` table, the `npu-smi info -m` mapping and version.info key=value files.
// Parsing must neither crash nor trip a sanitizer; what parses must keep the documented
// bounds (checked with CYLLM_ASSERT so a violation is reported as a crash).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cyllm/error.h"
#include "detect/npu_smi.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cyllm::detect;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto info = npu_smi::parse_info(text)) {
    CYLLM_ASSERT(info->chips.size() <= npu_smi::kMaxChips);
    for (const auto& c : info->chips) {
      CYLLM_ASSERT(c.pci_bus_id.size() == 12 || c.pci_bus_id.size() == 16);
      if (c.hbm_total_mb) CYLLM_ASSERT(*c.hbm_total_mb <= npu_smi::kMaxMegabytes);
      if (c.memory_total_mb) CYLLM_ASSERT(*c.memory_total_mb <= npu_smi::kMaxMegabytes);
      (void)npu_smi::soc_version_from_name(c.name);
    }
  }
  if (auto mapping = npu_smi::parse_mapping(text))
    CYLLM_ASSERT(mapping->size() <= npu_smi::kMaxChips);
  if (auto kv = npu_smi::parse_key_value_file(text, "fuzz/version.info"))
    for (const auto& [key, value] : *kv) CYLLM_ASSERT(!key.empty());
  return 0;
}
