#include <doctest/doctest.h>

#include "resolve/hardware_match.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::resolve;

namespace {
detect::HardwareProfile host(const char* vendor, const char* name, const char* cap, const char* driver) {
  detect::HardwareProfile h;
  h.vendor = vendor;
  h.device_name = name;
  h.compute_capability = cap;
  h.driver_version = driver;
  h.cpu.architecture = "x86_64";
  h.cpu.isa = {"avx", "avx2", "fma"};
  h.cpu.model_name = "AMD EPYC 7B12";
  return h;
}
registry::HardwareProfile nvidia(const char* name, int lo_major, int lo_minor) {
  registry::HardwareProfile p;
  p.name = name;
  p.vendor = "nvidia";
  p.min_compute_capability = registry::ComputeCapability{lo_major, lo_minor};
  return p;
}
}  // namespace

TEST_CASE("compare_dotted") {
  CHECK(compare_dotted("570.26", "570.124.06") < 0);
  CHECK(compare_dotted("535.104.05", "535.104.5") == 0);
  CHECK(compare_dotted("550", "550.0.0") == 0);
  CHECK(compare_dotted("25.0.rc1.1", "25.0.rc2") < 0);
  CHECK(compare_dotted("25.5.1", "25.0.rc1.1") > 0);
}

TEST_CASE("NVIDIA compute capability and driver floors give quoted reasons") {
  auto p100 = host("nvidia", "Tesla P100-PCIE-16GB", "6.0", "535.104.05");
  auto m = match_hardware(nvidia("nvidia_cc70_plus", 7, 0), p100);
  CHECK_FALSE(m.ok);
  CHECK(m.reason == "profile nvidia_cc70_plus needs compute capability >= 7.0; Tesla P100-PCIE-16GB is 6.0");
  auto a100 = host("nvidia", "NVIDIA A100-SXM4-80GB", "8.0", "535.104.05");
  CHECK(match_hardware(nvidia("nvidia_cc70_plus", 7, 0), a100).ok);
  auto capped = nvidia("nvidia_cc70_to_90", 7, 0);
  capped.max_compute_capability = registry::ComputeCapability{9, 0};
  auto b200 = host("nvidia", "NVIDIA B200", "10.0", "570.124.06");
  CHECK(match_hardware(capped, b200).reason ==
        "profile nvidia_cc70_to_90 supports compute capability <= 9.0; NVIDIA B200 is 10.0");
  registry::Variant cu128;
  cu128.name = "cu128";
  cu128.min_driver = "570.26";
  CHECK(match_variant(cu128, a100).reason == "the cu128 build needs driver >= 570.26; found 535.104.05");
  CHECK(match_variant(cu128, b200).ok);
  CHECK(match_hardware(nvidia("nvidia_cc70_plus", 7, 0), host("amd", "AMD Instinct MI300X", "gfx942", "6.10.5")).reason ==
        "profile nvidia_cc70_plus is for nvidia accelerators; the host's primary accelerator is amd AMD Instinct MI300X");
}

TEST_CASE("AMD gfx targets, Ascend SoCs, CPU features and architectures") {
  registry::HardwareProfile mi;
  mi.name = "amd_mi300";
  mi.vendor = "amd";
  mi.gfx_targets = {"gfx942", "gfx950"};
  CHECK(match_hardware(mi, host("amd", "AMD Instinct MI300X", "gfx942", "6.10.5")).ok);
  CHECK(match_hardware(mi, host("amd", "AMD Instinct MI210", "gfx90a", "6.10.5")).reason ==
        "profile amd_mi300 supports gfx942, gfx950; AMD Instinct MI210 is gfx90a");
  registry::HardwareProfile a2;
  a2.name = "ascend_a2";
  a2.vendor = "ascend";
  a2.ascend_soc_prefixes = {"ascend910b"};
  CHECK(match_hardware(a2, host("ascend", "910B3", "Ascend910B3", "25.0.rc1.1")).ok);
  CHECK(match_hardware(a2, host("ascend", "310P3", "Ascend310P3", "25.0.rc1.1")).reason ==
        "profile ascend_a2 supports ascend910b*; the host's NPU is Ascend310P3");
  registry::HardwareProfile cpu;
  cpu.name = "cpu_x86_avx512";
  cpu.vendor = "cpu";
  cpu.architectures = {"x86_64"};
  cpu.cpu_isa = {"avx512f"};
  auto gpu_host = host("nvidia", "NVIDIA A100-SXM4-80GB", "8.0", "555.42.02");
  CHECK(match_hardware(cpu, gpu_host).reason ==
        "profile cpu_x86_avx512 needs the CPU feature avx512f; AMD EPYC 7B12 does not have it");
  gpu_host.cpu.isa.push_back("avx512f");
  CHECK(match_hardware(cpu, gpu_host).ok);  // a CPU profile matches any host with that CPU
  gpu_host.cpu.architecture = "aarch64";
  CHECK(match_hardware(cpu, gpu_host).reason == "profile cpu_x86_avx512 runs on x86_64; the host is aarch64");
}

TEST_CASE("the shipped profiles match the detect fixture hosts") {
  auto reg = registry::load_builtin_registry();
  REQUIRE_MESSAGE(reg.ok(), (reg.ok() ? "" : reg.error().to_string()));
  struct Case {
    const char* root;
    const char* profile;
    bool ok;
  };
  const Case cases[] = {
      {"a100x8-mig", "nvidia_cc80_plus", true},
      {"a100x8-mig", "nvidia_hopper_plus", false},
      {"h100-rtx4090", "nvidia_hopper_plus", true},
      {"mi300x", "amd_mi300", true},
      {"mi300x", "nvidia", false},
      {"ascend910b-x8", "ascend_a2", true},
      {"cpu-cgroup2", "cpu_x86_avx512", true},
      {"ascend910b-x8", "cpu_arm_neon", true},
      {"ascend910b-x8", "cpu_x86_avx2", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.root);
    CAPTURE(c.profile);
    test::FixtureContext fx(test::fixtures_dir() / "roots" / c.root);
    detect::DetectOptions o;
    auto h = detect::detect_hardware(fx.ctx(), o);
    const auto* p = reg->find_profile(c.profile);
    REQUIRE(p != nullptr);
    auto m = match_hardware(*p, h);
    CHECK_MESSAGE(m.ok == c.ok, m.reason);
    CHECK(m.reason.empty() == m.ok);
  }
}
