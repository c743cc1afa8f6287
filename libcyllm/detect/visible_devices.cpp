#include "detect/visible_devices.h"

#include <cstdint>
#include <optional>

#include "detect/warnings.h"
#include "util/strings.h"

namespace cyllm::detect {
namespace {

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

bool iprefix(std::string_view s, std::string_view prefix) {
  if (prefix.size() > s.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i], b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

// Resolves one entry; nullopt with `why` set when it is invalid.
std::optional<VisibleMatch> resolve(std::string_view entry,
                                    const std::vector<VisibleCandidate>& devices,
                                    std::string& why) {
  if (entry.empty()) {
    why = "is empty";
    return std::nullopt;
  }
  if (all_digits(entry)) {
    auto v = util::parse_u64(entry);
    if (v)
      for (const auto& d : devices)
        if (d.index >= 0 && static_cast<std::uint64_t>(d.index) == *v)
          return VisibleMatch{d.index, {}};
    why = "matches no device index (" + std::to_string(devices.size()) + " present)";
    return std::nullopt;
  }
  std::optional<VisibleMatch> found;
  int n_found = 0;
  for (const auto& d : devices) {
    if (!d.uuid.empty() && iprefix(d.uuid, entry)) {
      found = VisibleMatch{d.index, {}};
      ++n_found;
    }
    for (const auto& sub : d.sub_uuids) {
      if (!sub.empty() && iprefix(sub, entry)) {
        found = VisibleMatch{d.index, sub};
        ++n_found;
      }
    }
  }
  if (n_found == 1) return found;
  why = n_found == 0 ? "matches no device UUID"
                     : "is ambiguous (a prefix of " + std::to_string(n_found) + " UUIDs)";
  return std::nullopt;
}

}  // namespace

std::vector<VisibleMatch> select_visible_devices(std::string_view spec,
                                                 const std::vector<VisibleCandidate>& devices,
                                                 std::vector<Warning>& warnings,
                                                 std::string_view var_name) {
  std::vector<VisibleMatch> out;
  if (util::trim(spec).empty()) return out;  // "" hides every device
  auto entries = util::split(spec, ',');
  for (std::size_t i = 0; i < entries.size(); ++i) {
    std::string_view entry = util::trim(entries[i]);
    std::string why;
    auto m = resolve(entry, devices, why);
    if (!m) {
      std::string msg = std::string(var_name) + " entry " + util::quote(entry) + " " + why;
      if (i + 1 < entries.size()) {
        std::size_t rest_at = static_cast<std::size_t>(entries[i + 1].data() - spec.data());
        msg += "; it and the entries after it (" + util::quote(spec.substr(rest_at)) +
               ") are ignored";
      } else {
        msg += "; it is ignored";
      }
      add_warning(warnings, Errc::BadVisibleDevices, std::move(msg));
      break;
    }
    bool repeated = false;
    for (const auto& prev : out) repeated = repeated || prev == *m;
    if (repeated) {
      add_warning(warnings, Errc::BadVisibleDevices,
                  std::string(var_name) + " names the same device twice (entry " +
                      util::quote(entry) + "); the repeat is ignored");
      continue;
    }
    out.push_back(std::move(*m));
  }
  return out;
}

std::vector<int> select_visible(std::string_view spec,
                                const std::vector<VisibleCandidate>& devices,
                                std::vector<Warning>& warnings, std::string_view var_name) {
  std::vector<int> out;
  for (const auto& m : select_visible_devices(spec, devices, warnings, var_name)) {
    bool seen = false;
    for (int i : out) seen = seen || i == m.index;
    if (!seen) out.push_back(m.index);
  }
  return out;
}

}  // namespace cyllm::detect
