// Platform compatibility tags (PEP 425) and manylinux levels (PEP 600, plus the legacy
// manylinux1/2010/2014 aliases of PEP 513/571/599) for a target interpreter and libc.
#include <algorithm>
#include <unordered_map>

#include "cyllm/wheel.h"
#include "util/strings.h"

namespace cyllm::wheel {
namespace {

// The oldest glibc minor a manylinux tag exists for on each architecture.
int oldest_glibc_minor(std::string_view arch) {
  return (arch == "x86_64" || arch == "i686") ? 5 : 17;
}

std::vector<std::string> platforms(const TargetEnvironment& t) {
  std::vector<std::string> out;
  const std::string& arch = t.architecture;
  if (t.glibc_major == 2) {
    for (int m = t.glibc_minor; m >= oldest_glibc_minor(arch); --m) {
      out.push_back("manylinux_2_" + std::to_string(m) + "_" + arch);
      if (m == 17) out.push_back("manylinux2014_" + arch);
      if (m == 12 && (arch == "x86_64" || arch == "i686")) out.push_back("manylinux2010_" + arch);
      if (m == 5 && (arch == "x86_64" || arch == "i686")) out.push_back("manylinux1_" + arch);
    }
  }
  out.push_back("linux_" + arch);
  return out;
}

struct PlatformInfo {
  std::string arch;        // empty when not a Linux platform tag
  int glibc_minor = -1;    // manylinux level; -1 for linux_<arch>
  bool linux = false;
};

PlatformInfo describe_platform(std::string_view p) {
  PlatformInfo info;
  auto take_arch = [&](std::string_view rest) { info.arch = std::string(rest); info.linux = true; };
  if (util::starts_with(p, "manylinux_2_")) {
    auto rest = p.substr(12);
    auto us = rest.find('_');
    if (us != std::string_view::npos) {
      if (auto m = util::parse_u64(rest.substr(0, us)); m && *m < 1000) {
        info.glibc_minor = static_cast<int>(*m);
        take_arch(rest.substr(us + 1));
      }
    }
  } else if (util::starts_with(p, "manylinux2014_")) {
    info.glibc_minor = 17;
    take_arch(p.substr(14));
  } else if (util::starts_with(p, "manylinux2010_")) {
    info.glibc_minor = 12;
    take_arch(p.substr(14));
  } else if (util::starts_with(p, "manylinux1_")) {
    info.glibc_minor = 5;
    take_arch(p.substr(11));
  } else if (util::starts_with(p, "linux_")) {
    take_arch(p.substr(6));
  }
  return info;
}

}  // namespace

std::vector<Tag> supported_tags(const TargetEnvironment& t) {
  std::vector<Tag> tags;
  const auto plats = platforms(t);
  const std::string impl = t.implementation;
  const std::string xy = std::to_string(t.python_major) + std::to_string(t.python_minor);
  const std::string interp = impl + xy;
  for (const auto& p : plats) tags.push_back({interp, interp, p});
  if (impl == "cp") {
    for (const auto& p : plats) tags.push_back({interp, "abi3", p});
  }
  for (const auto& p : plats) tags.push_back({interp, "none", p});
  if (impl == "cp" && t.python_major == 3) {
    for (int minor = t.python_minor - 1; minor >= 2; --minor)
      for (const auto& p : plats) tags.push_back({"cp3" + std::to_string(minor), "abi3", p});
  }
  std::vector<std::string> py = {"py" + xy, "py" + std::to_string(t.python_major)};
  for (int minor = t.python_minor - 1; minor >= 0; --minor)
    py.push_back("py" + std::to_string(t.python_major) + std::to_string(minor));
  for (const auto& v : py)
    for (const auto& p : plats) tags.push_back({v, "none", p});
  tags.push_back({interp, "none", "any"});
  for (const auto& v : py) tags.push_back({v, "none", "any"});
  return tags;
}

std::optional<std::size_t> wheel_rank(const WheelFilename& wheel, const std::vector<Tag>& supported) {
  std::optional<std::size_t> best;
  for (const auto& tag : wheel.tags) {
    auto it = std::find(supported.begin(), supported.end(), tag);
    if (it == supported.end()) continue;
    auto rank = static_cast<std::size_t>(it - supported.begin());
    if (!best || rank < *best) best = rank;
  }
  return best;
}

std::string explain_incompatibility(const WheelFilename& wheel, const TargetEnvironment& t) {
  const std::string target_py = std::to_string(t.python_major) + "." + std::to_string(t.python_minor);
  std::string interpreter_reason;
  for (const auto& tag : wheel.tags) {
    if (tag.platform != "any") {
      PlatformInfo p = describe_platform(tag.platform);
      if (!p.linux)
        return "is built for " + tag.platform + "; the target is Linux " + t.architecture;
      if (p.arch != t.architecture)
        return "is built for " + p.arch + "; the target is " + t.architecture;
      if (p.glibc_minor >= 0 && (t.glibc_major != 2 || p.glibc_minor > t.glibc_minor))
        return "needs glibc >= 2." + std::to_string(p.glibc_minor) + " (" + tag.platform +
               "); the target has " +
               (t.glibc_major == 2 ? "glibc 2." + std::to_string(t.glibc_minor) : std::string("no glibc"));
    }
    if (interpreter_reason.empty()) {
      const std::string& in = tag.interpreter;
      if (util::starts_with(in, "cp") && in.size() >= 4)
        interpreter_reason = "is for CPython " + in.substr(2, 1) + "." + in.substr(3) +
                             (tag.abi == "abi3" ? " or newer" : "") + "; the target is CPython " + target_py;
      else
        interpreter_reason = "has tag " + tag.to_string() + ", which Python " + target_py + " does not accept";
    }
  }
  return interpreter_reason.empty() ? "has no tags" : interpreter_reason;
}

}  // namespace cyllm::wheel
