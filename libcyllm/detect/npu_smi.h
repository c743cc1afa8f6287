// Huawei Ascend text formats, as pure parsers: the `npu-smi info` table, the
// `npu-smi info -m` mapping, and the `key=value` version.info files of the driver,
// firmware and CANN toolkit.
//
// `npu-smi info` (cells separated by '|', borders '+---+' / '+===+' between row pairs):
//   | npu-smi 24.1.1                   Version: 24.1.1                              |
//   | NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|
//   | Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |
//   | 0     910B4               | OK            | 88.2        30                0    / 0             |
//   | 0                         | 0000:C1:00.0  | 0           0    / 0          26838/ 32768         |
// Every NPU row (id, name | health | power temp hugepages) is followed by one or more
// chip rows (chip id [Phy-ID on A3, Device on 310] | Bus-Id | AICore memory [HBM]); an A3
// (Ascend910, two chips per NPU) repeats the NPU row before each chip. A chip row is
// told from an NPU row by its PCI address in the second cell. "used / total" pairs may
// lack the space before '/' ("26838/ 32768"); any number may be "-" (unknown). The
// 310 prints no HBM column. A process table ("| NPU Chip | Process id | ...") may follow;
// parsing stops at its header.
//
// `npu-smi info -m` (columns separated by runs of spaces, "Chip Name" last):
//   NPU ID                         Chip ID                        Chip Logic ID                  Chip Name
//   0                              0                              0                              Ascend 910A
//   6                              4                              -                              Mcu
// Rows with logic id "-" (the MCU) are not devices and are skipped.
//
// version.info: "key=value" lines ("Version=25.0.rc1.1", "package_version=25.0.rc1.1").
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cyllm/error.h"

namespace cyllm::detect::npu_smi {

// One chip (one logical device) of the `npu-smi info` table.
struct Chip {
  int npu_id = 0;
  int chip_id = 0;
  std::optional<int> phy_id;            // second number of the chip cell, when printed
  std::string name;                     // "910B4", "Ascend910", "310"
  std::string health;                   // "OK", "Warning", ...
  std::string pci_bus_id;               // lowercase, "0000:c1:00.0"
  std::optional<double> power_w;       // nullopt when "-"
  std::optional<std::int64_t> temp_c;
  std::optional<std::uint64_t> aicore_percent;
  std::optional<std::uint64_t> memory_used_mb, memory_total_mb;  // device DDR
  std::optional<std::uint64_t> hbm_used_mb, hbm_total_mb;        // nullopt without HBM column
};

struct Info {
  std::string tool_version;  // "24.1.1" from "npu-smi 24.1.1"
  std::string version;       // "Version: 21.0.4.B030" -> "21.0.4.B030" (driver)
  std::vector<Chip> chips;   // in table order
};

inline constexpr std::size_t kMaxChips = 4096;
// Megabyte counts above this are garbage (1 EiB); keeps MB -> bytes from overflowing.
inline constexpr std::uint64_t kMaxMegabytes = std::uint64_t{1} << 40;

// Parses `npu-smi info`. Fails with Errc::BadToolOutput, quoting the line and its number,
// on a data row that does not fit the layout above (a non-numeric id or value, a chip row
// without an NPU row before it, a value above kMaxMegabytes) or when there is no table at
// all (neither an NPU header row nor a chip row). A header without rows gives zero chips.
Result<Info> parse_info(std::string_view text);

struct MappingEntry {
  int npu_id = 0;
  int chip_id = 0;
  int logic_id = 0;          // the id ASCEND_RT_VISIBLE_DEVICES and the runtime use
  std::string chip_name;     // "Ascend 910A", "MiniD"
};

// Parses `npu-smi info -m`. Errc::BadToolOutput when the header lacks "NPU ID", "Chip ID"
// or "Chip Logic ID", or a row has a non-numeric id.
Result<std::vector<MappingEntry>> parse_mapping(std::string_view text);

using KeyValues = std::map<std::string, std::string, std::less<>>;

// Parses "key=value" lines (spaces around key and value trimmed; blank lines and lines
// starting with '#' ignored). Errc::Parse naming `source` and the line on a line without
// '=', an empty key or one outside [A-Za-z0-9_.-], a duplicate key, a control character,
// or more than 4096 lines.
Result<KeyValues> parse_key_value_file(std::string_view text, std::string_view source);

// "910B3" -> "Ascend910B3"; a name already starting with "Ascend" is returned as is; ""
// stays "".
std::string soc_version_from_name(std::string_view name);

}  // namespace cyllm::detect::npu_smi
