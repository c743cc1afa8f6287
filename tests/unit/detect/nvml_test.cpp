// detect_nvml against the fake libnvidia-ml (tests/fixtures/nvml_fake/fake_nvml.c), copied
// into a fixture root at usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 beside its canned
// data (fake-nvml.txt). Each test gets its own copy, so dlopen loads a fresh instance.
#include "detect/nvml.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_support.h"

namespace cyllm::detect {
namespace {
namespace fs = std::filesystem;

constexpr std::uint64_t kMiB = 1048576;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string canned(const char* name) {
  return slurp(test::fixtures_dir() / "nvml_fake" / name);
}

// A fixture root (optionally a copy of tests/fixtures/roots/<base>) with the fake NVML.
class NvmlRoot {
 public:
  explicit NvmlRoot(const std::string& data, const char* base = nullptr) {
    root_ = tmp_.path() / "root";
    if (base != nullptr) test::copy_tree(test::fixtures_dir() / "roots" / base, root_);
    fs::create_directories(lib_dir());
    fs::copy_file(test::fake_nvml_path(), lib_path());
    test::write_file(lib_dir() / "fake-nvml.txt", data);
    ctx_ = std::make_unique<test::FixtureContext>(root_);
  }
  const Context& ctx() const { return ctx_->ctx(); }
  fs::path lib_dir() const { return root_ / "usr/lib/x86_64-linux-gnu"; }
  fs::path lib_path() const { return lib_dir() / "libnvidia-ml.so.1"; }
  // What the fake recorded: "nvmlInit_v2 <rc>" / "nvmlShutdown <rc>" lines.
  std::string calls() const { return slurp(lib_dir() / "fake-nvml.log"); }

 private:
  test::TempDir tmp_;
  fs::path root_;
  std::unique_ptr<test::FixtureContext> ctx_;
};

const char* kA100Uuids[] = {
    "GPU-31515c3d-1414-7c2c-004a-f86a898946ac", "GPU-9c8f2a4e-5b71-3d06-e2a9-71c04f3b8d12",
    "GPU-e4d1b7a0-2c63-8f95-1a7e-b5c9d30f6e48", "GPU-5a27c9e3-8d14-4b6f-93a2-0e7f1c68d5b9",
    "GPU-b06e3f81-7a29-c54d-d8e1-4f92a6c0b37e", "GPU-2f9d6c14-e3b8-05a7-6c4f-8b1e72d9a360",
    "GPU-d7a4e092-41c6-9b3f-fe58-26a0c8d1e79b", "GPU-68c31f5b-b9e2-7d40-a5c7-93f4e0b2186d"};
const char* kA100Buses[] = {"00000000:07:00.0", "00000000:0F:00.0", "00000000:47:00.0",
                            "00000000:4E:00.0", "00000000:87:00.0", "00000000:90:00.0",
                            "00000000:B7:00.0", "00000000:BD:00.0"};

}  // namespace

TEST_CASE("8x A100 with one GPU in MIG mode") {
  NvmlRoot host(canned("a100x8-mig.txt"), "a100x8-mig");
  std::vector<Warning> w;
  auto r = detect_nvml(host.ctx(), w);
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  const NvidiaInfo& info = **r;
  CHECK(w.empty());
  CHECK(info.source == "nvml");
  CHECK(info.driver_version == "555.42.02");
  CHECK(info.cuda_driver_version == "12.5");
  CHECK(info.total_gpus == 8);
  REQUIRE(info.gpus.size() == 8);
  for (int i = 0; i < 8; ++i) {
    const auto& g = info.gpus[i];
    CAPTURE(i);
    CHECK(g.index == i);
    CHECK(g.name == "NVIDIA A100-SXM4-80GB");
    CHECK(g.uuid == kA100Uuids[i]);
    CHECK(g.pci_bus_id == kA100Buses[i]);
    CHECK(g.vram_total_bytes == 81920 * kMiB);
    CHECK(g.vram_free_bytes == (i == 3 ? 81071 : 81158) * kMiB);
    CHECK(g.compute_capability == "8.0");
    CHECK(g.mig_enabled == (i == 3));
    CHECK(g.mig_devices.size() == (i == 3 ? 2u : 0u));
  }
  const auto& migs = info.gpus[3].mig_devices;
  CHECK(migs[0].uuid == "MIG-1f8b2c6d-93e0-5a74-b1d8-6c2e9f04a3b7");
  CHECK(migs[0].name == "4g.40gb");
  CHECK(migs[0].vram_total_bytes == 40192 * kMiB);
  CHECK(migs[1].uuid == "MIG-a3e07d94-2b5c-5f18-8e6a-d40c7b13f925");
  CHECK(migs[1].name == "3g.40gb");
  CHECK(migs[1].vram_total_bytes == 40192 * kMiB);
  CHECK(host.calls() == "nvmlInit_v2 0\nnvmlShutdown 0\n");
}

TEST_CASE("H100 + RTX 4090: a GPU without MIG support has mig_enabled unknown") {
  NvmlRoot host(canned("h100-rtx4090.txt"), "h100-rtx4090");
  std::vector<Warning> w;
  auto r = detect_nvml(host.ctx(), w);
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  CHECK(w.empty());
  const auto& gpus = (*r)->gpus;
  REQUIRE(gpus.size() == 2);
  CHECK(gpus[0].name == "NVIDIA H100 80GB HBM3");
  CHECK(gpus[0].compute_capability == "9.0");
  CHECK(gpus[0].vram_total_bytes == 81559 * kMiB);
  CHECK(gpus[0].pci_bus_id == "00000000:0E:00.0");
  CHECK(gpus[0].mig_enabled == false);
  CHECK(gpus[1].name == "NVIDIA GeForce RTX 4090");
  CHECK(gpus[1].uuid == "GPU-f2c9a1d7-6e48-0b3d-9a57-c1e84d26b0f3");
  CHECK(gpus[1].compute_capability == "8.9");
  CHECK(gpus[1].vram_total_bytes == 24564 * kMiB);
  CHECK(gpus[1].vram_free_bytes == 24210 * kMiB);
  CHECK_FALSE(gpus[1].mig_enabled.has_value());
  CHECK((*r)->cuda_driver_version == "12.8");
  CHECK((*r)->driver_version == "570.195.03");
}

TEST_CASE("no libnvidia-ml under the root: nullopt and no warning") {
  test::FixtureContext fx(test::fixtures_dir() / "roots" / "a100x8-mig");
  std::vector<Warning> w;
  auto r = detect_nvml(fx.ctx(), w);
  REQUIRE(r.ok());
  CHECK_FALSE(r->has_value());
  CHECK(w.empty());
}

TEST_CASE("nvmlInit_v2 failures are NvmlUnavailable and quote NVML's text") {
  struct Case {
    int code;
    const char* text;
  };
  for (auto c : {Case{9, "Driver Not Loaded"}, Case{18, "Driver/library version mismatch"}}) {
    CAPTURE(c.code);
    NvmlRoot host("init " + std::to_string(c.code) + "\n" + canned("a100x8-mig.txt"));
    std::vector<Warning> w;
    auto r = detect_nvml(host.ctx(), w);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Errc::NvmlUnavailable);
    CHECK(r.error().message() == std::string("nvmlInit_v2 failed: \"") + c.text +
                                     "\" (NVML error " + std::to_string(c.code) + ")");
    REQUIRE(r.error().context().size() == 1);
    CHECK(r.error().context()[0] == "initialising NVML from " + host.lib_path().string());
    CHECK(w.empty());
    // No shutdown without a successful init.
    CHECK(host.calls() == "nvmlInit_v2 " + std::to_string(c.code) + "\n");
  }
}

