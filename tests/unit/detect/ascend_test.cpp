// detect_ascend on the ascend910b-x8 fixture root (its npu-smi is a shell script run by the
// real PosixCommandRunner) and with a FakeCommandRunner for timeouts, failures and other
// table layouts.
#include <doctest/doctest.h>

#include <string>

#include "cyllm/detect.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::detect;
namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;

fs::path ascend_root() { return test::fixtures_dir() / "roots/ascend910b-x8"; }

// A Context over `root` whose commands are answered by `runner`.
struct FakeContext {
  explicit FakeContext(const fs::path& root) : fs_(root.string()) {}
  const Context& ctx() const { return ctx_; }
  // The command line find_tool will produce for npu-smi under this root.
  std::string npu_smi(const std::string& args) const {
    return fs_.host_path("/usr/local/bin/npu-smi") + " " + args;
  }
  RootedFilesystem fs_;
  test::FakeCommandRunner runner;
  SystemClock clock_;
  NullLogger log_;
  Context ctx_{fs_, runner, clock_, log_, nullptr};
};

// Canned command results.
test::FakeCommandRunner::Canned printed(std::string out) {
  test::FakeCommandRunner::Canned c;
  c.out = std::move(out);
  return c;
}
test::FakeCommandRunner::Canned exited(int code, std::string err) {
  test::FakeCommandRunner::Canned c;
  c.exit_code = code;
  c.err = std::move(err);
  return c;
}
test::FakeCommandRunner::Canned timed_out() {
  test::FakeCommandRunner::Canned c;
  c.timeout = true;
  return c;
}

std::vector<std::string> codes(const std::vector<Warning>& warnings) {
  std::vector<std::string> out;
  for (const auto& w : warnings) out.push_back(w.code);
  return out;
}

// The captured §3.2 A3 table (two chips of NPU 0).
constexpr const char* kA3 = R"(+------------------------------------------------------------------------------------------------+
| npu-smi 25.3.rc1                 Version: 25.3.rc1                                             |
+---------------------------+---------------+----------------------------------------------------+
| NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|
| Chip  Phy-ID              | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |
+===========================+===============+====================================================+
| 0     Ascend910           | OK            | 163.6       30                0    / 0             |
| 0     0                   | 0000:9D:00.0  | 0           0    / 0          3180 / 65536         |
+------------------------------------------------------------------------------------------------+
| 0     Ascend910           | OK            | -           30                0    / 0             |
| 1     1                   | 0000:9F:00.0  | 0           0    / 0          2896 / 65536         |
+===========================+===============+====================================================+
)";

}  // namespace

TEST_CASE("ascend910b-x8 root: eight 910B3 with 64 GB HBM, versions, device nodes") {
  test::FixtureContext fx(ascend_root());
  std::vector<Warning> warnings;
  auto info = detect_ascend(fx.ctx(), DetectOptions{}, warnings);
  REQUIRE(info.has_value());
  CHECK(warnings.empty());
  CHECK(info->driver_version == "25.0.rc1.1");
  CHECK(info->firmware_version == "7.7.0.1.231");
  CHECK(info->cann_version == "8.1.RC1");
  CHECK(info->npu_smi_version == "25.0.rc1.1");
  CHECK(info->total_npus == 8);
  REQUIRE(info->npus.size() == 8);
  const char* bus[] = {"0000:c1:00.0", "0000:c2:00.0", "0000:81:00.0", "0000:82:00.0",
                       "0000:01:00.0", "0000:02:00.0", "0000:41:00.0", "0000:42:00.0"};
  for (int i = 0; i < 8; ++i) {
    CAPTURE(i);
    const AscendNpu& n = info->npus[static_cast<std::size_t>(i)];
    CHECK(n.index == i);
    CHECK(n.npu_id == i);
    CHECK(n.chip_id == 0);
    CHECK(n.name == "910B3");
    CHECK(n.soc_version == "Ascend910B3");
    CHECK(n.health == "OK");
    CHECK(n.pci_bus_id == bus[i]);
    CHECK(n.hbm_total_bytes == 65536 * kMiB);
    CHECK(n.device_node == "/dev/davinci" + std::to_string(i));
  }
  CHECK(info->npus[0].hbm_used_bytes == 3398 * kMiB);
  CHECK(info->npus[2].hbm_used_bytes == 61873 * kMiB);  // printed "61873/ 65536"
}

TEST_CASE("ASCEND_RT_VISIBLE_DEVICES selects logical ids in its order") {
  test::FixtureContext fx(ascend_root());
  DetectOptions opts;
  opts.ascend_rt_visible_devices = "6,2";
  std::vector<Warning> warnings;
  auto info = detect_ascend(fx.ctx(), opts, warnings);
  REQUIRE(info.has_value());
  CHECK(warnings.empty());
  CHECK(info->total_npus == 8);
  REQUIRE(info->npus.size() == 2);
  CHECK(info->npus[0].index == 6);
  CHECK(info->npus[0].pci_bus_id == "0000:41:00.0");
  CHECK(info->npus[1].index == 2);

  opts.ascend_rt_visible_devices = "1,8";
  info = detect_ascend(fx.ctx(), opts, warnings);
  REQUIRE(info.has_value());
  REQUIRE(info->npus.size() == 1);
  CHECK(info->npus[0].index == 1);
  CHECK(codes(warnings) == std::vector<std::string>{"detect.bad_visible_devices"});
  CHECK(warnings[0].message.find("ASCEND_RT_VISIBLE_DEVICES entry \"8\"") != std::string::npos);
}

