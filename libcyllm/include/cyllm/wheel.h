// Wheel filenames (PEP 427, PEP 491) and platform compatibility tags (PEP 425, PEP 600).
//
// A wheel is named  {distribution}-{version}[-{build}]-{python}-{abi}-{platform}.whl
// where each of the three tag fields may be a compressed set joined by '.'
// ("py2.py3-none-any", "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64").
// Whether a wheel installs on a host is decided against the TARGET host's interpreter and
// libc (a TargetEnvironment), never against the machine running cy-llm.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cyllm/error.h"

namespace cyllm::wheel {

struct Tag {
  std::string interpreter;  // "cp312", "py3"
  std::string abi;          // "cp312", "abi3", "none"
  std::string platform;     // "manylinux_2_28_x86_64", "linux_x86_64", "any"
  bool operator==(const Tag&) const = default;
  std::string to_string() const { return interpreter + "-" + abi + "-" + platform; }
};

struct WheelFilename {
  std::string distribution;      // as written, e.g. "vllm" or "torch_npu"
  std::string version;           // as written, e.g. "2.4.0+cu121" (PEP 440 parsing is the caller's)
  std::optional<std::pair<long, std::string>> build;  // "1abc" -> {1, "abc"}
  std::vector<Tag> tags;         // the expanded cartesian product of the three sets
};

// Pure. Errc::BadWheelFilename naming the filename and the part that is wrong.
Result<WheelFilename> parse_wheel_filename(std::string_view filename);

// The interpreter and platform a wheel must fit. Only CPython on Linux is modelled now
// (what every engine in the registry ships for); other targets get no platform wheels.
struct TargetEnvironment {
  int python_major = 3;
  int python_minor = 12;
  std::string implementation = "cp";  // "cp" (CPython) or "pp"
  std::string architecture = "x86_64";  // uname -m: x86_64, aarch64, ppc64le, s390x
  int glibc_major = 2;                  // 0 when the target uses musl or no libc is known
  int glibc_minor = 35;
};

// Every tag the target accepts, most preferred first (same order pip prefers):
//   cpXY-cpXY-P, cpXY-abi3-P, cpXY-none-P, cp3(Y-1..2)-abi3-P, pyXY/py3/py3(Y-1..0)-none-P
// for each platform P from the newest manylinux_2_N down to manylinux_2_5 (with the
// legacy aliases manylinux2014/2010/1 at 2_17/2_12/2_5) and linux_<arch>, then the
// pure-Python tags with platform "any".
std::vector<Tag> supported_tags(const TargetEnvironment& target);

// Rank of the best tag of `wheel` in `supported` (lower is better), or nullopt when none
// of its tags is supported.
std::optional<std::size_t> wheel_rank(const WheelFilename& wheel, const std::vector<Tag>& supported);

// When a wheel does not fit: a sentence naming the nearest reason, e.g.
// "needs glibc >= 2.28 (manylinux_2_28_x86_64); the target has glibc 2.17" or
// "is built for aarch64; the target is x86_64" or "is for CPython 3.13; the target is 3.12".
std::string explain_incompatibility(const WheelFilename& wheel, const TargetEnvironment& target);

}  // namespace cyllm::wheel
