// detect_nvidia end to end: fixture roots with shell-script nvidia-smi run by the real
// PosixCommandRunner, the fake NVML, and a FakeCommandRunner for the failure shapes.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cyllm/detect.h"
#include "detect/nvidia_smi.h"
#include "test_support.h"

namespace cyllm::detect {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr std::uint64_t kMiB = 1048576;

fs::path root_of(const char* name) { return test::fixtures_dir() / "roots" / name; }

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<int> indices(const NvidiaInfo& info) {
  std::vector<int> out;
  for (const auto& g : info.gpus) out.push_back(g.index);
  return out;
}

// A copy of a fixture root with the fake NVML (and its canned data) installed.
struct RootWithNvml {
  test::TempDir tmp;
  fs::path root;
  RootWithNvml(const char* base, const std::string& data) {
    root = tmp.path() / "root";
    test::copy_tree(root_of(base), root);
    fs::path lib = root / "usr/lib/x86_64-linux-gnu";
    fs::create_directories(lib);
    fs::copy_file(test::fake_nvml_path(), lib / "libnvidia-ml.so.1");
    test::write_file(lib / "fake-nvml.txt", data);
  }
};

// A bare root whose nvidia-smi is answered by a FakeCommandRunner.
struct FakeSmiHost {
  test::TempDir tmp;
  RootedFilesystem fs{tmp.path().string()};
  test::FakeCommandRunner runner;
  SystemClock clock;
  NullLogger log;
  Context ctx{fs, runner, clock, log, nullptr};
  std::string smi;

  explicit FakeSmiHost(bool with_tool = true) {
    if (with_tool) {
      smi = (tmp.path() / "usr/bin/nvidia-smi").string();
      test::write_file(smi, "#!/bin/sh\nexit 99\n");
      fs::permissions(smi, fs::perms::owner_all);
    }
  }
  void procfs(const std::string& text) {
    test::write_file(tmp.path() / "proc/driver/nvidia/version", text);
  }
  std::string query(bool cc = true) const {
    return smi + " --query-gpu=" +
           std::string(cc ? kNvidiaSmiQueryFields : kNvidiaSmiQueryFieldsNoCc) +
           " --format=csv,noheader,nounits";
  }
};

const char* kProc550 =
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n"
    "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14) \n";

const char* kBanner535 =
    "| NVIDIA-SMI 535.54.03   Driver Version: 535.54.03   CUDA Version: 12.2     |\n";

}  // namespace

TEST_CASE("a100x8-mig through nvidia-smi (no NVML under the root)") {
  test::FixtureContext fx(root_of("a100x8-mig"));
  std::vector<Warning> w;
  auto info = detect_nvidia(fx.ctx(), DetectOptions{}, w);
  REQUIRE(info.has_value());
  CHECK(w.empty());
  CHECK(info->source == "nvidia-smi");
  CHECK(info->driver_version == "555.42.02");
  CHECK(info->cuda_driver_version == "12.5");
  CHECK(info->total_gpus == 8);
  REQUIRE(info->gpus.size() == 8);
  CHECK(info->gpus[0].uuid == "GPU-31515c3d-1414-7c2c-004a-f86a898946ac");
  CHECK(info->gpus[7].pci_bus_id == "00000000:BD:00.0");
  for (const auto& g : info->gpus) {
    CHECK(g.name == "NVIDIA A100-SXM4-80GB");
    CHECK(g.vram_total_bytes == 81920 * kMiB);
    CHECK(g.compute_capability == "8.0");
    CHECK(g.mig_enabled == (g.index == 3));
  }
  const auto& migs = info->gpus[3].mig_devices;
  REQUIRE(migs.size() == 2);
  CHECK(migs[0].name == "4g.40gb");
  CHECK(migs[0].uuid == "MIG-1f8b2c6d-93e0-5a74-b1d8-6c2e9f04a3b7");
  CHECK(migs[1].name == "3g.40gb");
  CHECK(migs[1].uuid == "MIG-a3e07d94-2b5c-5f18-8e6a-d40c7b13f925");
  CHECK(info->gpus[3].vram_free_bytes == 81071 * kMiB);
}

TEST_CASE("h100-rtx4090 through nvidia-smi") {
  test::FixtureContext fx(root_of("h100-rtx4090"));
  std::vector<Warning> w;
  auto info = detect_nvidia(fx.ctx(), DetectOptions{}, w);
  REQUIRE(info.has_value());
  CHECK(w.empty());
  CHECK(info->source == "nvidia-smi");
  CHECK(info->driver_version == "570.195.03");
  CHECK(info->cuda_driver_version == "12.8");
  REQUIRE(info->gpus.size() == 2);
  CHECK(info->gpus[0].name == "NVIDIA H100 80GB HBM3");
  CHECK(info->gpus[0].compute_capability == "9.0");
  CHECK(info->gpus[0].vram_total_bytes == 81559 * kMiB);
  CHECK(info->gpus[0].mig_enabled == false);
  CHECK(info->gpus[1].name == "NVIDIA GeForce RTX 4090");
  CHECK(info->gpus[1].compute_capability == "8.9");
  CHECK(info->gpus[1].vram_total_bytes == 24564 * kMiB);
  CHECK(info->gpus[1].vram_free_bytes == 24210 * kMiB);
  CHECK_FALSE(info->gpus[1].mig_enabled.has_value());
}

