#include "detect/cgroup.h"

#include <algorithm>
#include <cmath>

#include "cyllm/detect.h"
#include "detect/warnings.h"
#include "util/strings.h"

namespace cyllm::detect {
namespace {

// v1 reports "no limit" as LONG_MAX rounded down to a page; anything this large is
// treated as unlimited.
constexpr std::uint64_t kUnlimitedThreshold = std::uint64_t{1} << 62;

template <class T>
void keep_min(std::optional<T>& acc, std::optional<T> v) {
  if (v && (!acc || *v < *acc)) acc = v;
}

// "/a/b" -> {"/a/b", "/a", ""}: the cgroup and its ancestors, whose limits also apply.
std::vector<std::string> self_and_ancestors(std::string path) {
  std::vector<std::string> out;
  while (!path.empty() && path.back() == '/') path.pop_back();
  for (;;) {
    out.push_back(path);
    if (path.empty()) break;
    auto slash = path.rfind('/');
    path = slash == std::string::npos ? "" : path.substr(0, slash);
  }
  return out;
}

// Reads `file` in every directory from the process's cgroup up to the mount root and
// feeds each content to `visit`. Inside a container the process's own path may not exist
// under the (namespaced) mount; then only the levels that exist (the mount root) count.
template <class Visit>
void for_each_level(const Context& ctx, const std::string& mount, const std::string& path,
                    const std::string& file, Visit visit) {
  for (const auto& level : self_and_ancestors(path)) {
    std::string f = mount + level + "/" + file;
    if (auto text = ctx.fs.read_file(f)) visit(f, *text);
  }
}

}  // namespace

Result<CgroupMembership> parse_proc_self_cgroup(std::string_view text) {
  CgroupMembership m;
  for (auto line : util::split_lines(text)) {
    if (util::trim(line).empty()) continue;
    auto first = line.find(':');
    auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos)
      return Error(Errc::BadSysfs, "bad /proc/self/cgroup line " + util::quote(line));
    auto id = line.substr(0, first);
    auto controllers = line.substr(first + 1, second - first - 1);
    std::string path(line.substr(second + 1));
    if (!util::parse_u64(id))
      return Error(Errc::BadSysfs, "bad /proc/self/cgroup line " + util::quote(line));
    if (id == "0" && controllers.empty()) {
      m.v2_path = path;
      continue;
    }
    for (auto c : util::split(controllers, ',')) m.v1.emplace_back(std::string(c), path);
  }
  return m;
}

Result<std::optional<double>> parse_cpu_max(std::string_view text) {
  auto f = util::split_ws(util::trim(text));
  if (f.empty() || f.size() > 2) return Error(Errc::BadSysfs, "bad cpu.max " + util::quote(util::trim(text)));
  if (f[0] == "max") return std::optional<double>{};
  auto quota = util::parse_u64(f[0]);
  std::optional<std::uint64_t> period = f.size() == 2 ? util::parse_u64(f[1]) : 100000;
  if (!quota || !period || *period == 0 || *quota == 0)
    return Error(Errc::BadSysfs, "bad cpu.max " + util::quote(util::trim(text)));
  return std::optional<double>(static_cast<double>(*quota) / static_cast<double>(*period));
}

Result<std::optional<std::uint64_t>> parse_memory_limit(std::string_view text) {
  auto t = util::trim(text);
  if (t == "max") return std::optional<std::uint64_t>{};
  auto v = util::parse_u64(t);
  if (!v) return Error(Errc::BadSysfs, "bad memory limit " + util::quote(t));
  if (*v >= kUnlimitedThreshold) return std::optional<std::uint64_t>{};
  return std::optional<std::uint64_t>(*v);
}

Result<std::optional<double>> parse_cfs_quota(std::string_view quota, std::string_view period) {
  auto q = util::parse_i64(quota);
  auto p = util::parse_i64(period);
  if (!q || !p || *p <= 0 || *q == 0 || *q < -1)
    return Error(Errc::BadSysfs, "bad cfs quota/period " + util::quote(util::trim(quota)) +
                                     " / " + util::quote(util::trim(period)));
  if (*q == -1) return std::optional<double>{};
  return std::optional<double>(static_cast<double>(*q) / static_cast<double>(*p));
}

