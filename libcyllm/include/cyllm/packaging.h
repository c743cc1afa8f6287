// Python packaging semantics: PEP 440 versions and specifiers, PEP 503 names, PEP 508
// environment markers and requirement strings.
//
//   version      [N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]        (PEP 440 canonical form)
//   specifier    ~=V  ==V  ==V.*  !=V  !=V.*  <=V  >=V  <V  >V  ===string
//   requirement  name [extra, ...] (specifiers | @ url) ; marker      (PEP 508)
//   marker       python_version >= "3.9" and (sys_platform == 'linux' or extra == "gpu")
//
// Design goals: exact agreement with what pip does (the PEPs' rules plus pip's
// pre-release fallback), pure functions with no global state, error messages that quote
// the input and say what was expected. Markers are always evaluated against an explicit
// MarkerEnvironment describing the TARGET host, never the running process.
// Non-goals: legacy (non-PEP 440) versions; PEP 751 `extras`/`dependency_groups` markers.
//
// Numbers (epoch, release, pre/post/dev) are held as uint64; a number that does not fit
// is rejected with resolve.bad_version rather than silently wrapped. Numeric local-version
// segments are kept as digit strings (leading zeros dropped), so they never overflow.
// All types are immutable values after parsing and safe to share between threads.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cyllm/error.h"

namespace cyllm::packaging {

// Inputs longer than these are refused outright (untrusted registry/metadata text).
inline constexpr std::size_t kMaxVersionLength = 512;
inline constexpr std::size_t kMaxRequirementLength = 64 * 1024;
inline constexpr int kMaxMarkerDepth = 64;  // nested parentheses in a marker

// ---------------------------------------------------------------------------------------
// PEP 503 names

// "Foo.Bar_baz" -> "foo-bar-baz": runs of '-', '_', '.' become one '-', ASCII lowercased.
std::string normalize_name(std::string_view name);
// PEP 508 name: ASCII letters/digits, with '.', '-', '_' allowed inside (not at the ends).
bool is_valid_name(std::string_view name);

// ---------------------------------------------------------------------------------------
// PEP 440 versions

enum class PreKind : std::uint8_t { Alpha, Beta, Rc };  // canonical spellings a, b, rc

struct PreRelease {
  PreKind kind = PreKind::Alpha;
  std::uint64_t number = 0;
  friend bool operator==(const PreRelease&, const PreRelease&) = default;
};

class Version {
 public:
  Version() : release_{0} {}  // "0"

  std::uint64_t epoch() const { return epoch_; }
  const std::vector<std::uint64_t>& release() const { return release_; }  // never empty
  std::uint64_t major() const { return release_.empty() ? 0 : release_[0]; }
  std::uint64_t minor() const { return release_.size() > 1 ? release_[1] : 0; }
  std::uint64_t micro() const { return release_.size() > 2 ? release_[2] : 0; }
  const std::optional<PreRelease>& pre() const { return pre_; }
  const std::optional<std::uint64_t>& post() const { return post_; }
  const std::optional<std::uint64_t>& dev() const { return dev_; }
  // Normalised local segments: lowercase, numeric ones without leading zeros.
  const std::vector<std::string>& local() const { return local_; }

  bool is_prerelease() const { return pre_.has_value() || dev_.has_value(); }
  bool is_postrelease() const { return post_.has_value(); }
  bool is_devrelease() const { return dev_.has_value(); }
  bool has_local() const { return !local_.empty(); }

  Version public_version() const;  // without the local label
  Version base_version() const;    // epoch and release only
  std::string to_string() const;   // canonical form: "1!2.0rc1.post2.dev3+ubuntu.1"

  // PEP 440 total order: epoch, release (trailing zeros ignored), then
  // X.devN < X.aN < X.bN < X.rcN < X < X.postN, then local labels.
  friend std::strong_ordering operator<=>(const Version& a, const Version& b);
  friend bool operator==(const Version& a, const Version& b) { return (a <=> b) == 0; }

 private:
  friend Result<Version> parse_version(std::string_view text);
  std::uint64_t epoch_ = 0;
  std::vector<std::uint64_t> release_;
  std::optional<PreRelease> pre_;
  std::optional<std::uint64_t> post_;
  std::optional<std::uint64_t> dev_;
  std::vector<std::string> local_;
};

// Accepts every spelling PEP 440 normalises: case, "v" prefix, surrounding whitespace,
// '-', '_', '.' separators, alpha/beta/c/pre/preview/rev/r, implicit numbers ("1.0a"),
// implicit post releases ("1.0-1"), local separators ("+ubuntu-1"). Fails with
// resolve.bad_version.
Result<Version> parse_version(std::string_view text);

// ---------------------------------------------------------------------------------------
// PEP 440 specifiers

enum class SpecOp : std::uint8_t {
  Compatible,    // ~=
  Equal,         // ==   (with wildcard(): ==V.*)
  NotEqual,      // !=   (with wildcard(): !=V.*)
  LessEqual,     // <=
  GreaterEqual,  // >=
  Less,          // <
  Greater,       // >
  Arbitrary,     // ===  (plain case-insensitive string equality)
};
std::string_view spec_op_string(SpecOp op);

class Specifier {
 public:
  SpecOp op() const { return op_; }
  // The version as written (trimmed, without ".*"); for === the arbitrary string.
  const std::string& version_text() const { return text_; }
  // The parsed version; for === a placeholder "0" unless the string is a PEP 440 version.
  const Version& version() const { return version_; }
  bool wildcard() const { return wildcard_; }
  // True when the specifier itself names a pre-release (">=2.0b1"), which lets it match
  // pre-releases by default. "!=" never does.
  bool prereleases() const;

