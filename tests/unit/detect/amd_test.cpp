// detect_amd on fixture roots (tests/fixtures/roots/mi300x, broken) and on small roots
// written by the tests for the old-kernel and garbled cases.
#include <doctest/doctest.h>

#include <string>

#include "cyllm/detect.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::detect;
namespace fs = std::filesystem;

namespace {

const char* kNodes = "sys/class/kfd/kfd/topology/nodes";

std::string gpu_properties(int simd_count, int simd_per_cu, const std::string& extra) {
  return "cpu_cores_count 0\nsimd_count " + std::to_string(simd_count) +
         "\nsimd_per_cu " + std::to_string(simd_per_cu) + "\n" + extra;
}

// A root with one CPU node 0 and the given GPU nodes (properties text by node id).
void write_kfd(const fs::path& root, const std::vector<std::pair<int, std::string>>& gpus) {
  test::write_file(root / kNodes / "0/properties", "cpu_cores_count 16\nsimd_count 0\n");
  for (const auto& [id, props] : gpus)
    test::write_file(root / kNodes / std::to_string(id) / "properties", props);
}

std::vector<std::string> bus_ids(const AmdInfo& info) {
  std::vector<std::string> out;
  for (const auto& g : info.gpus) out.push_back(g.pci_bus_id);
  return out;
}

}  // namespace

TEST_CASE("mi300x root: eight MI300X in SPX mode, CPU nodes skipped") {
  test::FixtureContext fx(test::fixtures_dir() / "roots/mi300x");
  std::vector<Warning> warnings;
  auto info = detect_amd(fx.ctx(), DetectOptions{}, warnings);
  REQUIRE(info.has_value());
  CHECK(warnings.empty());
  CHECK(info->rocm_version == "7.0.2");
  CHECK(info->driver_version == "6.10.5");
  CHECK(info->total_gpus == 8);
  REQUIRE(info->gpus.size() == 8);
  CHECK(bus_ids(*info) == std::vector<std::string>{"0000:0c:00.0", "0000:26:00.0",
                                                   "0000:46:00.0", "0000:5d:00.0",
                                                   "0000:8c:00.0", "0000:aa:00.0",
                                                   "0000:c2:00.0", "0000:e5:00.0"});
  // The GPU of §2.3 (BDF 0000:26:00.0, renderD136).
  const AmdGpu& g = info->gpus[1];
  CHECK(g.index == 1);
  CHECK(g.kfd_node == 3);
  CHECK(g.name == "AMD Instinct MI300X");
  CHECK(g.gfx_target == "gfx942");
  CHECK(g.unique_id == "8d1457e2c20f59d2");
  CHECK(g.vram_total_bytes == 206141652992ULL);  // 196592 MiB
  REQUIRE(g.vram_used_bytes.has_value());
  CHECK(*g.vram_used_bytes == 297795584ULL);
  CHECK(g.compute_units == 304);
  CHECK(g.simd_count == 1216);
  CHECK(g.device_id == 0x74a1);
  for (std::size_t i = 0; i < info->gpus.size(); ++i) {
    CAPTURE(i);
    CHECK(info->gpus[i].index == static_cast<int>(i));
    CHECK(info->gpus[i].kfd_node == static_cast<int>(i) + 2);
    CHECK(info->gpus[i].gfx_target == "gfx942");
    CHECK(info->gpus[i].compute_units == 304);
  }
  CHECK(*info->gpus[0].vram_used_bytes == 0);
}

TEST_CASE("no KFD topology: no AMD and no warning") {
  test::TempDir root;
  test::FixtureContext fx(root.path());
  std::vector<Warning> warnings;
  CHECK_FALSE(detect_amd(fx.ctx(), DetectOptions{}, warnings).has_value());
  CHECK(warnings.empty());

  // A topology with CPU nodes only (an AMD CPU host with amdgpu loaded) is not AMD GPUs.
  write_kfd(root.path(), {});
  CHECK_FALSE(detect_amd(fx.ctx(), DetectOptions{}, warnings).has_value());
  CHECK(warnings.empty());
}

TEST_CASE("broken root: a GPU node cut mid-line is skipped with a warning naming file and line") {
  test::FixtureContext fx(test::fixtures_dir() / "roots/broken");
  std::vector<Warning> warnings;
  auto info = detect_amd(fx.ctx(), DetectOptions{}, warnings);
  REQUIRE(info.has_value());  // the driver is there, the node is not usable
  CHECK(info->gpus.empty());
  CHECK(info->total_gpus == 0);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].code == "detect.bad_sysfs");
  CHECK(warnings[0].message ==
        "\"/sys/class/kfd/kfd/topology/nodes/1/properties\" line 19 \"gfx_target_vers\" is cut "
        "off (no newline at end of file); KFD node 1 skipped");
}