CgroupLimits detect_cgroup(const Context& ctx, std::vector<Warning>& warnings) {
  CgroupLimits lim;
  auto self = ctx.fs.read_file("/proc/self/cgroup");
  if (!self) return lim;  // no cgroups (or not Linux): nothing to apply
  auto m = parse_proc_self_cgroup(*self);
  if (!m) {
    add_warning(warnings, m.error());
    return lim;
  }
  auto warn_bad = [&](const std::string& file, const Error& e) {
    add_warning(warnings, Error(e).with_context("reading " + file));
  };

  if (ctx.fs.exists("/sys/fs/cgroup/cgroup.controllers")) {
    lim.version = 2;
    const std::string mount = "/sys/fs/cgroup";
    for_each_level(ctx, mount, m->v2_path, "cpu.max", [&](const std::string& f, const std::string& t) {
      if (auto v = parse_cpu_max(t)) keep_min(lim.cpu_quota_cores, *v);
      else warn_bad(f, v.error());
    });
    for_each_level(ctx, mount, m->v2_path, "memory.max", [&](const std::string& f, const std::string& t) {
      if (auto v = parse_memory_limit(t)) keep_min(lim.memory_limit_bytes, *v);
      else warn_bad(f, v.error());
    });
    for (const auto& level : self_and_ancestors(m->v2_path)) {
      if (auto t = ctx.fs.read_file(mount + level + "/cpuset.cpus.effective")) {
        if (auto n = util::count_cpu_list(*t); n && *n > 0) lim.cpuset_cpus = *n;
        break;
      }
    }
    for (const auto& level : self_and_ancestors(m->v2_path)) {
      if (auto t = ctx.fs.read_file(mount + level + "/memory.current")) {
        if (auto v = util::parse_u64(*t)) lim.memory_current_bytes = *v;
        break;
      }
    }
    return lim;
  }

  // cgroup v1: one hierarchy per controller, mounted at /sys/fs/cgroup/<name> where the
  // name may be a comma-joined list ("cpu,cpuacct").
  auto v1_path = [&](std::string_view controller) -> std::optional<std::string> {
    for (const auto& [c, p] : m->v1)
      if (c == controller) return p;
    return std::nullopt;
  };
  auto v1_mount = [&](std::initializer_list<const char*> names) -> std::optional<std::string> {
    for (const char* n : names) {
      std::string dir = std::string("/sys/fs/cgroup/") + n;
      if (ctx.fs.is_directory(dir)) return dir;
    }
    return std::nullopt;
  };
  auto cpu_path = v1_path("cpu");
  auto mem_path = v1_path("memory");
  if (!cpu_path && !mem_path) return lim;
  lim.version = 1;
  if (auto mount = v1_mount({"cpu", "cpu,cpuacct", "cpuacct,cpu"}); mount && cpu_path) {
    for (const auto& level : self_and_ancestors(*cpu_path)) {
      auto q = ctx.fs.read_file(*mount + level + "/cpu.cfs_quota_us");
      auto p = ctx.fs.read_file(*mount + level + "/cpu.cfs_period_us");
      if (!q || !p) continue;
      if (auto v = parse_cfs_quota(*q, *p)) keep_min(lim.cpu_quota_cores, *v);
      else warn_bad(*mount + level + "/cpu.cfs_quota_us", v.error());
    }
  }
  if (auto mount = v1_mount({"memory"}); mount && mem_path) {
    for (const auto& level : self_and_ancestors(*mem_path)) {
      std::string f = *mount + level + "/memory.limit_in_bytes";
      if (auto t = ctx.fs.read_file(f)) {
        if (auto v = parse_memory_limit(*t)) keep_min(lim.memory_limit_bytes, *v);
        else warn_bad(f, v.error());
      }
      if (!lim.memory_current_bytes) {
        if (auto t = ctx.fs.read_file(*mount + level + "/memory.usage_in_bytes"))
          if (auto v = util::parse_u64(*t)) lim.memory_current_bytes = *v;
      }
    }
  }
  if (auto mount = v1_mount({"cpuset"})) {
    auto p = v1_path("cpuset").value_or("/");
    for (const auto& level : self_and_ancestors(p)) {
      auto t = ctx.fs.read_file(*mount + level + "/cpuset.effective_cpus");
      if (!t) t = ctx.fs.read_file(*mount + level + "/cpuset.cpus");
      if (t) {
        if (auto n = util::count_cpu_list(*t); n && *n > 0) lim.cpuset_cpus = *n;
        break;
      }
    }
  }
  return lim;
}

}  // namespace cyllm::detect