TEST_CASE("a file that is not a shared library") {
  NvmlRoot host("");
  fs::remove(host.lib_path());
  test::write_file(host.lib_path(), "not an ELF file\n");
  std::vector<Warning> w;
  auto r = detect_nvml(host.ctx(), w);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::NvmlUnavailable);
  CHECK(r.error().message().rfind("cannot load \"" + host.lib_path().string() + "\": ", 0) == 0);
}

TEST_CASE("a library without the NVML entry points") {
  // glibc's libanl.so.1 is an empty placeholder library since glibc 2.34.
  const fs::path stub = "/lib/x86_64-linux-gnu/libanl.so.1";
  REQUIRE(fs::exists(stub));
  NvmlRoot host("");
  fs::remove(host.lib_path());
  fs::copy_file(stub, host.lib_path());
  std::vector<Warning> w;
  auto r = detect_nvml(host.ctx(), w);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::NvmlUnavailable);
  CHECK(r.error().message() ==
        "\"" + host.lib_path().string() +
            "\" lacks nvmlInit_v2, nvmlShutdown, nvmlDeviceGetCount_v2, "
            "nvmlDeviceGetHandleByIndex_v2");
}

TEST_CASE("a failing device count is an error, and NVML is still shut down") {
  NvmlRoot host("fail|nvmlDeviceGetCount_v2|-1|999\n" + canned("a100x8-mig.txt"));
  std::vector<Warning> w;
  auto r = detect_nvml(host.ctx(), w);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::NvmlCallFailed);
  CHECK(r.error().message() == "nvmlDeviceGetCount_v2 failed: \"Unknown Error\" (NVML error 999)");
  CHECK(host.calls() == "nvmlInit_v2 0\nnvmlShutdown 0\n");
}

