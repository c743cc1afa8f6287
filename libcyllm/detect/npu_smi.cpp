// Ascend npu-smi and version.info parsers; the formats are laid out in npu_smi.h.
#include "detect/npu_smi.h"

#include "util/strings.h"

namespace cyllm::detect::npu_smi {
namespace {

Error bad_line(std::size_t line_no, std::string_view line, const std::string& why) {
  return Error(Errc::BadToolOutput, "npu-smi line " + std::to_string(line_no) + " " +
                                        util::quote(line) + ": " + why);
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// "0000:C1:00.0" (domain of 4 or 8 hex digits).
bool is_pci_bus_id(std::string_view s) {
  auto colon = s.find(':');
  if (colon != 4 && colon != 8) return false;
  std::string_view rest = s.substr(colon);
  if (rest.size() != 8 || rest[3] != ':' || rest[6] != '.') return false;  // ":C1:00.0"
  for (std::size_t i = 0; i < colon; ++i)
    if (!is_hex(s[i])) return false;
  for (std::size_t i : {1, 2, 4, 5, 7})
    if (!is_hex(rest[i])) return false;
  return true;
}

// One value of the stats cell: a scalar ("88.2", "-") or a "used / total" pair.
struct Value {
  std::string a;
  std::optional<std::string> b;  // total of a pair
};

// "88.2  30  0    / 0" -> [88.2] [30] [0 / 0]; nullopt on a dangling '/'.
std::optional<std::vector<Value>> split_values(std::string_view cell) {
  std::string spaced;
  for (char c : cell) {
    if (c == '/') {
      spaced += " / ";
    } else {
      spaced += c;
    }
  }
  const auto tokens = util::split_ws(spaced);
  std::vector<Value> values;
  for (std::size_t i = 0; i < tokens.size();) {
    if (tokens[i] == "/") return std::nullopt;
    if (i + 1 < tokens.size() && tokens[i + 1] == "/") {
      if (i + 2 >= tokens.size() || tokens[i + 2] == "/") return std::nullopt;
      values.push_back({std::string(tokens[i]), std::string(tokens[i + 2])});
      i += 3;
    } else {
      values.push_back({std::string(tokens[i]), std::nullopt});
      i += 1;
    }
  }
  return values;
}

// "-" -> nullopt (unknown); a number -> value; garbage -> error text in `why`.
bool parse_opt_u64(std::string_view s, std::uint64_t max, std::optional<std::uint64_t>& out,
                   std::string& why) {
  if (s == "-" || s == "NA") return true;
  auto v = util::parse_u64(s);
  if (!v || *v > max) {
    why = "value " + util::quote(s) + " is not a number up to " + std::to_string(max);
    return false;
  }
  out = *v;
  return true;
}

bool parse_opt_double(std::string_view s, std::optional<double>& out, std::string& why) {
  if (s == "-" || s == "NA") return true;
  auto v = util::parse_double(s);
  if (!v || !(*v > -1e9 && *v < 1e9)) {
    why = "value " + util::quote(s) + " is not a number";
    return false;
  }
  out = *v;
  return true;
}

bool parse_opt_i64(std::string_view s, std::optional<std::int64_t>& out, std::string& why) {
  if (s == "-" || s == "NA") return true;
  auto v = util::parse_i64(s);
  if (!v || *v < -1000000 || *v > 1000000) {
    why = "value " + util::quote(s) + " is not a number";
    return false;
  }
  out = *v;
  return true;
}

std::optional<int> parse_id(std::string_view s) {
  auto v = util::parse_u64(s);
  if (!v || *v > 0xffff) return std::nullopt;
  return static_cast<int>(*v);
}

std::string join(const std::vector<std::string_view>& tokens, std::size_t from) {
  std::string s;
  for (std::size_t i = from; i < tokens.size(); ++i) {
    if (!s.empty()) s += ' ';
    s += tokens[i];
  }
  return s;
}

// The cells of a "| a | b |" row, trimmed, without the empty ends.
std::vector<std::string_view> cells_of(std::string_view line) {
  auto cells = util::split(line, '|');
  if (!cells.empty()) cells.erase(cells.begin());  // before the leading '|'
  if (!cells.empty() && util::trim(cells.back()).empty()) cells.pop_back();
  for (auto& c : cells) c = util::trim(c);
  return cells;
}

}  // namespace

Result<Info> parse_info(std::string_view text) {
  Info info;
  bool saw_header = false;
  std::optional<Chip> npu_row;  // the NPU row the next chip rows belong to
  const auto lines = util::split_lines(text);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::size_t line_no = i + 1;
    const std::string_view line = util::trim(lines[i]);
    if (line.empty() || line.front() != '|') continue;  // borders, blank lines, "..."
    const auto cells = cells_of(line);
    if (cells.empty()) continue;

    if (cells.size() == 1) {  // "npu-smi 24.1.1  Version: 24.1.1" or a note
      const auto tokens = util::split_ws(cells[0]);
      if (tokens.size() >= 2 && tokens[0] == "npu-smi") {
        info.tool_version = std::string(tokens[1]);
        for (std::size_t t = 2; t + 1 < tokens.size(); ++t)
          if (tokens[t] == "Version:") info.version = std::string(tokens[t + 1]);
      }
      continue;
    }
    bool is_process_header = false;
    for (auto c : cells) is_process_header = is_process_header || util::starts_with(c, "Process");
    if (is_process_header) break;  // the process table follows the device table
    if (util::starts_with(cells[0], "NPU")) {
      saw_header = true;
      continue;
    }
    if (util::starts_with(cells[0], "Chip")) continue;  // second header row
    if (cells.size() < 3) return bad_line(line_no, line, "expected 3 cells");

    std::string why;
    auto values = split_values(cells[2]);
    if (!values) return bad_line(line_no, line, "dangling '/' in " + util::quote(cells[2]));
    const auto id_tokens = util::split_ws(cells[0]);
    if (id_tokens.empty()) return bad_line(line_no, line, "empty first cell");

    if (!is_pci_bus_id(cells[1])) {  // NPU row: "id name | health | power temp pages"
      if (id_tokens.size() < 2) return bad_line(line_no, line, "NPU row without a name");
      auto npu_id = parse_id(id_tokens[0]);
      if (!npu_id) return bad_line(line_no, line, "NPU id " + util::quote(id_tokens[0]) +
                                                      " is not a number");
      Chip c;
      c.npu_id = *npu_id;
      c.name = join(id_tokens, 1);
      c.health = std::string(cells[1]);
      if (values->size() >= 1 && !parse_opt_double((*values)[0].a, c.power_w, why))
        return bad_line(line_no, line, "power " + why);
      if (values->size() >= 2 && !parse_opt_i64((*values)[1].a, c.temp_c, why))
        return bad_line(line_no, line, "temperature " + why);
      npu_row = std::move(c);
      continue;
    }

    // Chip row: "chip [phy] | bus-id | aicore memory [hbm]"
    if (!npu_row) return bad_line(line_no, line, "chip row without an NPU row before it");
    if (info.chips.size() >= kMaxChips)
      return bad_line(line_no, line, "more than " + std::to_string(kMaxChips) + " chips");
    if (id_tokens.size() > 2) return bad_line(line_no, line, "chip cell has extra fields");
    Chip c = *npu_row;
    auto chip_id = parse_id(id_tokens[0]);
    if (!chip_id)
      return bad_line(line_no, line, "chip id " + util::quote(id_tokens[0]) + " is not a number");
    c.chip_id = *chip_id;
    if (id_tokens.size() == 2) {
      auto phy = parse_id(id_tokens[1]);
      if (!phy)
        return bad_line(line_no, line, "chip id " + util::quote(id_tokens[1]) + " is not a number");
      c.phy_id = *phy;
    }
    c.pci_bus_id = util::to_lower(cells[1]);
    if (values->empty()) return bad_line(line_no, line, "no AICore value");
    if ((*values)[0].b || !parse_opt_u64((*values)[0].a, 100000, c.aicore_percent, why))
      return bad_line(line_no, line, "AICore " + (why.empty() ? "is a pair" : why));
    if (values->size() > 3) return bad_line(line_no, line, "too many values");
    auto pair = [&](std::size_t k, std::optional<std::uint64_t>& used,
                    std::optional<std::uint64_t>& total) {
      const Value& v = (*values)[k];
      if (!v.b) {
        why = util::quote(v.a) + " is not \"used / total\"";
        return false;
      }
      return parse_opt_u64(v.a, kMaxMegabytes, used, why) &&
             parse_opt_u64(*v.b, kMaxMegabytes, total, why);
    };
    if (values->size() >= 2 && !pair(1, c.memory_used_mb, c.memory_total_mb))
      return bad_line(line_no, line, "Memory-Usage " + why);
    if (values->size() >= 3 && !pair(2, c.hbm_used_mb, c.hbm_total_mb))
      return bad_line(line_no, line, "HBM-Usage " + why);
    info.chips.push_back(std::move(c));
  }
  if (!saw_header && info.chips.empty())
    return Error(Errc::BadToolOutput,
                 "npu-smi output has no NPU table: " + util::quote(util::trim(text)));
  return info;
}

Result<std::vector<MappingEntry>> parse_mapping(std::string_view text) {
  std::vector<MappingEntry> out;
  std::vector<std::string> columns;
  int col_npu = -1, col_chip = -1, col_logic = -1, col_name = -1;
  const auto lines = util::split_lines(text);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = util::trim(lines[i]);
    if (line.empty()) continue;
    if (columns.empty()) {
      // Header: names separated by runs of two or more spaces.
      std::size_t pos = 0;
      while (pos < line.size()) {
        auto end = line.find("  ", pos);
        if (end == std::string_view::npos) end = line.size();
        columns.emplace_back(util::trim(line.substr(pos, end - pos)));
        pos = line.find_first_not_of(' ', end);
        if (pos == std::string_view::npos) break;
      }
      for (std::size_t c = 0; c < columns.size(); ++c) {
        if (columns[c] == "NPU ID") col_npu = static_cast<int>(c);
        if (columns[c] == "Chip ID") col_chip = static_cast<int>(c);
        if (columns[c] == "Chip Logic ID") col_logic = static_cast<int>(c);
        if (columns[c] == "Chip Name") col_name = static_cast<int>(c);
      }
      if (col_npu < 0 || col_chip < 0 || col_logic < 0)
        return Error(Errc::BadToolOutput, "npu-smi info -m header " + util::quote(line) +
                                              " lacks NPU ID, Chip ID or Chip Logic ID");
      continue;
    }
    // Every column but the last is one token; the last takes the rest ("Ascend 910A").
    const auto tokens = util::split_ws(line);
    if (tokens.size() < columns.size())
      return Error(Errc::BadToolOutput, "npu-smi info -m line " + std::to_string(i + 1) + " " +
                                            util::quote(line) + " has too few columns");
    std::vector<std::string> cells(tokens.begin(), tokens.begin() + columns.size() - 1);
    cells.push_back(join(tokens, columns.size() - 1));
    if (cells[col_logic] == "-") continue;  // MCU, not a device
    auto npu = parse_id(cells[col_npu]), chip = parse_id(cells[col_chip]),
         logic = parse_id(cells[col_logic]);
    if (!npu || !chip || !logic)
      return Error(Errc::BadToolOutput, "npu-smi info -m line " + std::to_string(i + 1) + " " +
                                            util::quote(line) + " has a non-numeric id");
    if (out.size() >= kMaxChips)
      return Error(Errc::BadToolOutput, "npu-smi info -m lists more than " +
                                            std::to_string(kMaxChips) + " chips");
    out.push_back({*npu, *chip, *logic, col_name >= 0 ? cells[col_name] : std::string()});
  }
  if (columns.empty()) return Error(Errc::BadToolOutput, "npu-smi info -m printed nothing");
  return out;
}

