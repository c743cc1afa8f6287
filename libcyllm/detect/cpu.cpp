#include "detect/cpu.h"

#include <sys/utsname.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "cyllm/detect.h"
#include "detect/warnings.h"
#include "util/strings.h"

namespace cyllm::detect {
namespace {

// kernel flag -> canonical name. Only the features the engines and the registry care
// about are reported; the rest of the (long) flag list is noise for dependency choice.
const std::map<std::string_view, std::string_view>& x86_flag_names() {
  static const std::map<std::string_view, std::string_view> m = {
      {"sse4_2", "sse4.2"},       {"avx", "avx"},
      {"avx2", "avx2"},           {"fma", "fma"},
      {"f16c", "f16c"},           {"avx512f", "avx512f"},
      {"avx512dq", "avx512dq"},   {"avx512cd", "avx512cd"},
      {"avx512bw", "avx512bw"},   {"avx512vl", "avx512vl"},
      {"avx512_vnni", "avx512_vnni"}, {"avx512_bf16", "avx512_bf16"},
      {"avx512_fp16", "avx512_fp16"}, {"avx_vnni", "avx_vnni"},
      {"amx_tile", "amx_tile"},   {"amx_int8", "amx_int8"},
      {"amx_bf16", "amx_bf16"},
  };
  return m;
}

const std::map<std::string_view, std::string_view>& arm_flag_names() {
  static const std::map<std::string_view, std::string_view> m = {
      {"asimd", "neon"}, {"sve", "sve"},     {"sve2", "sve2"}, {"asimddp", "dotprod"},
      {"i8mm", "i8mm"},  {"bf16", "bf16"},   {"asimdhp", "fp16"},
  };
  return m;
}

std::pair<std::string_view, std::string_view> split_key_value(std::string_view line) {
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return {util::trim(line), {}};
  return {util::trim(line.substr(0, colon)), util::trim(line.substr(colon + 1))};
}

// arm64 /proc/cpuinfo has no model name; name the well-known server cores from their
// (implementer, part) pair (MIDR_EL1 fields, facts from the vendors' manuals).
std::string arm_core_name(std::string_view impl, std::string_view part) {
  auto i = util::parse_hex_u64(impl);
  auto p = util::parse_hex_u64(part);
  if (!i || !p) return {};
  struct Known { std::uint64_t impl, part; const char* name; };
  static constexpr Known kKnown[] = {
      {0x48, 0xd01, "Kunpeng-920"},     {0x41, 0xd0c, "Neoverse-N1"},
      {0x41, 0xd40, "Neoverse-V1"},     {0x41, 0xd49, "Neoverse-N2"},
      {0x41, 0xd4f, "Neoverse-V2"},     {0x41, 0xd8e, "Neoverse-N3"},
      {0x41, 0xd84, "Neoverse-V3"},     {0xc0, 0xac3, "AmpereOne"},
  };
  for (const auto& k : kKnown)
    if (k.impl == *i && k.part == *p) return k.name;
  return {};
}

}  // namespace

Result<CpuinfoSummary> parse_cpuinfo(std::string_view text) {
  CpuinfoSummary s;
  std::set<std::pair<std::string, std::string>> cores;
  std::set<std::string> sockets;
  std::string phys, core;
  bool in_block = false;
  bool first_flags_done = false;
  bool saw_arm = false, saw_x86 = false;
  std::string arm_impl, arm_part;
  auto end_block = [&] {
    if (in_block && !phys.empty() && !core.empty()) cores.insert({phys, core});
    if (in_block && !phys.empty()) sockets.insert(phys);
    phys.clear();
    core.clear();
    in_block = false;
  };
  for (auto line : util::split_lines(text)) {
    if (util::trim(line).empty()) {
      end_block();
      continue;
    }
    auto [key, value] = split_key_value(line);
    if (key == "processor") {
      end_block();
      if (!util::parse_u64(value)) {
        // arm32 kernels print "Processor : ARMv7 ..." as a model line; not a CPU entry.
        if (s.model_name.empty()) s.model_name = std::string(value);
        continue;
      }
      in_block = true;
      ++s.logical_cpus;
    } else if (key == "vendor_id") {
      saw_x86 = true;
      if (s.vendor.empty()) s.vendor = std::string(value);
    } else if (key == "model name") {
      if (s.model_name.empty()) s.model_name = std::string(value);
    } else if (key == "physical id") {
      phys = std::string(value);
    } else if (key == "core id") {
      core = std::string(value);
    } else if ((key == "flags" || key == "Features") && !first_flags_done) {
      if (key == "Features") saw_arm = true;
      for (auto f : util::split_ws(value)) s.raw_flags.emplace_back(f);
      first_flags_done = true;
    } else if (key == "CPU part") {
      if (arm_part.empty()) arm_part = std::string(value);
    } else if (key == "CPU implementer") {
      if (arm_impl.empty()) arm_impl = std::string(value);
      saw_arm = true;
      if (s.vendor.empty()) {
        // Arm's implementer codes (MIDR_EL1[31:24]); facts from the Arm ARM.
        auto code = util::parse_hex_u64(value);
        static const std::map<std::uint64_t, std::string_view> kImpl = {
            {0x41, "ARM"}, {0x42, "Broadcom"}, {0x43, "Cavium"}, {0x46, "Fujitsu"},
            {0x48, "HiSilicon"}, {0x4e, "NVIDIA"}, {0x50, "APM"}, {0x51, "Qualcomm"},
            {0x61, "Apple"}, {0xc0, "Ampere"}};
        if (code && kImpl.count(*code)) s.vendor = std::string(kImpl.at(*code));
        else s.vendor = "arm-implementer-" + std::string(value);
      }
    }
  }
  end_block();
  if (s.model_name.empty() && !arm_impl.empty()) s.model_name = arm_core_name(arm_impl, arm_part);
  if (s.logical_cpus == 0)
    return Error(Errc::BadSysfs, "no \"processor\" entries in /proc/cpuinfo (" +
                                     std::to_string(text.size()) + " bytes)");
  s.physical_cores = static_cast<int>(cores.size());
  s.sockets = static_cast<int>(sockets.size());
  s.architecture = saw_arm && !saw_x86 ? "aarch64" : (saw_x86 ? "x86_64" : "");
  return s;
}

Result<Meminfo> parse_meminfo(std::string_view text) {
  std::optional<std::uint64_t> total, avail, free_kb, buffers, cached;
  for (auto line : util::split_lines(text)) {
    auto [key, value] = split_key_value(line);
    if (key != "MemTotal" && key != "MemAvailable" && key != "MemFree" && key != "Buffers" &&
        key != "Cached")
      continue;
    std::string_view num = value;
    if (util::ends_with(num, "kB")) num.remove_suffix(2);
    auto v = util::parse_u64(num);
    if (!v || *v > (std::uint64_t{1} << 50))
      return Error(Errc::BadSysfs, "bad /proc/meminfo line " + util::quote(line));
    std::uint64_t bytes = *v * 1024;
    if (key == "MemTotal") total = bytes;
    else if (key == "MemAvailable") avail = bytes;
    else if (key == "MemFree") free_kb = bytes;
    else if (key == "Buffers") buffers = bytes;
    else cached = bytes;
  }
  if (!total) return Error(Errc::BadSysfs, "no MemTotal line in /proc/meminfo");
  Meminfo m;
  m.total_bytes = *total;
  if (avail) m.available_bytes = *avail;
  else m.available_bytes = free_kb.value_or(0) + buffers.value_or(0) + cached.value_or(0);
  return m;
}

std::vector<std::string> canonical_isa(const std::vector<std::string>& raw_flags,
                                       std::string_view architecture) {
  const auto& table = architecture == "aarch64" ? arm_flag_names() : x86_flag_names();
  std::set<std::string> out;
  for (const auto& f : raw_flags) {
    auto it = table.find(f);
    if (it != table.end()) out.insert(std::string(it->second));
  }
  return {out.begin(), out.end()};
}

std::optional<CpuidInfo> read_cpuid() {
#if defined(__x86_64__) || defined(__i386__)
  CpuidInfo info;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return std::nullopt;
  const unsigned max_leaf = a;
  char vendor[13] = {};
  std::memcpy(vendor + 0, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  info.vendor = vendor;

  unsigned ext = __get_cpuid_max(0x80000000u, nullptr);
  if (ext >= 0x80000004u) {
    char brand[49] = {};
    for (unsigned i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002u + i, &a, &b, &c, &d);
      std::memcpy(brand + 16 * i + 0, &a, 4);
      std::memcpy(brand + 16 * i + 4, &b, 4);
      std::memcpy(brand + 16 * i + 8, &c, 4);
      std::memcpy(brand + 16 * i + 12, &d, 4);
    }
    info.model_name = std::string(util::trim(brand));
  }

  std::vector<std::string> raw;
  __get_cpuid(1, &a, &b, &c, &d);
  const bool osxsave = c & (1u << 27);
  std::uint64_t xcr0 = 0;
  if (osxsave) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (std::uint64_t{hi} << 32) | lo;
  }
  const bool os_avx = (xcr0 & 0x6) == 0x6;           // XMM and YMM state
  const bool os_avx512 = (xcr0 & 0xe6) == 0xe6;      // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;   // XTILECFG, XTILEDATA
  if (c & (1u << 20)) raw.push_back("sse4_2");
  if (os_avx) {
    if (c & (1u << 28)) raw.push_back("avx");
    if (c & (1u << 12)) raw.push_back("fma");
    if (c & (1u << 29)) raw.push_back("f16c");
  }
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned max_sub = a;
    if (os_avx && (b & (1u << 5))) raw.push_back("avx2");
    if (os_avx512) {
      if (b & (1u << 16)) raw.push_back("avx512f");
      if (b & (1u << 17)) raw.push_back("avx512dq");
      if (b & (1u << 28)) raw.push_back("avx512cd");
      if (b & (1u << 30)) raw.push_back("avx512bw");
      if (b & (1u << 31)) raw.push_back("avx512vl");
      if (c & (1u << 11)) raw.push_back("avx512_vnni");
      if (d & (1u << 23)) raw.push_back("avx512_fp16");
    }
    if (os_amx) {
      if (d & (1u << 22)) raw.push_back("amx_bf16");
      if (d & (1u << 24)) raw.push_back("amx_tile");
      if (d & (1u << 25)) raw.push_back("amx_int8");
    }
    if (max_sub >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      if (os_avx && (a & (1u << 4))) raw.push_back("avx_vnni");
      if (os_avx512 && (a & (1u << 5))) raw.push_back("avx512_bf16");
    }
  }
  info.isa = canonical_isa(raw, "x86_64");
  return info;