TEST_CASE("no npu-smi and no /dev/davinci<N>: no Ascend") {
  test::TempDir root;
  test::write_file(root.path() / "dev/davinci_manager", "");
  test::write_file(root.path() / "usr/local/Ascend/driver/version.info", "Version=24.1.rc1\n");
  test::FixtureContext fx(root.path());
  std::vector<Warning> warnings;
  CHECK_FALSE(detect_ascend(fx.ctx(), DetectOptions{}, warnings).has_value());
  CHECK(warnings.empty());
}

TEST_CASE("davinci nodes without npu-smi: NPUs with unknown names and a warning") {
  test::TempDir root;
  for (const char* n : {"davinci0", "davinci1", "davinci_manager", "devmm_svm", "hisi_hdc"})
    test::write_file(root.path() / "dev" / n, "");
  // An older driver: no package_version; CANN only through runtime/version.info.
  test::write_file(root.path() / "usr/local/Ascend/driver/version.info",
                   "Version=24.1.rc1\nInnerversion=V100R001C17B100\n");
  test::write_file(root.path() / "usr/local/Ascend/ascend-toolkit/latest/runtime/version.info",
                   "Version=9.0.0\n");
  test::FixtureContext fx(root.path());
  std::vector<Warning> warnings;
  auto info = detect_ascend(fx.ctx(), DetectOptions{}, warnings);
  REQUIRE(info.has_value());
  CHECK(info->driver_version == "24.1.rc1");
  CHECK(info->cann_version == "9.0.0");
  CHECK(info->firmware_version.empty());
  CHECK(info->npu_smi_version.empty());
  REQUIRE(info->npus.size() == 2);
  CHECK(info->npus[1].index == 1);
  CHECK(info->npus[1].name.empty());
  CHECK(info->npus[1].soc_version.empty());
  CHECK(info->npus[1].device_node == "/dev/davinci1");
  CHECK(info->npus[1].hbm_total_bytes == 0);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].code == "detect.tool_failed");
  CHECK(warnings[0].message ==
        "npu-smi not found, but 2 /dev/davinci<N> device nodes exist; NPU names and memory are "
        "unknown");
}

TEST_CASE("npu-smi timing out: a tool_timeout warning, NPUs from the device nodes") {
  FakeContext fc(ascend_root());
  fc.runner.on(fc.npu_smi("info"), timed_out());
  DetectOptions opts;
  opts.tool_timeout = std::chrono::milliseconds(250);
  std::vector<Warning> warnings;
  auto info = detect_ascend(fc.ctx(), opts, warnings);
  REQUIRE(info.has_value());
  CHECK(fc.runner.calls == std::vector<std::string>{fc.npu_smi("info")});  // no "info -m"
  CHECK(info->driver_version == "25.0.rc1.1");
  REQUIRE(info->npus.size() == 8);
  CHECK(info->npus[7].device_node == "/dev/davinci7");
  CHECK(info->npus[7].name.empty());
  CHECK(codes(warnings) == std::vector<std::string>{"detect.tool_timeout", "detect.tool_failed"});
  CHECK(warnings[0].message.find("\"npu-smi info\": ") == 0);
  CHECK(warnings[0].message.find("within 250 ms") != std::string::npos);
  CHECK(warnings[1].message ==
        "NPUs listed from 8 /dev/davinci<N> device nodes; names and memory are unknown");
}

TEST_CASE("npu-smi failing or printing garbage: warnings, NPUs from the device nodes") {
  FakeContext fc(ascend_root());
  fc.runner.on(fc.npu_smi("info"),
               exited(255, "dcmi module initialize failed. ret is -8005\n"));
  std::vector<Warning> warnings;
  auto info = detect_ascend(fc.ctx(), DetectOptions{}, warnings);
  REQUIRE(info.has_value());
  CHECK(info->npus.size() == 8);
  REQUIRE(warnings.size() == 2);
  CHECK(warnings[0].code == "detect.tool_failed");
  CHECK(warnings[0].message ==
        "\"npu-smi info\" exited with 255: \"dcmi module initialize failed. ret is -8005\"");

  FakeContext garbled(ascend_root());
  garbled.runner.on(garbled.npu_smi("info"), printed("| 0 910B3 | OK | 95.3 36 |\n| 0 | "
                                                     "0000:C1:00.0 | 0 0 / 0 lots / 65536 |\n"));
  warnings.clear();
  info = detect_ascend(garbled.ctx(), DetectOptions{}, warnings);
  REQUIRE(info.has_value());
  CHECK(info->npus.size() == 8);
  CHECK(codes(warnings) ==
        std::vector<std::string>{"detect.bad_tool_output", "detect.tool_failed"});
  CHECK(warnings[0].message ==
        "npu-smi line 2 \"| 0 | 0000:C1:00.0 | 0 0 / 0 lots / 65536 |\": HBM-Usage value "
        "\"lots\" is not a number up to 1099511627776");
}

