// KFD topology parsers, on the captured texts of shared/reference/detect-fixtures.md §2.
#include "detect/amd_kfd.h"

#include <doctest/doctest.h>

#include <string>

using namespace cyllm;
using namespace cyllm::detect;

namespace {

// §2.1 GPU node 2 (MI308X, CPX partition), verbatim.
constexpr const char* kMi308xNode =
    "cpu_cores_count 0\n"
    "simd_count 80\n"
    "mem_banks_count 1\n"
    "caches_count 46\n"
    "io_links_count 32\n"
    "p2p_links_count 1\n"
    "cpu_core_id_base 0\n"
    "simd_id_base 2147487744\n"
    "max_waves_per_simd 8\n"
    "lds_size_in_kb 64\n"
    "gds_size_in_kb 0\n"
    "num_gws 64\n"
    "wave_front_size 64\n"
    "array_count 4\n"
    "simd_arrays_per_engine 1\n"
    "cu_per_simd_array 10\n"
    "simd_per_cu 4\n"
    "max_slots_scratch_cu 32\n"
    "gfx_target_version 90402\n"
    "vendor_id 4098\n"
    "device_id 29858\n"
    "location_id 2560\n"
    "domain 0\n"
    "drm_render_minor 128\n"
    "hive_id 2095653680343411291\n"
    "num_sdma_engines 2\n"
    "num_sdma_xgmi_engines 0\n"
    "num_sdma_queues_per_engine 8\n"
    "num_cp_queues 24\n"
    "max_engine_clk_fcompute 1420\n"
    "local_mem_size 0\n"
    "fw_version 149\n"
    "capability 746037888\n"
    "debug_prop 1511\n"
    "sdma_fw_version 19\n"
    "unique_id 598046273873802902\n"
    "num_xcc 1\n"
    "max_engine_clk_ccompute 3800\n";

// §2.1 CPU node 0 (trimmed as in the reference, GPU-only keys 0).
constexpr const char* kCpuNode =
    "cpu_cores_count 112\n"
    "simd_count 0\n"
    "io_links_count 17\n"
    "p2p_links_count 16\n"
    "gfx_target_version 0\n"
    "drm_render_minor 0\n"
    "max_engine_clk_ccompute 3800\n";

// §2.2 Vega 10 on an older kernel: no gfx_target_version, domain, num_xcc, hive_id.
constexpr const char* kVega10Node =
    "cpu_cores_count 0\n"
    "simd_count 256\n"
    "mem_banks_count 1\n"
    "simd_per_cu 4\n"
    "vendor_id 4098\n"
    "device_id 26720\n"
    "location_id 6400\n"
    "drm_render_minor 128\n"
    "max_engine_clk_fcompute 1500\n"
    "local_mem_size 17163091968\n"
    "fw_version 392\n"
    "capability 8832\n"
    "sdma_fw_version 421\n"
    "unique_id 14073402507705256556\n";

}  // namespace

TEST_CASE("parse_properties reads every key of the MI308X node, u64 values included") {
  auto props = kfd::parse_properties(kMi308xNode, "nodes/2/properties");
  REQUIRE(props.ok());
  CHECK(props->size() == 38);
  CHECK(props->at("hive_id") == 2095653680343411291ULL);
  CHECK(props->at("simd_id_base") == 2147487744ULL);
  CHECK(props->at("unique_id") == 598046273873802902ULL);
}

TEST_CASE("parse_node on the MI308X node of §2.1") {
  auto node = kfd::parse_node_text(kMi308xNode, "nodes/2/properties");
  REQUIRE(node.ok());
  CHECK(node->is_gpu());
  CHECK(node->simd_count == 80);
  CHECK(node->simd_per_cu == 4);
  CHECK(node->gfx_target_version == 90402);
  CHECK(node->vendor_id == 0x1002);
  CHECK(node->device_id == 0x74a2);
  CHECK(node->location_id == 2560);
  CHECK(node->domain == 0);
  CHECK(node->drm_render_minor == 128);
  CHECK(node->local_mem_size == 0);
  REQUIRE(node->unique_id.has_value());
  CHECK(*node->unique_id == 598046273873802902ULL);
  CHECK(kfd::pci_bus_id(node->domain, node->location_id) == "0000:0a:00.0");
  CHECK(kfd::gfx_target_from_version(node->gfx_target_version) == "gfx942");
}

TEST_CASE("parse_node: a CPU node needs only simd_count") {
  auto node = kfd::parse_node_text(kCpuNode, "nodes/0/properties");
  REQUIRE(node.ok());
  CHECK_FALSE(node->is_gpu());
  CHECK(node->device_id == 0);
  CHECK_FALSE(node->unique_id.has_value());
}

