#include "detect/nvidia_smi.h"

#include <cstdint>

#include "util/strings.h"

namespace cyllm::detect {
namespace {

constexpr std::uint64_t kMaxMib = std::uint64_t{1} << 40;  // 1 EiB; more is garbage
constexpr std::uint64_t kMaxIndex = 1 << 16;
constexpr std::uint64_t kBytesPerMib = 1048576;

// "[N/A]", "[Not Supported]", "[Unknown Error]", "[Insufficient Permissions]", "N/A".
bool is_unknown(std::string_view cell) {
  return cell == "N/A" || (cell.size() >= 2 && cell.front() == '[' && cell.back() == ']');
}

bool is_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// "12.5", "555.42.02": digit groups separated by single dots, at least one dot.
bool is_dotted_version(std::string_view s, int max_groups = 4) {
  auto parts = util::split(s, '.');
  if (parts.size() < 2 || parts.size() > static_cast<std::size_t>(max_groups)) return false;
  for (auto p : parts)
    if (!is_digits(p) || p.size() > 9) return false;
  return true;
}

// Printable ASCII without spaces (UUIDs, bus ids, versions).
bool is_token(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s)
    if (c <= ' ' || c > '~') return false;
  return true;
}

// Printable ASCII, spaces allowed (GPU names).
bool is_text(std::string_view s) {
  if (s.empty() || s.size() > 256) return false;
  for (char c : s)
    if (c < ' ' || c > '~') return false;
  return true;
}

bool is_bus_id(std::string_view s) {
  // "00000000:07:00.0" (also the 4-digit-domain form "0000:07:00.0").
  auto colon = util::split(s, ':');
  if (colon.size() != 3 || colon[0].empty() || colon[0].size() > 8) return false;
  auto dot = util::split(colon[2], '.');
  if (dot.size() != 2) return false;
  for (auto part : {colon[0], colon[1], dot[0], dot[1]})
    if (part.empty() || !util::parse_hex_u64(part) || util::starts_with(part, "0x"))
      return false;
  return colon[1].size() <= 2 && dot[0].size() <= 2 && dot[1].size() == 1;
}

Error bad_line(std::string_view what, std::size_t line_no, std::string_view line,
               std::string_view why) {
  return Error(Errc::BadToolOutput, std::string(what) + " line " + std::to_string(line_no) +
                                        " " + util::quote(line, 160) + ": " + std::string(why));
}

}  // namespace

Result<SmiQueryResult> parse_smi_query_gpu(std::string_view text, bool with_compute_cap) {
  const std::size_t n_cols = with_compute_cap ? 9 : 8;
  SmiQueryResult out;
  auto lines = util::split_lines(text);
  for (std::size_t ln = 0; ln < lines.size(); ++ln) {
    std::string_view line = lines[ln];
    if (util::trim(line).empty()) continue;
    auto fail = [&](std::string_view why) {
      return bad_line("nvidia-smi --query-gpu", ln + 1, line, why);
    };
    auto cells = util::split(line, ',');
    if (cells.size() != n_cols)
      return fail("has " + std::to_string(cells.size()) + " cells, expected " +
                  std::to_string(n_cols));
    for (auto& c : cells) c = util::trim(c);
    std::size_t col = 0;
    const std::string_view index = cells[col++], name = cells[col++], uuid = cells[col++],
                           bus = cells[col++], total = cells[col++], free = cells[col++];
    const std::string_view cc = with_compute_cap ? cells[col++] : std::string_view("[N/A]");
    const std::string_view driver = cells[col++], mig = cells[col++];

    NvidiaGpu gpu;
    auto idx = util::parse_u64(index);
    if (!is_digits(index) || !idx || *idx >= kMaxIndex)
      return fail("index " + util::quote(index) + " is not a small non-negative integer");
    gpu.index = static_cast<int>(*idx);
    if (!is_unknown(name)) {
      if (!is_text(name)) return fail("name " + util::quote(name) + " is not printable text");
      gpu.name = std::string(name);
    }
    if (!is_unknown(uuid)) {
      if (!is_token(uuid)) return fail("uuid " + util::quote(uuid) + " is malformed");
      gpu.uuid = std::string(uuid);
    }
    if (!is_unknown(bus)) {
      if (!is_bus_id(bus)) return fail("pci.bus_id " + util::quote(bus) + " is malformed");
      gpu.pci_bus_id = std::string(bus);
    }
    if (!is_unknown(total)) {
      auto mib = util::parse_u64(total);
      if (!is_digits(total) || !mib || *mib > kMaxMib)
        return fail("memory.total " + util::quote(total) + " is not a MiB count");
      gpu.vram_total_bytes = *mib * kBytesPerMib;
    }
    if (!is_unknown(free)) {
      auto mib = util::parse_u64(free);
      if (!is_digits(free) || !mib || *mib > kMaxMib)
        return fail("memory.free " + util::quote(free) + " is not a MiB count");
      gpu.vram_free_bytes = *mib * kBytesPerMib;
    }
    if (!is_unknown(cc)) {
      if (!is_dotted_version(cc, 2)) return fail("compute_cap " + util::quote(cc) + " is not N.M");
      gpu.compute_capability = std::string(cc);
    }
    if (!is_unknown(driver)) {
      if (!is_token(driver))
        return fail("driver_version " + util::quote(driver) + " is malformed");
      if (out.driver_version.empty()) out.driver_version = std::string(driver);
    }
    if (mig == "Enabled") {
      gpu.mig_enabled = true;
    } else if (mig == "Disabled") {
      gpu.mig_enabled = false;
    } else if (!is_unknown(mig)) {
      return fail("mig.mode.current " + util::quote(mig) + " is not Enabled/Disabled");
    }
    out.gpus.push_back(std::move(gpu));
  }
  return out;
}

