// detect_ascend: Huawei Ascend NPUs from `npu-smi info` (and `npu-smi info -m` for the
// logical ids), /dev/davinci<N> device nodes, the driver/firmware/CANN version files, and
// the ASCEND_RT_VISIBLE_DEVICES filter.
//
// Sources:
//   npu-smi info          the device table (npu_smi.h); run with options.tool_timeout
//   npu-smi info -m       NPU/chip -> logical id; optional (older tools lack it)
//   /dev/davinci<N>       one per logical device (davinci_manager etc. are not devices)
//   /usr/local/Ascend/driver/version.info        package_version=, else Version=
//   /usr/local/Ascend/firmware/version.info      Version=
//   /usr/local/Ascend/ascend-toolkit/latest/<arch>-linux/ascend_toolkit_install.info
//                                                version=; else .../latest/runtime/version.info
//                                                Version=
// Logical index of a chip: its "Chip Logic ID" from `info -m` when that lists every chip,
// else its position in the `info` table (the runtime enumerates in the same order).
// No npu-smi and no /dev/davinci<N>: no Ascend (nullopt). davinci nodes but no usable
// npu-smi: one NPU per node with unknown name, and a warning.
#include <algorithm>
#include <map>

#include "cyllm/detect.h"
#include "detect/npu_smi.h"
#include "detect/visible_devices.h"
#include "detect/warnings.h"
#include "util/strings.h"