Result<KeyValues> parse_key_value_file(std::string_view text, std::string_view source) {
  KeyValues kv;
  const auto lines = util::split_lines(text);
  if (lines.size() > 4096)
    return Error(Errc::Parse, util::quote(source) + " has more than 4096 lines");
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = util::trim(lines[i]);
    if (line.empty() || line.front() == '#') continue;
    const std::string where = util::quote(source) + " line " + std::to_string(i + 1) + " " +
                              util::quote(line);
    for (char c : line)
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t')
        return Error(Errc::Parse, where + " has a control character");
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) return Error(Errc::Parse, where + " is not key=value");
    const std::string_view key = util::trim(line.substr(0, eq));
    if (key.empty()) return Error(Errc::Parse, where + " has an empty key");
    for (char c : key) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
      if (!ok) return Error(Errc::Parse, where + " has a bad key " + util::quote(key));
    }
    if (!kv.emplace(std::string(key), std::string(util::trim(line.substr(eq + 1)))).second)
      return Error(Errc::Parse, where + " repeats key " + util::quote(key));
  }
  return kv;
}

std::string soc_version_from_name(std::string_view name) {
  if (name.empty() || util::starts_with(name, "Ascend")) return std::string(name);
  return "Ascend" + std::string(name);
}

}  // namespace cyllm::detect::npu_smi