#else
  return std::nullopt;
#endif
}

CpuInfo detect_cpu(const Context& ctx, std::vector<Warning>& warnings) {
  CpuInfo cpu;
  auto text = ctx.fs.read_file("/proc/cpuinfo");
  if (!text) {
    add_warning(warnings, Error(text.error()).with_context("reading /proc/cpuinfo"));
  } else if (auto s = parse_cpuinfo(*text); !s) {
    add_warning(warnings, s.error());
  } else {
    cpu.vendor = s->vendor;
    cpu.model_name = s->model_name;
    cpu.architecture = s->architecture;
    cpu.logical_cores = s->logical_cpus;
    cpu.physical_cores = s->physical_cores;
    cpu.sockets = s->sockets;
    cpu.isa = canonical_isa(s->raw_flags, s->architecture);
    cpu.isa_source = "/proc/cpuinfo";
  }

  if (ctx.fs.is_host_root()) {
    // The running CPU: cpuid knows about OS support (XCR0) that /proc/cpuinfo flags hide
    // in VMs, and uname is authoritative for the architecture.
    struct utsname u;
    if (::uname(&u) == 0) cpu.architecture = u.machine;
    if (auto id = read_cpuid()) {
      cpu.isa = id->isa;
      cpu.isa_source = "cpuid";
      if (cpu.vendor.empty()) cpu.vendor = id->vendor;
      if (cpu.model_name.empty()) cpu.model_name = id->model_name;
    }
  }

  // Logical CPUs: /sys/devices/system/cpu/online is exact where cpuinfo may be filtered.
  if (auto online = ctx.fs.read_file("/sys/devices/system/cpu/online")) {
    if (auto n = util::count_cpu_list(*online); n && *n > 0) cpu.logical_cores = *n;
    else add_warning(warnings, Errc::BadSysfs,
                     "bad /sys/devices/system/cpu/online " + util::quote(*online));
  }

  // arm64 has no topology in cpuinfo: count unique (package, core) pairs in sysfs.
  if (cpu.physical_cores == 0 && cpu.logical_cores > 0) {
    std::set<std::pair<std::string, std::string>> cores;
    std::set<std::string> packages;
    for (int i = 0; i < cpu.logical_cores && i < 65536; ++i) {
      std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(i) + "/topology/";
      auto core = ctx.fs.read_file(base + "core_id");
      auto pkg = ctx.fs.read_file(base + "physical_package_id");
      if (!core || !pkg) break;
      cores.insert({std::string(util::trim(*pkg)), std::string(util::trim(*core))});
      packages.insert(std::string(util::trim(*pkg)));
    }
    cpu.physical_cores = cores.empty() ? cpu.logical_cores : static_cast<int>(cores.size());
    if (cpu.sockets == 0) cpu.sockets = packages.empty() ? 1 : static_cast<int>(packages.size());
  }

  // NUMA: nodes whose cpulist is non-empty; memory-only nodes do not count.
  if (auto nodes = ctx.fs.list_dir("/sys/devices/system/node")) {
    for (const auto& n : *nodes) {
      if (!util::starts_with(n, "node") || !util::parse_u64(std::string_view(n).substr(4)))
        continue;
      auto list = ctx.fs.read_file("/sys/devices/system/node/" + n + "/cpulist");
      if (!list) continue;
      auto count = util::count_cpu_list(*list);
      if (!count) {
        add_warning(warnings, Errc::BadSysfs,
                    "bad /sys/devices/system/node/" + n + "/cpulist " + util::quote(*list));
        continue;
      }
      if (*count > 0) ++cpu.numa_nodes;
    }
  }
  if (cpu.numa_nodes == 0 && cpu.logical_cores > 0) cpu.numa_nodes = 1;

  auto mem = ctx.fs.read_file("/proc/meminfo");
  if (!mem) {
    add_warning(warnings, Error(mem.error()).with_context("reading /proc/meminfo"));
  } else if (auto m = parse_meminfo(*mem); !m) {
    add_warning(warnings, m.error());
  } else {
    cpu.memory_total_bytes = m->total_bytes;
    cpu.memory_available_bytes = m->available_bytes;
  }
  return cpu;
}

}  // namespace cyllm::detect