namespace cyllm::detect {
namespace {

constexpr std::string_view kAscendDir = "/usr/local/Ascend";
constexpr std::uint64_t kMiB = 1024 * 1024;

// /dev/davinci<N> -> N, sorted.
std::vector<int> davinci_indices(const Context& ctx) {
  std::vector<int> ids;
  auto names = ctx.fs.list_dir("/dev");
  if (!names) return ids;
  for (const auto& name : *names) {
    if (!util::starts_with(name, "davinci")) continue;
    std::string_view digits = std::string_view(name).substr(7);
    if (digits.empty() || digits.size() > 5 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;  // davinci_manager, ...
    if (auto v = util::parse_u64(digits)) ids.push_back(static_cast<int>(*v));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// A key=value file; nullopt when missing (silently) or unreadable/garbled (warning).
std::optional<npu_smi::KeyValues> read_key_values(const Context& ctx, const std::string& path,
                                                  std::vector<Warning>& warnings) {
  auto text = ctx.fs.read_file(path, 64 * 1024);
  if (!text) {
    if (text.error().code() != Errc::NotFound)
      add_warning(warnings, Errc::BadSysfs, text.error().message());
    return std::nullopt;
  }
  auto kv = npu_smi::parse_key_value_file(*text, path);
  if (!kv) {
    add_warning(warnings, Errc::BadSysfs, kv.error().message());
    return std::nullopt;
  }
  return std::move(kv).value();
}

std::string first_of(const std::optional<npu_smi::KeyValues>& kv,
                     std::initializer_list<std::string_view> keys) {
  if (!kv) return {};
  for (auto key : keys)
    if (auto it = kv->find(key); it != kv->end() && !it->second.empty()) return it->second;
  return {};
}

std::string read_cann_version(const Context& ctx, std::vector<Warning>& warnings) {
  const std::string latest = std::string(kAscendDir) + "/ascend-toolkit/latest";
  if (auto names = ctx.fs.list_dir(latest)) {
    for (const auto& name : *names) {
      if (!util::ends_with(name, "-linux")) continue;
      auto kv = read_key_values(ctx, latest + "/" + name + "/ascend_toolkit_install.info",
                                warnings);
      if (auto v = first_of(kv, {"version"}); !v.empty()) return v;
    }
  }
  return first_of(read_key_values(ctx, latest + "/runtime/version.info", warnings),
                  {"Version", "version"});
}

// Runs npu-smi with `args`; the output on exit 0, else nullopt. Warns unless the tool
// merely exited non-zero and `quiet_on_exit` is set.
std::optional<std::string> run_npu_smi(const Context& ctx, const DetectOptions& options,
                                       const std::string& tool,
                                       const std::vector<std::string>& args,
                                       bool quiet_on_exit, std::vector<Warning>& warnings) {
  std::vector<std::string> argv{tool};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string shown = "npu-smi";
  for (const auto& a : args) shown += " " + a;
  auto r = ctx.runner.run(argv, options.tool_timeout);
  if (!r) {
    add_warning(warnings,
                r.error().code() == Errc::ToolTimeout ? Errc::ToolTimeout : Errc::ToolFailed,
                util::quote(shown) + ": " + r.error().message());
    return std::nullopt;
  }
  if (r->exit_code != 0) {
    if (!quiet_on_exit)
      add_warning(warnings, Errc::ToolFailed,
                  util::quote(shown) + " exited with " + std::to_string(r->exit_code) + ": " +
                      util::quote(util::trim(r->err.empty() ? r->out : r->err)));
    return std::nullopt;
  }
  return std::move(r->out);
}

// Logical id by (npu id, chip id) from `npu-smi info -m`; empty when unusable.
std::map<std::pair<int, int>, int> read_mapping(const Context& ctx,
                                                const DetectOptions& options,
                                                const std::string& tool,
                                                std::vector<Warning>& warnings) {
  std::map<std::pair<int, int>, int> logic;
  auto out = run_npu_smi(ctx, options, tool, {"info", "-m"}, /*quiet_on_exit=*/true, warnings);
  if (!out) return logic;
  auto mapping = npu_smi::parse_mapping(*out);
  if (!mapping) {
    add_warning(warnings, mapping.error());
    return logic;
  }
  for (const auto& e : *mapping) logic[{e.npu_id, e.chip_id}] = e.logic_id;
  return logic;
}

}  // namespace

std::optional<AscendInfo> detect_ascend(const Context& ctx, const DetectOptions& options,
                                        std::vector<Warning>& warnings) {
  const std::vector<int> davinci = davinci_indices(ctx);
  const auto tool = find_tool(ctx, options, "npu-smi");
  if (!tool && davinci.empty()) return std::nullopt;

  AscendInfo info;
  info.driver_version =
      first_of(read_key_values(ctx, std::string(kAscendDir) + "/driver/version.info", warnings),
               {"package_version", "Version"});
  info.firmware_version = first_of(
      read_key_values(ctx, std::string(kAscendDir) + "/firmware/version.info", warnings),
      {"Version"});
  info.cann_version = read_cann_version(ctx, warnings);

  std::vector<AscendNpu> all;
  bool have_table = false;
  if (!tool) {
    add_warning(warnings, Errc::ToolFailed,
                "npu-smi not found, but " + std::to_string(davinci.size()) +
                    " /dev/davinci<N> device nodes exist; NPU names and memory are unknown");
  } else if (auto out = run_npu_smi(ctx, options, *tool, {"info"}, false, warnings)) {
    auto table = npu_smi::parse_info(*out);
    if (!table) {
      add_warning(warnings, table.error());
    } else {
      have_table = true;
      info.npu_smi_version = table->tool_version;
      if (info.driver_version.empty()) info.driver_version = table->version;
      auto logic = read_mapping(ctx, options, *tool, warnings);
      // Use the mapping only when it gives every chip its own logical id.
      bool mapping_complete = !logic.empty();
      std::vector<int> ids;
      for (const auto& c : table->chips) {
        auto it = logic.find({c.npu_id, c.chip_id});
        if (it == logic.end()) {
          mapping_complete = false;
          break;
        }
        ids.push_back(it->second);
      }
      std::sort(ids.begin(), ids.end());
      mapping_complete =
          mapping_complete && std::adjacent_find(ids.begin(), ids.end()) == ids.end();
      for (const auto& c : table->chips) {
        AscendNpu npu;
        npu.index = mapping_complete ? logic.at({c.npu_id, c.chip_id})
                                     : static_cast<int>(all.size());
        npu.npu_id = c.npu_id;
        npu.chip_id = c.chip_id;
        npu.name = c.name;
        npu.soc_version = npu_smi::soc_version_from_name(c.name);
        npu.pci_bus_id = c.pci_bus_id;
        npu.health = c.health;
        // HBM when the chip has it; a 310 has only its DDR (the Memory-Usage column).
        const auto& total = c.hbm_total_mb ? c.hbm_total_mb : c.memory_total_mb;
        const auto& used = c.hbm_total_mb ? c.hbm_used_mb : c.memory_used_mb;
        npu.hbm_total_bytes = total.value_or(0) * kMiB;  // <= kMaxMegabytes: no overflow
        if (used) npu.hbm_used_bytes = *used * kMiB;
        all.push_back(std::move(npu));
      }
    }
  }
  if (!have_table) {
    if (tool && !davinci.empty())
      add_warning(warnings, Errc::ToolFailed,
                  "NPUs listed from " + std::to_string(davinci.size()) +
                      " /dev/davinci<N> device nodes; names and memory are unknown");
    for (int n : davinci) {
      AscendNpu npu;
      npu.index = n;
      npu.npu_id = n;
      all.push_back(std::move(npu));
    }
  }
  for (auto& npu : all)
    if (std::binary_search(davinci.begin(), davinci.end(), npu.index))
      npu.device_node = "/dev/davinci" + std::to_string(npu.index);
  std::sort(all.begin(), all.end(),
            [](const AscendNpu& a, const AscendNpu& b) { return a.index < b.index; });
  info.total_npus = static_cast<int>(all.size());

  if (options.ascend_rt_visible_devices) {
    std::vector<VisibleCandidate> candidates;
    for (const auto& npu : all) candidates.push_back({npu.index, "", {}});
    for (int index : select_visible(*options.ascend_rt_visible_devices, candidates, warnings,
                                    "ASCEND_RT_VISIBLE_DEVICES"))
      for (const auto& npu : all)
        if (npu.index == index) info.npus.push_back(npu);
  } else {
    info.npus = std::move(all);
  }
  return info;
}

}  // namespace cyllm::detect