TEST_CASE("NVML wins over nvidia-smi when it loads; use_nvml=false skips it") {
  RootWithNvml host("a100x8-mig", slurp(test::fixtures_dir() / "nvml_fake/a100x8-mig.txt"));
  test::FixtureContext fx(host.root);
  std::vector<Warning> w;
  auto info = detect_nvidia(fx.ctx(), DetectOptions{}, w);
  REQUIRE(info.has_value());
  CHECK(w.empty());
  CHECK(info->source == "nvml");
  CHECK(info->gpus.size() == 8);
  CHECK(info->gpus[3].mig_devices.size() == 2);
  CHECK(info->gpus[3].mig_devices[0].vram_total_bytes == 40192 * kMiB);

  DetectOptions no_nvml;
  no_nvml.use_nvml = false;
  auto smi = detect_nvidia(fx.ctx(), no_nvml, w);
  REQUIRE(smi.has_value());
  CHECK(smi->source == "nvidia-smi");
  CHECK(smi->gpus.size() == 8);
  CHECK(smi->gpus[3].mig_devices[0].vram_total_bytes == 0);  // -L knows no sizes
  CHECK(w.empty());
}

TEST_CASE("NVML that fails to initialise falls back to nvidia-smi with a warning") {
  RootWithNvml host("h100-rtx4090", "init 18\n");
  test::FixtureContext fx(host.root);
  std::vector<Warning> w;
  auto info = detect_nvidia(fx.ctx(), DetectOptions{}, w);
  REQUIRE(info.has_value());
  CHECK(info->source == "nvidia-smi");
  CHECK(info->gpus.size() == 2);
  REQUIRE(w.size() == 1);
  CHECK(w[0].code == "detect.nvml_unavailable");
  CHECK(w[0].message ==
        "nvmlInit_v2 failed: \"Driver/library version mismatch\" (NVML error 18) (while "
        "initialising NVML from " +
            (host.root / "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1").string() +
            ") (while detecting NVIDIA GPUs)");
}

TEST_CASE("a hung nvidia-smi times out; the driver version comes from procfs") {
  test::FixtureContext fx(root_of("broken"));
  DetectOptions o;
  o.tool_timeout = 300ms;
  std::vector<Warning> w;
  auto t0 = std::chrono::steady_clock::now();
  auto info = detect_nvidia(fx.ctx(), o, w);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took < 5s);  // one timeout, not one per nvidia-smi call
  REQUIRE(info.has_value());
  CHECK(info->source == "procfs");
  CHECK(info->driver_version == "550.54.14");
  CHECK(info->gpus.empty());
  CHECK(info->total_gpus == 0);
  REQUIRE(w.size() == 1);
  CHECK(w[0].code == "detect.tool_timeout");
  CHECK(w[0].message.find("did not finish within 300 ms") != std::string::npos);
  CHECK(w[0].message.find("(while listing NVIDIA GPUs with nvidia-smi)") != std::string::npos);
}

TEST_CASE("CUDA_VISIBLE_DEVICES keeps the named GPUs, in its order") {
  test::FixtureContext fx(root_of("a100x8-mig"));
  DetectOptions o;
  std::vector<Warning> w;

  o.cuda_visible_devices = "3,GPU-3151";
  auto a = detect_nvidia(fx.ctx(), o, w);
  REQUIRE(a.has_value());
  CHECK(indices(*a) == std::vector<int>{3, 0});
  CHECK(a->gpus[0].mig_devices.size() == 2);
  CHECK(a->total_gpus == 8);
  CHECK(w.empty());

  o.cuda_visible_devices = "MIG-a3e07d94-2b5c-5f18-8e6a-d40c7b13f925,6";
  auto b = detect_nvidia(fx.ctx(), o, w);
  REQUIRE(b.has_value());
  CHECK(indices(*b) == std::vector<int>{3, 6});
  REQUIRE(b->gpus[0].mig_devices.size() == 1);
  CHECK(b->gpus[0].mig_devices[0].name == "3g.40gb");
  CHECK(w.empty());

  o.cuda_visible_devices = "";
  auto c = detect_nvidia(fx.ctx(), o, w);
  REQUIRE(c.has_value());
  CHECK(c->gpus.empty());
  CHECK(c->total_gpus == 8);
  CHECK(w.empty());

  o.cuda_visible_devices = "1,8,2";
  auto d = detect_nvidia(fx.ctx(), o, w);
  REQUIRE(d.has_value());
  CHECK(indices(*d) == std::vector<int>{1});
  REQUIRE(w.size() == 1);
  CHECK(w[0].code == "detect.bad_visible_devices");
  CHECK(w[0].message ==
        "CUDA_VISIBLE_DEVICES entry \"8\" matches no device index (8 present); it and the "
        "entries after it (\"2\") are ignored");
}

