// KFD topology parsers; the format is laid out in amd_kfd.h.
#include "detect/amd_kfd.h"

#include <cstdio>

#include "util/strings.h"

namespace cyllm::detect::kfd {
namespace {

std::string where(std::string_view source, std::size_t line_no) {
  return util::quote(source) + " line " + std::to_string(line_no);
}

bool is_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

Error missing(std::string_view source, std::string_view key) {
  return Error(Errc::BadSysfs, util::quote(source) + " has no " + std::string(key));
}

// Reads `key` (at most `max`) into `out`; a missing key leaves `out` alone unless required.
Result<void> get(const Properties& props, std::string_view source, std::string_view key,
                 bool required, std::uint64_t max, std::uint64_t& out) {
  auto it = props.find(key);
  if (it == props.end()) {
    if (required) return missing(source, key);
    return {};
  }
  if (it->second > max)
    return Error(Errc::BadSysfs, util::quote(source) + ": " + std::string(key) + " " +
                                     std::to_string(it->second) + " is out of range (max " +
                                     std::to_string(max) + ")");
  out = it->second;
  return {};
}

// The same for 32-bit fields; `max` must fit in 32 bits.
Result<void> get(const Properties& props, std::string_view source, std::string_view key,
                 bool required, std::uint64_t max, std::uint32_t& out) {
  std::uint64_t v = out;
  CYLLM_TRY_VOID(get(props, source, key, required, max, v));
  out = static_cast<std::uint32_t>(v);
  return {};
}

}  // namespace

Result<Properties> parse_properties(std::string_view text, std::string_view source) {
  Properties props;
  const auto lines = util::split_lines(text);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::size_t line_no = i + 1;
    const std::string_view line = lines[i];
    if (util::trim(line).empty()) continue;
    if (props.size() >= kMaxProperties)
      return Error(Errc::BadSysfs, util::quote(source) + " has more than " +
                                       std::to_string(kMaxProperties) + " properties");
    const bool last = i + 1 == lines.size();
    if (last && (text.empty() || text.back() != '\n'))
      return Error(Errc::BadSysfs, where(source, line_no) + " " + util::quote(line) +
                                       " is cut off (no newline at end of file)");
    const auto fields = util::split_ws(line);
    if (fields.size() != 2)
      return Error(Errc::BadSysfs, where(source, line_no) + " " + util::quote(line) +
                                       " is not \"key value\"");
    const std::string_view key = fields[0];
    for (char c : key)
      if (!is_key_char(c))
        return Error(Errc::BadSysfs, where(source, line_no) + ": bad key " + util::quote(key));
    const auto value = util::parse_u64(fields[1]);
    if (!value)
      return Error(Errc::BadSysfs, where(source, line_no) + ": value " +
                                       util::quote(fields[1]) + " of " + std::string(key) +
                                       " is not an unsigned decimal");
    if (!props.emplace(std::string(key), *value).second)
      return Error(Errc::BadSysfs,
                   where(source, line_no) + ": duplicate key " + util::quote(key));
  }
  return props;
}

Result<Node> parse_node(const Properties& props, std::string_view source) {
  constexpr std::uint64_t kU16 = 0xffff, kU32 = 0xffffffff, kAny = ~std::uint64_t{0};
  Node n;
  CYLLM_TRY_VOID(get(props, source, "simd_count", true, 1u << 20, n.simd_count));
  const bool gpu = n.is_gpu();
  CYLLM_TRY_VOID(get(props, source, "simd_per_cu", gpu, 1u << 20, n.simd_per_cu));
  CYLLM_TRY_VOID(get(props, source, "gfx_target_version", false, kAny,
                     n.gfx_target_version));
  CYLLM_TRY_VOID(get(props, source, "vendor_id", false, kU16, n.vendor_id));
  CYLLM_TRY_VOID(get(props, source, "device_id", gpu, kU16, n.device_id));
  CYLLM_TRY_VOID(get(props, source, "location_id", gpu, kU16, n.location_id));
  CYLLM_TRY_VOID(get(props, source, "domain", false, kU32, n.domain));
  CYLLM_TRY_VOID(get(props, source, "drm_render_minor", false, 1u << 20, n.drm_render_minor));
  CYLLM_TRY_VOID(get(props, source, "local_mem_size", false, kAny, n.local_mem_size));
  if (auto it = props.find("unique_id"); it != props.end() && it->second != 0)
    n.unique_id = it->second;
  return n;
}

