// libFuzzer target: the KFD topology parsers (detect/amd_kfd.h) on arbitrary bytes.
// Whatever the input, parsing must neither crash nor trip a sanitizer; a value that
// parses must satisfy the documented contracts (checked with CYLLM_ASSERT so the fuzzer
// reports a violation as a crash).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cyllm/error.h"
#include "detect/amd_kfd.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace cyllm::detect;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto props = kfd::parse_properties(text, "fuzz/properties")) {
    CYLLM_ASSERT(props->size() <= kfd::kMaxProperties);
    if (auto node = kfd::parse_node(*props, "fuzz/properties")) {
      CYLLM_ASSERT(node->simd_count <= (1u << 20));
      CYLLM_ASSERT(node->device_id <= 0xffff && node->location_id <= 0xffff);
      const std::string bdf = kfd::pci_bus_id(node->domain, node->location_id);
      CYLLM_ASSERT(bdf.size() >= 12);
      if (auto gfx = kfd::gfx_target_from_version(node->gfx_target_version))
        CYLLM_ASSERT(gfx->size() >= 6 && gfx->size() <= 7);
      if (node->unique_id) CYLLM_ASSERT(kfd::unique_id_hex(*node->unique_id).size() == 16);
    }
  }
  (void)kfd::parse_mem_bank(text, "fuzz/mem_banks/0/properties");
  (void)kfd::parse_used_memory(text, "fuzz/used_memory");
  (void)kfd::is_meaningful_name(text);
  return 0;
}