TEST_CASE("470.x: compute_cap is refused, the query is retried without it") {
  FakeSmiHost host;
  host.runner.on(host.query(true),
                 {6, "Field \"compute_cap\" is not a valid field to query.\n\n", "", false});
  host.runner.on(host.query(false),
                 {0,
                  "0, Tesla T4, GPU-0d7c5a1e-aa3d-11ec-b909-0242ac120002, 00000000:00:1E.0, "
                  "15360, 15101, 470.82.01, [N/A]\n",
                  "", false});
  host.runner.on(host.smi, {0, "| NVIDIA-SMI 470.82.01   Driver Version: 470.82.01   CUDA Version: 11.4     |\n", "", false});
  std::vector<Warning> w;
  auto info = detect_nvidia(host.ctx, DetectOptions{}, w);
  REQUIRE(info.has_value());
  CHECK(w.empty());
  CHECK(host.runner.calls == std::vector<std::string>{host.query(true), host.query(false), host.smi});
  CHECK(info->driver_version == "470.82.01");
  CHECK(info->cuda_driver_version == "11.4");
  REQUIRE(info->gpus.size() == 1);
  CHECK(info->gpus[0].name == "Tesla T4");
  CHECK(info->gpus[0].compute_capability.empty());
}

TEST_CASE("nvidia-smi that cannot reach the driver: a tool_failed warning quoting it") {
  FakeSmiHost host;
  host.procfs(kProc550);
  host.runner.on(host.query(),
                 {9,
                  "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                  "Make sure that the latest NVIDIA driver is installed and running.\n\n",
                  "", false});
  std::vector<Warning> w;
  auto info = detect_nvidia(host.ctx, DetectOptions{}, w);
  REQUIRE(info.has_value());
  CHECK(host.runner.calls.size() == 1);
  CHECK(info->source == "procfs");
  CHECK(info->driver_version == "550.54.14");
  CHECK(info->gpus.empty());
  REQUIRE(w.size() == 1);
  CHECK(w[0].code == "detect.tool_failed");
  CHECK(w[0].message ==
        "nvidia-smi exited with code 9: \"NVIDIA-SMI has failed because it couldn't communicate "
        "with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and "
        "running.\" (while listing NVIDIA GPUs with nvidia-smi)");
}

TEST_CASE("NVML init failure inside nvidia-smi, no procfs: an empty nvidia-smi result") {
  FakeSmiHost host;
  host.runner.on(host.query(),
                 {18, "Failed to initialize NVML: Driver/library version mismatch\n", "", false});
  std::vector<Warning> w;
  auto info = detect_nvidia(host.ctx, DetectOptions{}, w);
  REQUIRE(info.has_value());
  CHECK(info->source == "nvidia-smi");
  CHECK(info->driver_version.empty());
  CHECK(info->gpus.empty());
  REQUIRE(w.size() == 1);
  CHECK(w[0].message ==
        "nvidia-smi exited with code 18: \"Failed to initialize NVML: Driver/library version "
        "mismatch\" (while listing NVIDIA GPUs with nvidia-smi)");
}

TEST_CASE("garbled nvidia-smi output: bad_tool_output, then procfs") {
  FakeSmiHost host;
  host.procfs(kProc550);
  host.runner.on(host.query(), {0, "<html>oops</html>\n", "", false});
  std::vector<Warning> w;
  auto info = detect_nvidia(host.ctx, DetectOptions{}, w);
  REQUIRE(info.has_value());
  CHECK(info->source == "procfs");
  CHECK(info->driver_version == "550.54.14");
  REQUIRE(w.size() == 1);
  CHECK(w[0].code == "detect.bad_tool_output");
  CHECK(w[0].message ==
        "nvidia-smi --query-gpu line 1 \"<html>oops</html>\": has 1 cells, expected 9 (while "
        "listing NVIDIA GPUs with nvidia-smi)");
}

TEST_CASE("no devices: a driver without GPUs is not a failure") {
  FakeSmiHost host;
  host.procfs(kProc550);
  host.runner.on(host.query(), {6, "No devices were found\n", "", false});
  std::vector<Warning> w;
  auto info = detect_nvidia(host.ctx, DetectOptions{}, w);
  REQUIRE(info.has_value());
  CHECK(w.empty());
  CHECK(info->source == "nvidia-smi");
  CHECK(info->driver_version == "550.54.14");
  CHECK(info->gpus.empty());
}