TEST_CASE("parse_node: the old-kernel Vega 10 node of §2.2") {
  auto node = kfd::parse_node_text(kVega10Node, "nodes/1/properties");
  REQUIRE(node.ok());
  CHECK(node->gfx_target_version == 0);
  CHECK(node->domain == 0);
  CHECK(node->device_id == 0x6860);
  CHECK(node->local_mem_size == 17163091968ULL);
  CHECK(*node->unique_id == 14073402507705256556ULL);
  CHECK(kfd::pci_bus_id(node->domain, node->location_id) == "0000:19:00.0");
  CHECK_FALSE(kfd::gfx_target_from_version(node->gfx_target_version).has_value());
  CHECK(kfd::gfx_target_from_device_id(node->device_id) == "gfx900");
  CHECK(kfd::unique_id_hex(*node->unique_id) == "c34ec50444dd0a6c");
}

TEST_CASE("parse_properties rejects a file cut off mid-line, naming the file and line") {
  std::string text = "simd_count 80\nsimd_per_cu 4\ngfx_target_vers";
  auto r = kfd::parse_properties(text, "/sys/x/properties");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::BadSysfs);
  CHECK(r.error().message() ==
        "\"/sys/x/properties\" line 3 \"gfx_target_vers\" is cut off (no newline at end of "
        "file)");
  // Cut inside a value: "simd_count 12" of "simd_count 1216" must not read as 12.
  auto cut_value = kfd::parse_properties("cpu_cores_count 0\nsimd_count 12", "p");
  REQUIRE_FALSE(cut_value.ok());
  CHECK(cut_value.error().message() ==
        "\"p\" line 2 \"simd_count 12\" is cut off (no newline at end of file)");
}

TEST_CASE("parse_properties rejects garbage with the exact reason") {
  struct Case {
    const char* text;
    const char* message;
  } cases[] = {
      {"simd_count eighty\n",
       "\"p\" line 1: value \"eighty\" of simd_count is not an unsigned decimal"},
      {"simd_count -1\n", "\"p\" line 1: value \"-1\" of simd_count is not an unsigned decimal"},
      {"unique_id 18446744073709551616\n",
       "\"p\" line 1: value \"18446744073709551616\" of unique_id is not an unsigned decimal"},
      {"simd_count\n", "\"p\" line 1 \"simd_count\" is not \"key value\""},
      {"simd_count 1 2\n", "\"p\" line 1 \"simd_count 1 2\" is not \"key value\""},
      {"Simd 1\n", "\"p\" line 1: bad key \"Simd\""},
      {"a 1\n\x01\x02 3\n", "\"p\" line 2: bad key \"\\x01\\x02\""},
      {"simd_count 1\nsimd_count 2\n", "\"p\" line 2: duplicate key \"simd_count\""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto r = kfd::parse_properties(c.text, "p");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Errc::BadSysfs);
    CHECK(r.error().message() == c.message);
  }
}

TEST_CASE("parse_properties: blank lines are skipped, CRLF tolerated, u64 max accepted") {
  auto r = kfd::parse_properties("\na 18446744073709551615\r\n\nb 0\n", "p");
  REQUIRE(r.ok());
  CHECK(r->size() == 2);
  CHECK(r->at("a") == 18446744073709551615ULL);
  auto empty = kfd::parse_properties("", "p");
  REQUIRE(empty.ok());
  CHECK(empty->empty());
}

TEST_CASE("parse_properties caps the number of properties") {
  std::string text;
  for (std::size_t i = 0; i <= kfd::kMaxProperties; ++i) text += "k" + std::to_string(i) + " 1\n";
  auto r = kfd::parse_properties(text, "p");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message() == "\"p\" has more than 1024 properties");
}

TEST_CASE("parse_node: missing and out-of-range keys") {
  auto no_simd = kfd::parse_node_text("cpu_cores_count 4\n", "p");
  REQUIRE_FALSE(no_simd.ok());
  CHECK(no_simd.error().code() == Errc::BadSysfs);
  CHECK(no_simd.error().message() == "\"p\" has no simd_count");

  auto gpu_no_location = kfd::parse_node_text("simd_count 8\nsimd_per_cu 4\ndevice_id 1\n", "p");
  REQUIRE_FALSE(gpu_no_location.ok());
  CHECK(gpu_no_location.error().message() == "\"p\" has no location_id");

  auto wide_device = kfd::parse_node_text(
      "simd_count 8\nsimd_per_cu 4\ndevice_id 65536\nlocation_id 0\n", "p");
  REQUIRE_FALSE(wide_device.ok());
  CHECK(wide_device.error().message() == "\"p\": device_id 65536 is out of range (max 65535)");

  auto huge_simd = kfd::parse_node_text(
      "simd_count 1048577\nsimd_per_cu 4\ndevice_id 1\nlocation_id 0\n", "p");
  REQUIRE_FALSE(huge_simd.ok());
  CHECK(huge_simd.error().message() ==
        "\"p\": simd_count 1048577 is out of range (max 1048576)");

  // unique_id 0 means "none".
  auto zero_uid = kfd::parse_node_text(
      "simd_count 8\nsimd_per_cu 4\ndevice_id 1\nlocation_id 0\nunique_id 0\n", "p");
  REQUIRE(zero_uid.ok());
  CHECK_FALSE(zero_uid->unique_id.has_value());
}