  // Whether `v` satisfies this specifier. prereleases: nullopt = this->prereleases(),
  // true = allow pre-releases, false = reject every pre-release.
  bool contains(const Version& v, std::optional<bool> prereleases = std::nullopt) const;

  std::string to_string() const;  // operator + version as written: ">=1.0", "==2.*"
  // Same meaning: ">=1.0" == ">=1.0.0" (but "~=1.0" != "~=1.0.0", "==1.*" != "==1.0.*").
  friend bool operator==(const Specifier& a, const Specifier& b);

 private:
  friend Result<Specifier> parse_specifier(std::string_view text);
  friend struct SpecifierAccess;
  SpecOp op_ = SpecOp::Equal;
  std::string text_;
  Version version_;
  bool wildcard_ = false;
  bool arbitrary_is_version_ = false;
};

// One specifier: ">=1.0", "== 1.2.*", "~=2.2.post3". Fails with resolve.bad_specifier.
Result<Specifier> parse_specifier(std::string_view text);

// The AND of its specifiers. Empty means "any version" (but see pre-release policy).
class SpecifierSet {
 public:
  SpecifierSet() = default;
  explicit SpecifierSet(std::vector<Specifier> specs);

  const std::vector<Specifier>& specifiers() const { return specs_; }
  bool empty() const { return specs_.empty(); }
  std::size_t size() const { return specs_.size(); }
  // True when any specifier names a pre-release.
  bool prereleases() const;

  // prereleases: nullopt = allowed only if prereleases(); true/false force it.
  bool contains(const Version& v, std::optional<bool> prereleases = std::nullopt) const;

  // The candidates that satisfy the set, in input order. With prereleases == nullopt and
  // no specifier naming a pre-release, pre-releases are dropped unless nothing else
  // matches, in which case the matching pre-releases are returned (pip's fallback).
  std::vector<Version> filter(const std::vector<Version>& candidates,
                              std::optional<bool> prereleases = std::nullopt) const;

  // Both sets at once (AND); duplicates (by meaning) are dropped.
  SpecifierSet intersect(const SpecifierSet& other) const;

  // Sorted, comma-joined, no spaces: "<2,>=1.0". Empty set -> "".
  std::string to_string() const;

 private:
  std::vector<Specifier> specs_;
};

// Comma-separated specifiers; whitespace around items is ignored; "" (or only whitespace)
// is the empty set. An empty item (">=1,,<2", ">=1,") is refused, as is text longer than
// kMaxRequirementLength. Fails with
// resolve.bad_specifier quoting the whole text.
Result<SpecifierSet> parse_specifier_set(std::string_view text);

// ---------------------------------------------------------------------------------------
// PEP 508 environment markers

// The target host's values, as Python's `platform`/`sys` would report them THERE.
struct MarkerEnvironment {
  std::string python_version;                  // "3.11"
  std::string python_full_version;             // "3.11.7"
  std::string os_name;                         // "posix"
  std::string sys_platform;                    // "linux"
  std::string platform_release;                // "6.5.0-1018-aws"
  std::string platform_system;                 // "Linux"
  std::string platform_version;                // "#18~22.04.1-Ubuntu SMP ..."
  std::string platform_machine;                // "x86_64"
  std::string platform_python_implementation;  // "CPython"
  std::string implementation_name;             // "cpython"
  std::string implementation_version;          // "3.11.7"
  std::string extra;                           // the extra being evaluated, "" for none

  // The value of a marker variable by its canonical name; nullopt for unknown names.
  std::optional<std::string_view> get(std::string_view name) const;
};

namespace detail {
struct MarkerNode;
}

// A parsed marker; a default-constructed Marker is empty, always true, and prints "".
class Marker {
 public:
  // Evaluates against `env`. Comparisons use PEP 440 when the right-hand side forms a
  // valid specifier and the left-hand side a valid version (pre-releases allowed), and
  // Python string comparison otherwise; `in`/`not in` are substring tests; names
  // compared with `extra` are normalised (PEP 685). Fails with resolve.bad_marker only
  // for comparisons that have no meaning (e.g. ~= on non-versions).
  Result<bool> evaluate(const MarkerEnvironment& env) const;

  // Canonical text: variables by canonical name, values in double quotes (single quotes
  // when the value holds a double quote), single spaces, the input's parentheses kept.
  std::string to_string() const;

 private:
  friend struct MarkerAccess;
  std::shared_ptr<const detail::MarkerNode> root_;
};

// Fails with resolve.bad_marker, quoting the input and naming the column.
Result<Marker> parse_marker(std::string_view text);

// ---------------------------------------------------------------------------------------
// PEP 508 requirements

struct Requirement {
  std::string name;                 // as written
  std::vector<std::string> extras;  // normalised (PEP 685), sorted, unique
  SpecifierSet specifier;           // empty for URL requirements
  std::string url;                  // "" unless `name @ url`
  std::optional<Marker> marker;

  std::string normalized_name() const { return normalize_name(name); }
  // True when there is no marker or it holds in `env`.
  Result<bool> applies_to(const MarkerEnvironment& env) const;
  // "name[a,b]<2,>=1; python_version >= \"3.9\"" or "name @ url ; marker"; parses back
  // to an equal requirement.
  std::string to_string() const;
};

// Fails with resolve.bad_requirement (name, extras, URL, layout), resolve.bad_specifier
// or resolve.bad_marker; the message always quotes the whole requirement.
Result<Requirement> parse_requirement(std::string_view text);

}  // namespace cyllm::packaging