Result<Node> parse_node_text(std::string_view text, std::string_view source) {
  auto props = parse_properties(text, source);
  if (!props) return std::move(props).error();
  return parse_node(*props, source);
}

Result<MemBank> parse_mem_bank(std::string_view text, std::string_view source) {
  auto props = parse_properties(text, source);
  if (!props) return std::move(props).error();
  MemBank bank;
  CYLLM_TRY_VOID(get(*props, source, "heap_type", true, ~std::uint64_t{0}, bank.heap_type));
  CYLLM_TRY_VOID(
      get(*props, source, "size_in_bytes", true, ~std::uint64_t{0}, bank.size_in_bytes));
  return bank;
}

Result<std::uint64_t> parse_used_memory(std::string_view text, std::string_view source) {
  if (text.empty() || text.back() != '\n')
    return Error(Errc::BadSysfs, util::quote(source) + ": " + util::quote(text) +
                                     " is cut off (no newline at end of file)");
  auto v = util::parse_u64(text);
  if (!v)
    return Error(Errc::BadSysfs,
                 util::quote(source) + ": " + util::quote(util::trim(text)) +
                     " is not an unsigned decimal");
  return *v;
}

std::optional<std::string> gfx_target_from_version(std::uint64_t version) {
  const std::uint64_t major = version / 10000;
  const std::uint64_t minor = (version / 100) % 100;
  const std::uint64_t stepping = version % 100;
  if (major == 0 || major > 99 || minor > 15 || stepping > 15) return std::nullopt;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s = "gfx" + std::to_string(major);
  s += kHex[minor];
  s += kHex[stepping];
  return s;
}

std::optional<std::string> gfx_target_from_device_id(std::uint32_t device_id) {
  struct Entry {
    std::uint32_t id;
    const char* gfx;
  };
  // PCI device id -> LLVM target, for parts whose kernels may predate gfx_target_version.
  static constexpr Entry kTable[] = {
      {0x6860, "gfx900"}, {0x6861, "gfx900"}, {0x6862, "gfx900"}, {0x6863, "gfx900"},
      {0x686c, "gfx900"},                                            // Vega 10 (MI25)
      {0x66a0, "gfx906"}, {0x66a1, "gfx906"}, {0x66a7, "gfx906"},    // Vega 20 (MI50/60)
      {0x738c, "gfx908"},                                            // MI100
      {0x7408, "gfx90a"}, {0x740c, "gfx90a"}, {0x740f, "gfx90a"},    // MI200
      {0x74a0, "gfx942"}, {0x74a1, "gfx942"}, {0x74a2, "gfx942"},    // MI300
  };
  for (const auto& e : kTable)
    if (e.id == device_id) return std::string(e.gfx);
  return std::nullopt;
}

std::optional<std::string> marketing_name_from_device_id(std::uint32_t device_id) {
  struct Entry {
    std::uint32_t id;
    const char* name;
  };
  static constexpr Entry kTable[] = {
      {0x738c, "AMD Instinct MI100"},  {0x740f, "AMD Instinct MI210"},
      {0x74a0, "AMD Instinct MI300A"}, {0x74a1, "AMD Instinct MI300X"},
      {0x74a2, "AMD Instinct MI308X"},
  };
  for (const auto& e : kTable)
    if (e.id == device_id) return std::string(e.name);
  return std::nullopt;
}

std::string pci_bus_id(std::uint32_t domain, std::uint32_t location_id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", domain, (location_id >> 8) & 0xff,
                (location_id >> 3) & 0x1f, location_id & 7);
  return buf;
}

std::string unique_id_hex(std::uint64_t unique_id) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(unique_id));
  return buf;
}

bool is_meaningful_name(std::string_view name) {
  name = util::trim(name);
  return !name.empty() && name != "ip discovery";
}

}  // namespace cyllm::detect::kfd