TEST_CASE("A3 table with an info -m mapping: logical ids from the mapping") {
  FakeContext fc(ascend_root());
  fc.runner.on(fc.npu_smi("info"), printed(kA3));
  // Logical ids deliberately not in table order, to show the mapping is used.
  fc.runner.on(fc.npu_smi("info -m"),
               printed("NPU ID                         Chip ID                        "
                       "Chip Logic ID                  Chip Name\n"
                       "0                              0                              "
                       "1                              Ascend 910\n"
                       "0                              1                              "
                       "0                              Ascend 910\n"));
  std::vector<Warning> warnings;
  auto info = detect_ascend(fc.ctx(), DetectOptions{}, warnings);
  REQUIRE(info.has_value());
  CHECK(warnings.empty());
  CHECK(info->npu_smi_version == "25.3.rc1");
  REQUIRE(info->npus.size() == 2);
  CHECK(info->npus[0].index == 0);
  CHECK(info->npus[0].chip_id == 1);
  CHECK(info->npus[0].pci_bus_id == "0000:9f:00.0");
  CHECK(info->npus[0].hbm_used_bytes == 2896 * kMiB);
  CHECK(info->npus[1].index == 1);
  CHECK(info->npus[1].chip_id == 0);
  CHECK(info->npus[1].name == "Ascend910");
  CHECK(info->npus[1].soc_version == "Ascend910");
  CHECK(info->npus[1].device_node == "/dev/davinci1");
}

TEST_CASE("info -m unsupported (exit 1) is quiet; table order gives the logical ids") {
  FakeContext fc(ascend_root());
  fc.runner.on(fc.npu_smi("info"), printed(kA3));
  fc.runner.on(fc.npu_smi("info -m"), exited(1, "Error: invalid\n"));
  std::vector<Warning> warnings;
  auto info = detect_ascend(fc.ctx(), DetectOptions{}, warnings);
  REQUIRE(info.has_value());
  CHECK(warnings.empty());
  REQUIRE(info->npus.size() == 2);
  CHECK(info->npus[0].chip_id == 0);
  CHECK(info->npus[1].index == 1);
  CHECK(info->npus[1].chip_id == 1);
  CHECK(info->npus[1].hbm_total_bytes == 65536 * kMiB);
}

TEST_CASE("310 without HBM: device memory from the Memory-Usage column") {
  FakeContext fc(ascend_root());
  fc.runner.on(fc.npu_smi("info"),
               printed("| npu-smi 21.0.4   Version: 21.0.4.B030 |\n"
                       "| Chip    Device    | Bus-Id | AICore(%)  Memory-Usage(MB) |\n"
                       "| 6       310       | OK  | 12.8   73   0       / 970 |\n"
                       "| 0       3         | 0000:89:00.0 | 0   2703 / 8192 |\n"));
  fc.runner.on(fc.npu_smi("info -m"), exited(1, ""));
  std::vector<Warning> warnings;
  auto info = detect_ascend(fc.ctx(), DetectOptions{}, warnings);
  REQUIRE(info.has_value());
  CHECK(warnings.empty());
  CHECK(info->npu_smi_version == "21.0.4");
  CHECK(info->driver_version == "25.0.rc1.1");  // version.info wins over the table
  REQUIRE(info->npus.size() == 1);
  CHECK(info->npus[0].npu_id == 6);
  CHECK(info->npus[0].soc_version == "Ascend310");
  CHECK(info->npus[0].hbm_total_bytes == 8192 * kMiB);
  CHECK(info->npus[0].hbm_used_bytes == 2703 * kMiB);
}

TEST_CASE("garbled version files are warnings naming the file and line") {
  test::TempDir root;
  test::copy_tree(ascend_root(), root.path());
  test::write_file(root.path() / "usr/local/Ascend/driver/version.info",
                   "Version=25.0.rc1.1\n\x7f\x45LF\x02\n");
  test::write_file(root.path() / "usr/local/Ascend/firmware/version.info", "7.7.0.1.231\n");
  FakeContext fc(root.path());
  fc.runner.on(fc.npu_smi("info"), printed(kA3));
  fc.runner.on(fc.npu_smi("info -m"), exited(1, ""));
  std::vector<Warning> warnings;
  auto info = detect_ascend(fc.ctx(), DetectOptions{}, warnings);
  REQUIRE(info.has_value());
  CHECK(info->driver_version == "25.3.rc1");  // falls back to the table's "Version:"
  CHECK(info->firmware_version.empty());
  REQUIRE(warnings.size() == 2);
  CHECK(warnings[0].code == "detect.bad_sysfs");
  CHECK(warnings[0].message ==
        "\"/usr/local/Ascend/driver/version.info\" line 2 \"\x7f" "ELF\\x02\" has a control "
        "character");
  CHECK(warnings[1].message ==
        "\"/usr/local/Ascend/firmware/version.info\" line 1 \"7.7.0.1.231\" is not key=value");
}
