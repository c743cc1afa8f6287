// npu-smi and version.info parsers, on the captured texts of
// shared/reference/detect-fixtures.md §3 (whitespace exact).
#include "detect/npu_smi.h"

#include <doctest/doctest.h>

#include <string>

using namespace cyllm;
using namespace cyllm::detect;

namespace {

// §3.1 Atlas A2, 910B4.
constexpr const char* k910B4 = R"(+------------------------------------------------------------------------------------------------+
| npu-smi 24.1.1                   Version: 24.1.1                                               |
+---------------------------+---------------+----------------------------------------------------+
| NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|
| Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |
+===========================+===============+====================================================+
| 0     910B4               | OK            | 88.2        30                0    / 0             |
| 0                         | 0000:C1:00.0  | 0           0    / 0          26838/ 32768         |
+===========================+===============+====================================================+
| 1     910B4               | OK            | 87.0        30                0    / 0             |
| 0                         | 0000:C2:00.0  | 0           0    / 0          29356/ 32768         |
+===========================+===============+====================================================+
)";

// §3.2 Atlas A3, two chips per NPU (the "…" line is in the capture).
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
…
)";

// §3.3 Atlas 800 training (910A) excerpt, with its process table.
constexpr const char* k910A = R"(| 3     xxx            | Warning       | 206.9       39                1232 / 1232          |
| 0                    | 0000:01:00.0  | 0           3616 / 15039      0    / 32768         |
+======================+===============+====================================================+
+----------------------+---------------+----------------------------------------------------+
| NPU     Chip         | Process id    | Process name             | Process memory(MB)      |
+======================+===============+====================================================+
| 0       0            | 37656         | hlt_host_devmm_          | 686                     |
)";

// §3.3 310 inference (21.0.4), borders omitted as in the reference.
constexpr const char* k310 = R"(| npu-smi 21.0.4   Version: 21.0.4.B030 |
| Chip    Device    | Bus-Id | AICore(%)  Memory-Usage(MB) |
| 6       310       | OK  | 12.8   73   0       / 970 |
| 0       3         | 0000:89:00.0 | 0   2703 / 8192 |
)";

// §3.6 driver version.info.
constexpr const char* kDriverVersionInfo = R"(Version=25.0.rc1.1
ascendhal_version=7.35.23
aicpu_version=1.0
tdt_version=1.0
log_version=1.0
prof_version=2.0
dvppkernels_version=1.1
tsfw_version=1.0
Innerversion=V100R001C21SPC002B220
compatible_version=[V100R001C17],[V100R001C18],[V100R001C19],[V100R001C20],[V100R001C21]
compatible_version_fw=[7.0.0,7.7.99]
package_version=25.0.rc1.1
)";

}  // namespace

TEST_CASE("parse_info: 910B4 (§3.1), HBM used without a space before '/'") {
  auto info = npu_smi::parse_info(k910B4);
  REQUIRE(info.ok());
  CHECK(info->tool_version == "24.1.1");
  CHECK(info->version == "24.1.1");
  REQUIRE(info->chips.size() == 2);
  const auto& c = info->chips[0];
  CHECK(c.npu_id == 0);
  CHECK(c.chip_id == 0);
  CHECK_FALSE(c.phy_id.has_value());
  CHECK(c.name == "910B4");
  CHECK(c.health == "OK");
  CHECK(c.pci_bus_id == "0000:c1:00.0");
  CHECK(c.power_w == doctest::Approx(88.2));
  CHECK(c.temp_c == 30);
  CHECK(c.aicore_percent == 0u);
  CHECK(c.memory_used_mb == 0u);
  CHECK(c.memory_total_mb == 0u);
  CHECK(c.hbm_used_mb == 26838u);
  CHECK(c.hbm_total_mb == 32768u);
  const auto& d = info->chips[1];
  CHECK(d.npu_id == 1);
  CHECK(d.pci_bus_id == "0000:c2:00.0");
  CHECK(d.power_w == doctest::Approx(87.0));
  CHECK(d.hbm_used_mb == 29356u);
  CHECK(d.hbm_total_mb == 32768u);
}