TEST_CASE("parse_mem_bank and parse_used_memory on §2.1 bank 0") {
  auto bank = kfd::parse_mem_bank(
      "heap_type 1\nsize_in_bytes 51539607552\nflags 0\nwidth 8192\nmem_clk_max 1300\n", "b");
  REQUIRE(bank.ok());
  CHECK(bank->heap_type == 1);
  CHECK(bank->size_in_bytes == 51539607552ULL);  // 48 GiB per CPX partition
  CHECK(bank->is_frame_buffer());
  CHECK(kfd::MemBank{2, 1}.is_frame_buffer());
  CHECK_FALSE(kfd::MemBank{0, 1}.is_frame_buffer());

  auto no_size = kfd::parse_mem_bank("heap_type 1\n", "b");
  REQUIRE_FALSE(no_size.ok());
  CHECK(no_size.error().message() == "\"b\" has no size_in_bytes");

  auto used = kfd::parse_used_memory("2907979776\n", "u");
  REQUIRE(used.ok());
  CHECK(*used == 2907979776ULL);
  auto cut = kfd::parse_used_memory("29079", "u");
  REQUIRE_FALSE(cut.ok());
  CHECK(cut.error().message() == "\"u\": \"29079\" is cut off (no newline at end of file)");
  auto garbage = kfd::parse_used_memory("lots\n", "u");
  REQUIRE_FALSE(garbage.ok());
  CHECK(garbage.error().message() == "\"u\": \"lots\" is not an unsigned decimal");
}

TEST_CASE("gfx_target_from_version decodes major, hex minor and hex stepping") {
  struct Case {
    std::uint64_t version;
    const char* gfx;
  } cases[] = {
      {90402, "gfx942"},   {90010, "gfx90a"},   {110001, "gfx1101"}, {100300, "gfx1030"},
      {90000, "gfx900"},   {90006, "gfx906"},   {90008, "gfx908"},   {90400, "gfx940"},
      {90500, "gfx950"},   {110000, "gfx1100"}, {120001, "gfx1201"}, {90012, "gfx90c"},
      {100102, "gfx1012"}, {80003, "gfx803"},   {91500, "gfx9f0"} /* minor 15 is "f" */,
  };
  for (const auto& c : cases) {
    CAPTURE(c.version);
    CHECK(kfd::gfx_target_from_version(c.version) == std::string(c.gfx));
  }
  for (std::uint64_t bad :
       {0ULL, 402ULL, 91600ULL, 90016ULL, 1000000ULL, 18446744073709551615ULL}) {
    CAPTURE(bad);
    CHECK_FALSE(kfd::gfx_target_from_version(bad).has_value());
  }
}

TEST_CASE("gfx_target_from_device_id and marketing names are table lookups") {
  CHECK(kfd::gfx_target_from_device_id(0x6860) == "gfx900");
  CHECK(kfd::gfx_target_from_device_id(0x66a1) == "gfx906");
  CHECK(kfd::gfx_target_from_device_id(0x738c) == "gfx908");
  CHECK(kfd::gfx_target_from_device_id(0x740c) == "gfx90a");
  CHECK(kfd::gfx_target_from_device_id(0x74a1) == "gfx942");
  CHECK_FALSE(kfd::gfx_target_from_device_id(0x747e).has_value());
  CHECK(kfd::marketing_name_from_device_id(0x74a1) == "AMD Instinct MI300X");
  CHECK_FALSE(kfd::marketing_name_from_device_id(0x6860).has_value());
}

TEST_CASE("pci_bus_id decodes location_id and domain in lowercase hex") {
  CHECK(kfd::pci_bus_id(0, 9728) == "0000:26:00.0");
  CHECK(kfd::pci_bus_id(0, 2560) == "0000:0a:00.0");
  CHECK(kfd::pci_bus_id(0, 6400) == "0000:19:00.0");
  CHECK(kfd::pci_bus_id(0, 0xc9 << 8) == "0000:c9:00.0");
  CHECK(kfd::pci_bus_id(0, (0xab << 8) | (0x1f << 3) | 7) == "0000:ab:1f.7");
  CHECK(kfd::pci_bus_id(1, (0x03 << 8) | (2 << 3) | 1) == "0001:03:02.1");
  CHECK(kfd::pci_bus_id(0x10000, 0) == "10000:00:00.0");
}

TEST_CASE("unique_id_hex gives 16 zero-padded digits, as in ROCr's GPU-<hex>") {
  CHECK(kfd::unique_id_hex(10165846890312063442ULL) == "8d1457e2c20f59d2");
  CHECK(kfd::unique_id_hex(598046273873802902ULL) == "084cafeae17e7696");
  CHECK(kfd::unique_id_hex(255) == "00000000000000ff");
}

TEST_CASE("is_meaningful_name") {
  CHECK(kfd::is_meaningful_name("vega10\n"));
  CHECK_FALSE(kfd::is_meaningful_name("ip discovery\n"));
  CHECK_FALSE(kfd::is_meaningful_name(" \n"));
}
