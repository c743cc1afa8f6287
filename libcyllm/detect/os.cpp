// detect_os: /etc/os-release (KEY=VALUE lines, values optionally quoted), the kernel
// release, and the C library that wheels are built against.
#include <gnu/libc-version.h>

#include "cyllm/detect.h"
#include "detect/warnings.h"
#include "detect/os.h"
#include "util/strings.h"

namespace cyllm::detect {
namespace {

std::string unquote(std::string_view v) {
  v = util::trim(v);
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
    v = v.substr(1, v.size() - 2);
  return std::string(v);
}

// "... stable release version 2.36." -> "2.36"
std::string glibc_banner_version(std::string_view bytes) {
  constexpr std::string_view kBanner = "release version ";
  auto p = bytes.find(kBanner);
  if (p == std::string_view::npos) return {};
  p += kBanner.size();
  std::size_t e = p;
  while (e < bytes.size() && e - p < 16 && ((bytes[e] >= '0' && bytes[e] <= '9') || bytes[e] == '.')) ++e;
  std::string v(bytes.substr(p, e - p));
  while (!v.empty() && v.back() == '.') v.pop_back();
  return v;
}

}  // namespace

OsRelease parse_os_release(std::string_view text) {
  OsRelease r;
  for (auto line : util::split_lines(text)) {
    auto eq = line.find('=');
    if (eq == std::string_view::npos || util::trim(line).empty() || line.front() == '#') continue;
    auto key = util::trim(line.substr(0, eq));
    if (key == "PRETTY_NAME") r.name = unquote(line.substr(eq + 1));
    else if (key == "ID") r.id = unquote(line.substr(eq + 1));
    else if (key == "VERSION_ID") r.version_id = unquote(line.substr(eq + 1));
  }
  return r;
}

std::string parse_glibc_banner(std::string_view bytes) { return glibc_banner_version(bytes); }

OsInfo detect_os(const Context& ctx, std::vector<Warning>& warnings) {
  OsInfo os;
  auto rel = ctx.fs.read_file("/etc/os-release");
  if (!rel) rel = ctx.fs.read_file("/usr/lib/os-release");
  if (rel) {
    OsRelease r = parse_os_release(*rel);
    os.name = std::move(r.name);
    os.id = std::move(r.id);
    os.version_id = std::move(r.version_id);
  }
  if (auto k = ctx.fs.read_file("/proc/sys/kernel/osrelease")) os.kernel = std::string(util::trim(*k));

  if (ctx.fs.is_host_root()) {
    os.libc = "glibc";
    os.libc_version = ::gnu_get_libc_version();
    return os;
  }
  for (const char* dir : {"/lib", "/usr/lib"}) {
    if (auto names = ctx.fs.list_dir(dir))
      for (const auto& n : *names)
        if (util::starts_with(n, "ld-musl-")) {
          os.libc = "musl";
          return os;
        }
  }
  for (const char* path : {"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                           "/lib/aarch64-linux-gnu/libc.so.6", "/usr/lib/aarch64-linux-gnu/libc.so.6",
                           "/usr/lib64/libc.so.6", "/lib64/libc.so.6"}) {
    auto bytes = ctx.fs.read_file(path, 16u << 20);
    if (!bytes) continue;
    os.libc = "glibc";
    os.libc_version = parse_glibc_banner(*bytes);
    if (os.libc_version.empty())
      add_warning(warnings, Errc::BadSysfs,
                  std::string("no glibc version banner in ") + path + "; manylinux compatibility unknown");
    break;
  }
  return os;
}

}  // namespace cyllm::detect
