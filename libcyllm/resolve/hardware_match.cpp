#include "resolve/hardware_match.h"

#include <algorithm>

#include "util/strings.h"

namespace cyllm::resolve {
namespace {

HardwareMatch no(std::string reason) { return {false, std::move(reason)}; }

std::string host_device(const detect::HardwareProfile& host) {
  return host.device_name.empty() ? host.vendor : host.device_name;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

HardwareMatch check_driver(std::string_view min_driver, const detect::HardwareProfile& host,
                           std::string_view what) {
  if (min_driver.empty()) return {true, {}};
  if (host.driver_version.empty())
    return no(std::string(what) + " needs driver >= " + std::string(min_driver) +
              "; the host's driver version is unknown");
  if (compare_dotted(host.driver_version, min_driver) < 0)
    return no(std::string(what) + " needs driver >= " + std::string(min_driver) + "; found " +
              host.driver_version);
  return {true, {}};
}

HardwareMatch check_cc(const std::optional<registry::ComputeCapability>& lo,
                       const std::optional<registry::ComputeCapability>& hi,
                       const detect::HardwareProfile& host, std::string_view what) {
  if (!lo && !hi) return {true, {}};
  auto cc = registry::parse_compute_capability(host.compute_capability);
  if (!cc)
    return no(std::string(what) + " needs a known compute capability; " + host_device(host) +
              " reports " + util::quote(host.compute_capability));
  if (lo && *cc < *lo)
    return no(std::string(what) + " needs compute capability >= " + lo->to_string() + "; " +
              host_device(host) + " is " + cc->to_string());
  if (hi && *cc > *hi)
    return no(std::string(what) + " supports compute capability <= " + hi->to_string() + "; " +
              host_device(host) + " is " + cc->to_string());
  return {true, {}};
}

}  // namespace

int compare_dotted(std::string_view a, std::string_view b) {
  auto pa = util::split(util::trim(a), '.');
  auto pb = util::split(util::trim(b), '.');
  const std::size_t n = std::max(pa.size(), pb.size());
  for (std::size_t i = 0; i < n; ++i) {
    std::string_view x = i < pa.size() ? pa[i] : "0";
    std::string_view y = i < pb.size() ? pb[i] : "0";
    auto nx = util::parse_u64(x);
    auto ny = util::parse_u64(y);
    if (nx && ny) {
      if (*nx != *ny) return *nx < *ny ? -1 : 1;
    } else {
      std::string lx = util::to_lower(x), ly = util::to_lower(y);
      if (lx != ly) return lx < ly ? -1 : 1;
    }
  }
  return 0;
}

HardwareMatch match_hardware(const registry::HardwareProfile& want,
                             const detect::HardwareProfile& host) {
  const std::string what = "profile " + want.name;
  if (!want.architectures.empty() &&
      std::find(want.architectures.begin(), want.architectures.end(), host.cpu.architecture) ==
          want.architectures.end())
    return no(what + " runs on " + join(want.architectures) + "; the host is " +
              (host.cpu.architecture.empty() ? std::string("of unknown architecture")
                                             : host.cpu.architecture));
  for (const auto& isa : want.cpu_isa)
    if (std::find(host.cpu.isa.begin(), host.cpu.isa.end(), isa) == host.cpu.isa.end())
      return no(what + " needs the CPU feature " + isa + "; " +
                (host.cpu.model_name.empty() ? std::string("the host CPU") : host.cpu.model_name) +
                " does not have it");
  if (want.vendor.empty() || want.vendor == "cpu") return {true, {}};
  if (want.vendor != host.vendor)
    return no(what + " is for " + want.vendor + " accelerators; the host's primary accelerator is " +
              (host.vendor == "cpu" ? std::string("none (cpu only)") : host.vendor + " " + host_device(host)));
  if (auto m = check_cc(want.min_compute_capability, want.max_compute_capability, host, what); !m.ok)
    return m;
  if (!want.gfx_targets.empty() &&
      std::find(want.gfx_targets.begin(), want.gfx_targets.end(), host.compute_capability) ==
          want.gfx_targets.end())
    return no(what + " supports " + join(want.gfx_targets) + "; " + host_device(host) + " is " +
              (host.compute_capability.empty() ? std::string("of unknown gfx target") : host.compute_capability));
  if (!want.ascend_socs.empty() || !want.ascend_soc_prefixes.empty()) {
    const std::string soc = util::to_lower(host.compute_capability);
    bool ok = std::find(want.ascend_socs.begin(), want.ascend_socs.end(), soc) != want.ascend_socs.end();
    for (const auto& p : want.ascend_soc_prefixes) ok = ok || util::starts_with(soc, p);
    if (!ok) {
      std::vector<std::string> all = want.ascend_socs;
      for (const auto& p : want.ascend_soc_prefixes) all.push_back(p + "*");
      return no(what + " supports " + join(all) + "; the host's NPU is " +
                (soc.empty() ? std::string("of unknown SoC") : host.compute_capability));
    }
  }
  if (auto m = check_driver(want.min_driver, host, what); !m.ok) return m;
  return {true, {}};
}

HardwareMatch match_variant(const registry::Variant& v, const detect::HardwareProfile& host) {
  const std::string what = "the " + v.name + " build";
  if (auto m = check_cc(v.min_compute_capability, v.max_compute_capability, host, what); !m.ok)
    return m;
  return check_driver(v.min_driver, host, what);
}

}  // namespace cyllm::resolve