TEST_CASE("HIP_VISIBLE_DEVICES selects and orders by index; original indices stay") {
  test::FixtureContext fx(test::fixtures_dir() / "roots/mi300x");
  DetectOptions opts;
  opts.hip_visible_devices = "3,1";
  std::vector<Warning> warnings;
  auto info = detect_amd(fx.ctx(), opts, warnings);
  REQUIRE(info.has_value());
  CHECK(warnings.empty());
  CHECK(info->total_gpus == 8);
  CHECK(bus_ids(*info) == std::vector<std::string>{"0000:5d:00.0", "0000:26:00.0"});
  CHECK(info->gpus[0].index == 3);
  CHECK(info->gpus[1].index == 1);
}

TEST_CASE("ROCR_VISIBLE_DEVICES by UUID, then HIP_VISIBLE_DEVICES indexes what is left") {
  test::FixtureContext fx(test::fixtures_dir() / "roots/mi300x");
  DetectOptions opts;
  opts.rocr_visible_devices = "GPU-8d1457e2c20f59d2,5,7";
  std::vector<Warning> warnings;
  auto info = detect_amd(fx.ctx(), opts, warnings);
  REQUIRE(info.has_value());
  CHECK(bus_ids(*info) ==
        std::vector<std::string>{"0000:26:00.0", "0000:aa:00.0", "0000:e5:00.0"});

  opts.hip_visible_devices = "2,0";  // positions among the three ROCr exposes
  info = detect_amd(fx.ctx(), opts, warnings);
  REQUIRE(info.has_value());
  CHECK(warnings.empty());
  CHECK(bus_ids(*info) == std::vector<std::string>{"0000:e5:00.0", "0000:26:00.0"});
  CHECK(info->gpus[0].index == 7);
}

TEST_CASE("a HIP_VISIBLE_DEVICES entry that matches nothing is a warning; empty hides all") {
  test::FixtureContext fx(test::fixtures_dir() / "roots/mi300x");
  DetectOptions opts;
  opts.hip_visible_devices = "0,8,1";
  std::vector<Warning> warnings;
  auto info = detect_amd(fx.ctx(), opts, warnings);
  REQUIRE(info.has_value());
  CHECK(bus_ids(*info) == std::vector<std::string>{"0000:0c:00.0"});
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].code == "detect.bad_visible_devices");
  CHECK(warnings[0].message.find("HIP_VISIBLE_DEVICES") != std::string::npos);
  CHECK(warnings[0].message.find("\"8\"") != std::string::npos);

  warnings.clear();
  opts.hip_visible_devices = "";
  info = detect_amd(fx.ctx(), opts, warnings);
  REQUIRE(info.has_value());
  CHECK(info->gpus.empty());
  CHECK(info->total_gpus == 8);
  CHECK(warnings.empty());
}

TEST_CASE("old kernel (§2.2 Vega 10): gfx from the device-id table with a warning") {
  test::TempDir root;
  write_kfd(root.path(),
            {{1, gpu_properties(256, 4,
                                "vendor_id 4098\ndevice_id 26720\nlocation_id 6400\n"
                                "drm_render_minor 128\nlocal_mem_size 17163091968\n"
                                "unique_id 14073402507705256556\n")}});
  test::write_file(root.path() / kNodes / "1/name", "vega10\n");
  test::write_file(root.path() / kNodes / "1/mem_banks/0/properties",
                   "heap_type 1\nsize_in_bytes 17163091968\nflags 0\nwidth 2048\n"
                   "mem_clk_max 945\n");
  test::FixtureContext fx(root.path());
  std::vector<Warning> warnings;
  auto info = detect_amd(fx.ctx(), DetectOptions{}, warnings);
  REQUIRE(info.has_value());
  CHECK(info->rocm_version.empty());
  CHECK(info->driver_version.empty());
  REQUIRE(info->gpus.size() == 1);
  const AmdGpu& g = info->gpus[0];
  CHECK(g.gfx_target == "gfx900");
  CHECK(g.name == "vega10");
  CHECK(g.pci_bus_id == "0000:19:00.0");
  CHECK(g.unique_id == "c34ec50444dd0a6c");
  CHECK(g.vram_total_bytes == 17163091968ULL);
  CHECK_FALSE(g.vram_used_bytes.has_value());  // no used_memory on this kernel
  CHECK(g.compute_units == 64);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].code == "detect.bad_sysfs");
  CHECK(warnings[0].message ==
        "\"/sys/class/kfd/kfd/topology/nodes/1/properties\": no gfx_target_version (older "
        "kernel); gfx900 taken from a table of PCI device ids (device 0x6860)");
}