TEST_CASE("per-device failures degrade one field or one GPU, with a warning each") {
  NvmlRoot host(canned("h100-rtx4090.txt") +
                "fail|nvmlDeviceGetName|1|15\n"
                "fail|nvmlDeviceGetMemoryInfo|0|4\n"
                "fail|nvmlDeviceGetMigMode|0|999\n"
                "fail|nvmlDeviceGetCudaComputeCapability|1|3\n"  // NOT_SUPPORTED: silent
                "fail|nvmlSystemGetDriverVersion|-1|999\n"
                "count 3\n");  // GPU 2 has no handle
  std::vector<Warning> w;
  auto r = detect_nvml(host.ctx(), w);
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  const auto& info = **r;
  CHECK(info.total_gpus == 3);
  REQUIRE(info.gpus.size() == 2);
  CHECK(info.driver_version.empty());
  CHECK(info.cuda_driver_version == "12.8");
  CHECK(info.gpus[0].name == "NVIDIA H100 80GB HBM3");
  CHECK(info.gpus[0].vram_total_bytes == 0);
  CHECK_FALSE(info.gpus[0].vram_free_bytes.has_value());
  CHECK_FALSE(info.gpus[0].mig_enabled.has_value());
  CHECK(info.gpus[1].name.empty());
  CHECK(info.gpus[1].uuid == "GPU-f2c9a1d7-6e48-0b3d-9a57-c1e84d26b0f3");
  CHECK(info.gpus[1].compute_capability.empty());
  REQUIRE(w.size() == 5);
  for (const auto& x : w) CHECK(x.code == "detect.nvml_call_failed");
  CHECK(w[0].message == "nvmlSystemGetDriverVersion failed: \"Unknown Error\" (NVML error 999)");
  CHECK(w[1].message ==
        "nvmlDeviceGetMemoryInfo(GPU 0) failed: \"Insufficient Permissions\" (NVML error 4)");
  CHECK(w[2].message == "nvmlDeviceGetMigMode(GPU 0) failed: \"Unknown Error\" (NVML error 999)");
  CHECK(w[3].message == "nvmlDeviceGetName(GPU 1) failed: \"GPU is lost\" (NVML error 15)");
  CHECK(w[4].message ==
        "nvmlDeviceGetHandleByIndex_v2(GPU 2) failed: \"Invalid Argument\" (NVML error 2)");
  CHECK(host.calls() == "nvmlInit_v2 0\nnvmlShutdown 0\n");
}

TEST_CASE("strings from NVML are bounded: no NUL, too long, control bytes") {
  NvmlRoot host(
      "driver 555.42.02\n"
      "cuda 0\n"
      "gpu|@unterminated|GPU-" + std::string(120, 'a') + "|00000000:07:00.0|100|200|8.0|0\n"
      "gpu|Bad\x07Name|GPU-1|00000000:0F:00.0|100|50|8.0|0\n");
  std::vector<Warning> w;
  auto r = detect_nvml(host.ctx(), w);
  REQUIRE(r.ok());
  REQUIRE(r->has_value());
  const auto& gpus = (**r).gpus;
  REQUIRE(gpus.size() == 2);
  CHECK(gpus[0].name == std::string(96, 'X'));  // cut at the buffer, never past it
  CHECK(gpus[0].uuid.empty());                  // 124 bytes do not fit: INSUFFICIENT_SIZE
  CHECK_FALSE(gpus[0].vram_free_bytes.has_value());  // free > total is not believed
  CHECK(gpus[0].vram_total_bytes == 100);
  CHECK(gpus[1].name == "Bad?Name");
  CHECK(gpus[1].vram_free_bytes == 50u);
  CHECK((**r).cuda_driver_version.empty());
  REQUIRE(w.size() == 2);
  CHECK(w[0].message == "nvmlSystemGetCudaDriverVersion_v2 returned 0");
  CHECK(w[1].message ==
        "nvmlDeviceGetUUID(GPU 0) failed: \"Insufficient Size\" (NVML error 7)");
}

TEST_CASE("a MIG slot that fails is skipped with a warning") {
  NvmlRoot host(canned("a100x8-mig.txt") + "fail|nvmlDeviceGetMaxMigDeviceCount|3|999\n");
  std::vector<Warning> w;
  auto r = detect_nvml(host.ctx(), w);
  REQUIRE(r.ok());
  CHECK((**r).gpus[3].mig_enabled == true);
  CHECK((**r).gpus[3].mig_devices.empty());
  REQUIRE(w.size() == 1);
  CHECK(w[0].message ==
        "nvmlDeviceGetMaxMigDeviceCount(GPU 3) failed: \"Unknown Error\" (NVML error 999)");
}

TEST_CASE("CUDA driver version encoding") {
  CHECK(format_cuda_driver_version(12050) == "12.5");
  CHECK(format_cuda_driver_version(11080) == "11.8");
  CHECK(format_cuda_driver_version(13000) == "13.0");
  CHECK(format_cuda_driver_version(10010) == "10.1");
  CHECK_FALSE(format_cuda_driver_version(0).has_value());
  CHECK_FALSE(format_cuda_driver_version(-12050).has_value());
  CHECK_FALSE(format_cuda_driver_version(1000000).has_value());
}

TEST_CASE("MIG profile from a MIG device name") {
  CHECK(parse_mig_profile("NVIDIA A100-SXM4-80GB MIG 3g.40gb") == "3g.40gb");
  CHECK(parse_mig_profile("NVIDIA H100 80GB HBM3 MIG 1g.10gb") == "1g.10gb");
  CHECK(parse_mig_profile("NVIDIA A100-SXM4-80GB") == "");
  CHECK(parse_mig_profile("MIG") == "");
}

}  // namespace cyllm::detect