std::optional<std::string> parse_smi_invalid_field(std::string_view text) {
  for (auto line : util::split_lines(text)) {
    line = util::trim(line);
    constexpr std::string_view kHead = "Field \"";
    constexpr std::string_view kTail = "\" is not a valid field to query.";
    if (util::starts_with(line, kHead) && util::ends_with(line, kTail) &&
        line.size() > kHead.size() + kTail.size())
      return std::string(line.substr(kHead.size(), line.size() - kHead.size() - kTail.size()));
  }
  return std::nullopt;
}

Result<std::vector<SmiListedGpu>> parse_smi_list(std::string_view text) {
  std::vector<SmiListedGpu> out;
  auto lines = util::split_lines(text);
  for (std::size_t ln = 0; ln < lines.size(); ++ln) {
    std::string_view raw = lines[ln];
    std::string_view line = util::trim(raw);
    if (line.empty()) continue;
    auto fail = [&](std::string_view why) { return bad_line("nvidia-smi -L", ln + 1, raw, why); };
    // Both kinds end in "(UUID: <uuid>)".
    constexpr std::string_view kUuid = "(UUID: ";
    auto at = line.rfind(kUuid);
    if (at == std::string_view::npos || line.back() != ')')
      return fail("does not end in \"(UUID: ...)\"");
    std::string_view uuid =
        line.substr(at + kUuid.size(), line.size() - 1 - (at + kUuid.size()));
    if (!is_token(uuid)) return fail("UUID " + util::quote(uuid) + " is malformed");
    std::string_view head = util::trim(line.substr(0, at));

    if (util::starts_with(head, "GPU ")) {
      // "GPU 0: NVIDIA H100 80GB HBM3"
      auto colon = head.find(':');
      if (colon == std::string_view::npos) return fail("GPU line without ':'");
      std::string_view idx_s = head.substr(4, colon - 4);
      auto idx = util::parse_u64(idx_s);
      if (!is_digits(idx_s) || !idx || *idx >= kMaxIndex)
        return fail("GPU index " + util::quote(idx_s) + " is not a small integer");
      std::string_view name = util::trim(head.substr(colon + 1));
      if (!name.empty() && !is_text(name)) return fail("name is not printable text");
      SmiListedGpu g;
      g.index = static_cast<int>(*idx);
      g.name = std::string(name);
      g.uuid = std::string(uuid);
      out.push_back(std::move(g));
    } else if (util::starts_with(head, "MIG ")) {
      // "MIG 2g.20gb     Device  0:"
      if (out.empty()) return fail("MIG device before any GPU");
      auto words = util::split_ws(head);
      if (words.size() < 4 || words[2] != "Device" || !util::ends_with(words.back(), ":"))
        return fail("MIG line is not \"MIG <profile> Device <n>: (UUID: ...)\"");
      if (!is_token(words[1])) return fail("MIG profile is malformed");
      MigDevice m;
      m.uuid = std::string(uuid);
      m.name = std::string(words[1]);
      out.back().mig_devices.push_back(std::move(m));
    } else {
      return fail("is neither a GPU nor a MIG device line");
    }
  }
  return out;
}

Result<std::string> parse_smi_cuda_version(std::string_view banner) {
  constexpr std::string_view kKey = "CUDA Version:";
  auto at = banner.find(kKey);
  if (at != std::string_view::npos) {
    auto rest = banner.substr(at + kKey.size());
    auto value = rest.substr(0, rest.find('\n'));
    auto words = util::split_ws(value);
    if (!words.empty() && is_dotted_version(words[0], 3)) return std::string(words[0]);
    return Error(Errc::BadToolOutput, "nvidia-smi banner has no usable CUDA version: " +
                                          util::quote(std::string(kKey) + " " +
                                                      std::string(util::trim(value)), 60));
  }
  auto first = util::split_lines(banner);
  return Error(Errc::BadToolOutput, "nvidia-smi printed no \"CUDA Version:\" (first line " +
                                        util::quote(first.empty() ? "" : first[0]) + ")");
}

Result<std::string> parse_proc_driver_version(std::string_view text) {
  for (auto line : util::split_lines(text)) {
    if (!util::starts_with(line, "NVRM version:")) continue;
    auto words = util::split_ws(line);
    for (std::size_t i = 0; i < words.size(); ++i) {
      if (words[i] != "Module") continue;
      // Proprietary: "Module  550.54.14"; open: "Module for x86_64  565.57.01".
      for (std::size_t j = i + 1; j < words.size() && j <= i + 4; ++j)
        if (is_dotted_version(words[j])) return std::string(words[j]);
    }
    return Error(Errc::BadSysfs,
                 "/proc/driver/nvidia/version: no version in " + util::quote(line, 160));
  }
  return Error(Errc::BadSysfs, "/proc/driver/nvidia/version has no \"NVRM version:\" line");
}

std::string smi_failure_message(std::string_view out, std::string_view err) {
  for (auto text : {out, err}) {
    for (auto line : util::split_lines(text)) {
      line = util::trim(line);
      if (line.empty()) continue;
      if (line.size() > 200) line = line.substr(0, 200);
      return std::string(line);
    }
  }
  return {};
}

}  // namespace cyllm::detect