TEST_CASE("unknown part without gfx_target_version and mem_banks: name from device id") {
  test::TempDir root;
  write_kfd(root.path(), {{1, gpu_properties(120, 2,
                                             "device_id 29822\nlocation_id 768\n"
                                             "local_mem_size 17163091968\n")}});
  test::FixtureContext fx(root.path());
  std::vector<Warning> warnings;
  auto info = detect_amd(fx.ctx(), DetectOptions{}, warnings);
  REQUIRE(info.has_value());
  REQUIRE(info->gpus.size() == 1);
  CHECK(info->gpus[0].gfx_target.empty());
  CHECK(info->gpus[0].name == "AMD GPU 0x747e");
  CHECK(info->gpus[0].vram_total_bytes == 17163091968ULL);  // local_mem_size fallback
  CHECK(info->gpus[0].compute_units == 60);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].message ==
        "\"/sys/class/kfd/kfd/topology/nodes/1/properties\": no gfx_target_version (older "
        "kernel); gfx target unknown for PCI device 0x747e");
}

TEST_CASE("nodes are taken in numeric order, a garbled node is skipped, indices stay dense") {
  test::TempDir root;
  std::vector<std::pair<int, std::string>> gpus;
  for (int id = 1; id <= 11; ++id)
    gpus.push_back({id, gpu_properties(8, 4,
                                       "gfx_target_version 110001\ndevice_id 29822\n"
                                       "location_id " + std::to_string(id << 8) + "\n")});
  gpus[4].second = "simd_count 8\nsimd_per_cu four\n";  // node 5
  write_kfd(root.path(), gpus);
  test::FixtureContext fx(root.path());
  std::vector<Warning> warnings;
  auto info = detect_amd(fx.ctx(), DetectOptions{}, warnings);
  REQUIRE(info.has_value());
  REQUIRE(info->gpus.size() == 10);
  std::vector<int> nodes;
  for (const auto& g : info->gpus) nodes.push_back(g.kfd_node);
  CHECK(nodes == std::vector<int>{1, 2, 3, 4, 6, 7, 8, 9, 10, 11});
  CHECK(info->gpus[4].index == 4);
  CHECK(info->gpus[4].pci_bus_id == "0000:06:00.0");
  CHECK(info->gpus[0].gfx_target == "gfx1101");
  CHECK(info->gpus[0].name == "gfx1101");
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].message ==
        "\"/sys/class/kfd/kfd/topology/nodes/5/properties\" line 2: value \"four\" of "
        "simd_per_cu is not an unsigned decimal; KFD node 5 skipped");
}

TEST_CASE("product_name, simd_per_cu 0, bad used_memory and a binary version file") {
  test::TempDir root;
  test::copy_tree(test::fixtures_dir() / "roots/mi300x", root.path());
  test::write_file(root.path() / "sys/class/drm/renderD128/device/product_name",
                   "AMD Instinct MI300X OAM\n");
  test::write_file(root.path() / kNodes / "2/mem_banks/0/used_memory", "garbage\n");
  test::write_file(root.path() / kNodes / "3/properties",
                   gpu_properties(1216, 0,
                                  "gfx_target_version 90402\ndevice_id 29857\n"
                                  "location_id 9728\ndrm_render_minor 136\n"));
  test::write_file(root.path() / "opt/rocm/.info/version", std::string("7.0\x01\n", 5));
  test::FixtureContext fx(root.path());
  std::vector<Warning> warnings;
  auto info = detect_amd(fx.ctx(), DetectOptions{}, warnings);
  REQUIRE(info.has_value());
  REQUIRE(info->gpus.size() == 8);
  CHECK(info->gpus[0].name == "AMD Instinct MI300X OAM");
  CHECK_FALSE(info->gpus[0].vram_used_bytes.has_value());
  CHECK(info->gpus[0].vram_total_bytes == 206141652992ULL);
  CHECK(info->gpus[1].compute_units == 0);
  CHECK(info->gpus[1].name == "AMD Instinct MI300X");
  CHECK(info->rocm_version.empty());
  std::vector<std::string> messages;
  for (const auto& w : warnings) {
    CHECK(w.code == "detect.bad_sysfs");
    messages.push_back(w.message);
  }
  CHECK(messages ==
        std::vector<std::string>{
            "\"/sys/class/kfd/kfd/topology/nodes/2/mem_banks/0/used_memory\": \"garbage\" is not "
            "an unsigned decimal",
            "\"/sys/class/kfd/kfd/topology/nodes/3/properties\": simd_per_cu is 0; compute units "
            "unknown",
            "\"/opt/rocm/.info/version\": \"7.0\\x01\" is not a one-line text",
        });
}
