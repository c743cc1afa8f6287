// WheelFilename: PEP 427 file names, with PEP 425 compressed tag sets expanded.
//   {distribution}-{version}[-{build tag}]-{python tag}-{abi tag}-{platform tag}.whl
// The build tag starts with a digit; every field is non-empty; '-' separates fields, so
// names and versions with '-' are escaped to '_' by the tools that build wheels.
#include "cyllm/wheel.h"
#include "util/strings.h"

namespace cyllm::wheel {
namespace {

bool all_of(std::string_view s, std::string_view allowed_extra) {
  for (char c : s) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && allowed_extra.find(c) == std::string_view::npos) return false;
  }
  return !s.empty();
}

Error bad(std::string_view filename, const std::string& why) {
  return Error(Errc::BadWheelFilename,
               util::quote(filename) + " is not a valid wheel filename: " + why);
}

}  // namespace

Result<WheelFilename> parse_wheel_filename(std::string_view filename) {
  if (filename.size() > 512) return bad(filename, "longer than 512 characters");
  if (!util::ends_with(filename, ".whl")) return bad(filename, "it does not end in \".whl\"");
  if (filename.find('/') != std::string_view::npos || filename.find('\\') != std::string_view::npos)
    return bad(filename, "it contains a path separator");
  auto parts = util::split(filename.substr(0, filename.size() - 4), '-');
  if (parts.size() != 5 && parts.size() != 6)
    return bad(filename, "expected 5 or 6 '-'-separated fields, found " + std::to_string(parts.size()));
  WheelFilename w;
  if (!all_of(parts[0], "_."))
    return bad(filename, "bad distribution name " + util::quote(parts[0]));
  if (!all_of(parts[1], "_.!+"))
    return bad(filename, "bad version " + util::quote(parts[1]));
  w.distribution = std::string(parts[0]);
  w.version = std::string(parts[1]);
  std::size_t t = 2;
  if (parts.size() == 6) {
    auto b = parts[2];
    std::size_t digits = 0;
    while (digits < b.size() && b[digits] >= '0' && b[digits] <= '9') ++digits;
    auto number = util::parse_u64(b.substr(0, digits));
    if (digits == 0 || !number || *number > 1000000000 || !all_of(b, "_."))
      return bad(filename, "build tag " + util::quote(b) + " must start with a digit");
    w.build = std::make_pair(static_cast<long>(*number), std::string(b.substr(digits)));
    t = 3;
  }
  std::vector<std::string_view> sets[3];
  for (int i = 0; i < 3; ++i) {
    auto field = parts[t + static_cast<std::size_t>(i)];
    if (!all_of(field, "_."))
      return bad(filename, "bad tag field " + util::quote(field));
    sets[i] = util::split(field, '.');
    for (auto x : sets[i])
      if (x.empty()) return bad(filename, "empty tag in " + util::quote(field));
  }
  if (sets[0].size() * sets[1].size() * sets[2].size() > 4096)
    return bad(filename, "too many tag combinations");
  for (auto py : sets[0])
    for (auto abi : sets[1])
      for (auto plat : sets[2])
        w.tags.push_back({util::to_lower(py), util::to_lower(abi), util::to_lower(plat)});
  return w;
}

}  // namespace cyllm::wheel