TEST_CASE("a timeout after the GPU table stops further nvidia-smi calls") {
  FakeSmiHost host;
  host.runner.on(host.query(), {0,
                                "0, NVIDIA A100-SXM4-80GB, GPU-1, 00000000:07:00.0, 81920, 81158, "
                                "8.0, 535.54.03, Enabled\n",
                                "", false});
  host.runner.on(host.smi, {0, "", "", true});
  std::vector<Warning> w;
  auto info = detect_nvidia(host.ctx, DetectOptions{}, w);
  REQUIRE(info.has_value());
  CHECK(host.runner.calls == std::vector<std::string>{host.query(), host.smi});  // no -L
  CHECK(info->source == "nvidia-smi");
  CHECK(info->driver_version == "535.54.03");
  CHECK(info->cuda_driver_version.empty());
  REQUIRE(info->gpus.size() == 1);
  CHECK(info->gpus[0].mig_enabled == true);
  CHECK(info->gpus[0].mig_devices.empty());
  REQUIRE(w.size() == 1);
  CHECK(w[0].code == "detect.tool_timeout");
  CHECK(w[0].message.find("(while reading the CUDA version from nvidia-smi)") !=
        std::string::npos);
}

TEST_CASE("MIG slices come from -L, matched to their GPU by UUID") {
  FakeSmiHost host;
  host.runner.on(host.query(), {0,
                                "0, NVIDIA H100 80GB HBM3, GPU-7f57f032, 00000000:0E:00.0, 81559, "
                                "81087, 9.0, 580.105.08, Enabled\n"
                                "1, NVIDIA H100 80GB HBM3, GPU-8c7c9c30, 00000000:15:00.0, 81559, "
                                "81087, 9.0, 580.105.08, Disabled\n",
                                "", false});
  host.runner.on(host.smi, {0, kBanner535, "", false});
  host.runner.on(host.smi + " -L",
                 {0,
                  "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-7f57f032)\n"
                  "  MIG 2g.20gb     Device  0: (UUID: MIG-377e0049)\n"
                  "  MIG 1g.10gb     Device  1: (UUID: MIG-f39aa248)\n"
                  "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-8c7c9c30)\n",
                  "", false});
  DetectOptions o;
  o.cuda_visible_devices = "MIG-f39a";
  std::vector<Warning> w;
  auto info = detect_nvidia(host.ctx, o, w);
  REQUIRE(info.has_value());
  CHECK(w.empty());
  CHECK(info->cuda_driver_version == "12.2");
  CHECK(info->total_gpus == 2);
  REQUIRE(info->gpus.size() == 1);
  REQUIRE(info->gpus[0].mig_devices.size() == 1);
  CHECK(info->gpus[0].mig_devices[0].name == "1g.10gb");
  CHECK(info->gpus[0].mig_devices[0].uuid == "MIG-f39aa248");
}

TEST_CASE("only the kernel module: driver version and a warning") {
  FakeSmiHost host(false);
  host.procfs(kProc550);
  std::vector<Warning> w;
  auto info = detect_nvidia(host.ctx, DetectOptions{}, w);
  REQUIRE(info.has_value());
  CHECK(host.runner.calls.empty());
  CHECK(info->source == "procfs");
  CHECK(info->driver_version == "550.54.14");
  CHECK(info->gpus.empty());
  REQUIRE(w.size() == 1);
  CHECK(w[0].code == "detect.nvml_unavailable");
  CHECK(w[0].message ==
        "the NVIDIA kernel driver 550.54.14 is loaded (/proc/driver/nvidia/version) but "
        "neither libnvidia-ml.so.1 nor nvidia-smi was found to list its GPUs");
}

TEST_CASE("a host without anything NVIDIA: nullopt, no warnings, no commands") {
  FakeSmiHost host(false);
  std::vector<Warning> w;
  CHECK_FALSE(detect_nvidia(host.ctx, DetectOptions{}, w).has_value());
  CHECK(w.empty());
  CHECK(host.runner.calls.empty());
}

TEST_CASE("an unreadable procfs version is a warning, not a crash") {
  FakeSmiHost host(false);
  host.procfs("garbage\n");
  std::vector<Warning> w;
  auto info = detect_nvidia(host.ctx, DetectOptions{}, w);
  REQUIRE(info.has_value());
  CHECK(info->source == "procfs");
  CHECK(info->driver_version.empty());
  REQUIRE(w.size() == 1);
  CHECK(w[0].code == "detect.bad_sysfs");
}

}  // namespace cyllm::detect