TEST_CASE("parse_info: A3 (§3.2), two chips under one NPU id, power '-'") {
  auto info = npu_smi::parse_info(kA3);
  REQUIRE(info.ok());
  CHECK(info->tool_version == "25.3.rc1");
  REQUIRE(info->chips.size() == 2);
  const auto& a = info->chips[0];
  const auto& b = info->chips[1];
  CHECK(a.npu_id == 0);
  CHECK(b.npu_id == 0);
  CHECK(a.chip_id == 0);
  CHECK(b.chip_id == 1);
  CHECK(a.phy_id == 0);
  CHECK(b.phy_id == 1);
  CHECK(a.name == "Ascend910");
  CHECK(a.pci_bus_id == "0000:9d:00.0");
  CHECK(b.pci_bus_id == "0000:9f:00.0");
  CHECK(a.power_w == doctest::Approx(163.6));
  CHECK_FALSE(b.power_w.has_value());
  CHECK(b.temp_c == 30);
  CHECK(a.hbm_used_mb == 3180u);
  CHECK(b.hbm_used_mb == 2896u);
  CHECK(b.hbm_total_mb == 65536u);
}

TEST_CASE("parse_info: 910A (§3.3) stops at the process table") {
  auto info = npu_smi::parse_info(k910A);
  REQUIRE(info.ok());
  CHECK(info->tool_version.empty());
  REQUIRE(info->chips.size() == 1);
  const auto& c = info->chips[0];
  CHECK(c.npu_id == 3);
  CHECK(c.name == "xxx");
  CHECK(c.health == "Warning");
  CHECK(c.power_w == doctest::Approx(206.9));
  CHECK(c.temp_c == 39);
  CHECK(c.pci_bus_id == "0000:01:00.0");
  CHECK(c.memory_used_mb == 3616u);
  CHECK(c.memory_total_mb == 15039u);
  CHECK(c.hbm_used_mb == 0u);
  CHECK(c.hbm_total_mb == 32768u);
}

TEST_CASE("parse_info: 310 (§3.3), Chip/Device columns and no HBM") {
  auto info = npu_smi::parse_info(k310);
  REQUIRE(info.ok());
  CHECK(info->tool_version == "21.0.4");
  CHECK(info->version == "21.0.4.B030");
  REQUIRE(info->chips.size() == 1);
  const auto& c = info->chips[0];
  CHECK(c.npu_id == 6);
  CHECK(c.name == "310");
  CHECK(c.health == "OK");
  CHECK(c.power_w == doctest::Approx(12.8));
  CHECK(c.temp_c == 73);
  CHECK(c.chip_id == 0);
  CHECK(c.phy_id == 3);
  CHECK(c.pci_bus_id == "0000:89:00.0");
  CHECK(c.memory_used_mb == 2703u);
  CHECK(c.memory_total_mb == 8192u);
  CHECK_FALSE(c.hbm_used_mb.has_value());
  CHECK_FALSE(c.hbm_total_mb.has_value());
}

TEST_CASE("parse_info: several chip rows under one NPU row, and a 910B4-1 name") {
  const char* text =
      "| NPU   Name                | Health        | Power(W)    Temp(C)           |\n"
      "| 1     910B4-1             | OK            | 90.1        41                |\n"
      "| 0     0                   | 0000:01:00.0  | 0           0    / 0          10 / 65536 |\n"
      "| 1     1                   | 0000:02:00.0  | 5           0    / 0          20 / 65536 |\n";
  auto info = npu_smi::parse_info(text);
  REQUIRE(info.ok());
  REQUIRE(info->chips.size() == 2);
  CHECK(info->chips[1].name == "910B4-1");
  CHECK(info->chips[1].npu_id == 1);
  CHECK(info->chips[1].chip_id == 1);
  CHECK(info->chips[1].aicore_percent == 5u);
  CHECK(info->chips[1].power_w == doctest::Approx(90.1));
}

TEST_CASE("parse_info: a header without rows is zero chips; no table at all is an error") {
  auto empty = npu_smi::parse_info(
      "| NPU   Name                | Health        | Power(W)    Temp(C)           |\n");
  REQUIRE(empty.ok());
  CHECK(empty->chips.empty());

  auto failed = npu_smi::parse_info("dcmi module initialize failed. ret is -8005\n");
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().code() == Errc::BadToolOutput);
  CHECK(failed.error().message() ==
        "npu-smi output has no NPU table: \"dcmi module initialize failed. ret is -8005\"");
}

TEST_CASE("parse_info rejects garbled rows with the line, its number and the reason") {
  struct Case {
    const char* text;
    const char* message;
  } cases[] = {
      {"| 0      | 0000:C1:00.0 | 0  0 / 0  1 / 2 |\n",
       "npu-smi line 1 \"| 0      | 0000:C1:00.0 | 0  0 / 0  1 / 2 |\": chip row without an NPU "
       "row before it"},
      {"| x 910B | OK | 1 2 |\n",
       "npu-smi line 1 \"| x 910B | OK | 1 2 |\": NPU id \"x\" is not a number"},
      {"| 0 | OK | 1 2 |\n", "npu-smi line 1 \"| 0 | OK | 1 2 |\": NPU row without a name"},
      {"| 0 910B | OK | hot 2 |\n",
       "npu-smi line 1 \"| 0 910B | OK | hot 2 |\": power value \"hot\" is not a number"},
      {"| 0 910B | OK |\n", "npu-smi line 1 \"| 0 910B | OK |\": expected 3 cells"},
      {"| 0 910B | OK | 1 2 |\n| 0 | 0000:C1:00.0 | 0 0 / 0 abc/ 32768 |\n",
       "npu-smi line 2 \"| 0 | 0000:C1:00.0 | 0 0 / 0 abc/ 32768 |\": HBM-Usage value \"abc\" "
       "is not a number up to 1099511627776"},
      {"| 0 910B | OK | 1 2 |\n| 0 | 0000:C1:00.0 | 0 0 / 0 1 / 1099511627777 |\n",
       "npu-smi line 2 \"| 0 | 0000:C1:00.0 | 0 0 / 0 1 / 1099511627777 |\": HBM-Usage value "
       "\"1099511627777\" is not a number up to 1099511627776"},
      {"| 0 910B | OK | 1 2 |\n| 0 | 0000:C1:00.0 | 0 0 / |\n",
       "npu-smi line 2 \"| 0 | 0000:C1:00.0 | 0 0 / |\": dangling '/' in \"0 0 /\""},
      {"| 0 910B | OK | 1 2 |\n| 0 | 0000:C1:00.0 | 0 7 |\n",
       "npu-smi line 2 \"| 0 | 0000:C1:00.0 | 0 7 |\": Memory-Usage \"7\" is not \"used / "
       "total\""},
      {"| 0 910B | OK | 1 2 |\n| 0 1 2 | 0000:C1:00.0 | 0 |\n",
       "npu-smi line 2 \"| 0 1 2 | 0000:C1:00.0 | 0 |\": chip cell has extra fields"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto r = npu_smi::parse_info(c.text);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Errc::BadToolOutput);
    CHECK(r.error().message() == c.message);
  }
}

TEST_CASE("parse_mapping (§3.4): logic ids, names with spaces, MCU rows skipped") {
  auto a = npu_smi::parse_mapping(
      "NPU ID                         Chip ID                        Chip Logic ID                  Chip Name\n"
      "0                              0                              0                              Ascend 910A\n"
      "1                              0                              1                              Ascend 910A\n");
  REQUIRE(a.ok());
  REQUIRE(a->size() == 2);
  CHECK((*a)[1].npu_id == 1);
  CHECK((*a)[1].chip_id == 0);
  CHECK((*a)[1].logic_id == 1);
  CHECK((*a)[1].chip_name == "Ascend 910A");

  auto b = npu_smi::parse_mapping(
      "NPU ID                         Chip ID                        Chip Logic ID                  Chip Name\n"
      "6                              0                              0                              MiniD\n"
      "6                              3                              3                              MiniD\n"
      "6                              4                              -                              Mcu\n");
  REQUIRE(b.ok());
  REQUIRE(b->size() == 2);
  CHECK((*b)[1].npu_id == 6);
  CHECK((*b)[1].chip_id == 3);
  CHECK((*b)[1].logic_id == 3);
  CHECK((*b)[1].chip_name == "MiniD");
}

TEST_CASE("parse_mapping errors") {
  auto no_header = npu_smi::parse_mapping("Error: invalid command \"info -m\".\n");
  REQUIRE_FALSE(no_header.ok());
  CHECK(no_header.error().message() ==
        "npu-smi info -m header \"Error: invalid command \\\"info -m\\\".\" lacks NPU ID, Chip "
        "ID or Chip Logic ID");
  auto bad_id = npu_smi::parse_mapping("NPU ID  Chip ID  Chip Logic ID  Chip Name\nx 0 0 A\n");
  REQUIRE_FALSE(bad_id.ok());
  CHECK(bad_id.error().message() == "npu-smi info -m line 2 \"x 0 0 A\" has a non-numeric id");
  auto short_row = npu_smi::parse_mapping("NPU ID  Chip ID  Chip Logic ID  Chip Name\n0 0\n");
  REQUIRE_FALSE(short_row.ok());
  CHECK(short_row.error().message() == "npu-smi info -m line 2 \"0 0\" has too few columns");
  auto empty = npu_smi::parse_mapping("");
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().message() == "npu-smi info -m printed nothing");
}

TEST_CASE("parse_key_value_file on the §3.6 driver version.info") {
  auto kv = npu_smi::parse_key_value_file(kDriverVersionInfo, "version.info");
  REQUIRE(kv.ok());
  CHECK(kv->size() == 12);
  CHECK(kv->at("Version") == "25.0.rc1.1");
  CHECK(kv->at("package_version") == "25.0.rc1.1");
  CHECK(kv->at("compatible_version_fw") == "[7.0.0,7.7.99]");
  auto fw = npu_smi::parse_key_value_file("Version=7.7.0.1.231\n", "fw");
  REQUIRE(fw.ok());
  CHECK(fw->at("Version") == "7.7.0.1.231");
  auto spaced = npu_smi::parse_key_value_file("# comment\n\n version = 8.1.RC1 \r\nempty=\n", "x");
  REQUIRE(spaced.ok());
  CHECK(spaced->at("version") == "8.1.RC1");
  CHECK(spaced->at("empty").empty());
}

TEST_CASE("parse_key_value_file errors") {
  struct Case {
    const char* text;
    const char* message;
  } cases[] = {
      {"Version 1\n", "\"f\" line 1 \"Version 1\" is not key=value"},
      {"a=1\n=2\n", "\"f\" line 2 \"=2\" has an empty key"},
      {"a b=1\n", "\"f\" line 1 \"a b=1\" has a bad key \"a b\""},
      {"a=1\na=2\n", "\"f\" line 2 \"a=2\" repeats key \"a\""},
      {"a=\x01\n", "\"f\" line 1 \"a=\\x01\" has a control character"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto r = npu_smi::parse_key_value_file(c.text, "f");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Errc::Parse);
    CHECK(r.error().message() == c.message);
  }
  std::string many(5000, '\n');
  auto r = npu_smi::parse_key_value_file(many, "f");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message() == "\"f\" has more than 4096 lines");
}

TEST_CASE("soc_version_from_name") {
  CHECK(npu_smi::soc_version_from_name("910B3") == "Ascend910B3");
  CHECK(npu_smi::soc_version_from_name("910B4-1") == "Ascend910B4-1");
  CHECK(npu_smi::soc_version_from_name("310") == "Ascend310");
  CHECK(npu_smi::soc_version_from_name("Ascend910") == "Ascend910");
  CHECK(npu_smi::soc_version_from_name("") == "");
}
