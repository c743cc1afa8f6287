// PEP 440 version specifiers and specifier sets.
//
//   ~=V      >=V and ==P.* where P is V's release without its last number (V has >= 2)
//   ==V      equal; the candidate's local label is ignored unless V has one
//   ==V.*    prefix match on epoch + release (candidate padded with zeros); V is a release
//   !=V[.*]  the negation of ==
//   <=V >=V  ordered, candidate local label ignored
//   <V       less, and not a pre-release of V itself unless V is a pre-release
//   >V       greater, and not a post-release or local version of V itself unless V is a
//            post-release
//   ===S     case-insensitive string equality with the canonical candidate
//
// Pre-releases (including dev releases) only match when the caller allows them or the
// specifier names one itself; a SpecifierSet's filter() falls back to matching
// pre-releases when no final release matches, as pip does.
#include <algorithm>
#include <string>

#include "cyllm/packaging.h"
#include "resolve/packaging_internal.h"
#include "util/strings.h"

namespace cyllm::packaging {

struct SpecifierAccess {
  static Specifier make(SpecOp op, std::string text, Version v, bool wildcard,
                        bool arbitrary_is_version) {
    Specifier s;
    s.op_ = op;
    s.text_ = std::move(text);
    s.version_ = std::move(v);
    s.wildcard_ = wildcard;
    s.arbitrary_is_version_ = arbitrary_is_version;
    return s;
  }
  static bool arbitrary_is_version(const Specifier& s) { return s.arbitrary_is_version_; }
};

namespace {

Error spec_error(std::string_view whole, std::string what) {
  return Error(Errc::BadSpecifier,
               util::quote(whole) + " is not a valid specifier: " + std::move(what));
}

std::string ascii_lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = detail::lower(c);
  return r;
}

// ==P.*: epoch equal and the first |P.release| release numbers of v (zero padded) equal.
bool prefix_match(const Version& v, const Version& prefix) {
  if (v.epoch() != prefix.epoch()) return false;
  const auto& pr = prefix.release();
  const auto& vr = v.release();
  for (std::size_t i = 0; i < pr.size(); ++i) {
    std::uint64_t x = i < vr.size() ? vr[i] : 0;
    if (x != pr[i]) return false;
  }
  return true;
}

bool equal_match(const Version& v, const Specifier& s) {
  if (s.wildcard()) return prefix_match(v, s.version());
  if (!s.version().has_local()) return v.public_version() == s.version();
  return v == s.version();
}

}  // namespace

std::string_view spec_op_string(SpecOp op) {
  switch (op) {
    case SpecOp::Compatible: return "~=";
    case SpecOp::Equal: return "==";
    case SpecOp::NotEqual: return "!=";
    case SpecOp::LessEqual: return "<=";
    case SpecOp::GreaterEqual: return ">=";
    case SpecOp::Less: return "<";
    case SpecOp::Greater: return ">";
    case SpecOp::Arbitrary: return "===";
  }
  return "?";
}

Result<Specifier> detail::parse_specifier_in(std::string_view item, std::string_view whole) {
  std::string_view s = strip(item);
  if (s.empty()) return spec_error(whole, "expected an operator and a version, found nothing");
  struct OpName {
    std::string_view text;
    SpecOp op;
  };
  static constexpr OpName kOps[] = {
      {"===", SpecOp::Arbitrary}, {"~=", SpecOp::Compatible},   {"==", SpecOp::Equal},
      {"!=", SpecOp::NotEqual},   {"<=", SpecOp::LessEqual},    {">=", SpecOp::GreaterEqual},
      {"<", SpecOp::Less},        {">", SpecOp::Greater},
  };
  const OpName* found = nullptr;
  for (const OpName& o : kOps) {
    if (s.substr(0, o.text.size()) == o.text) {
      found = &o;
      break;
    }
  }
  if (!found)
    return spec_error(whole, "expected an operator (~=, ==, !=, <=, >=, <, >, ===) before " +
                                 util::quote(s, 40));
  std::string op_q = "\"" + std::string(found->text) + "\"";
  std::string_view rest = strip(s.substr(found->text.size()));
  if (rest.empty() || !(detail::is_digit(rest[0]) || rest[0] == 'v' || rest[0] == 'V' ||
                        found->op == SpecOp::Arbitrary))
    return spec_error(whole, "expected a version after " + op_q);

  if (found->op == SpecOp::Arbitrary) {
    for (char c : rest)
      if (is_space(c) || c == ';' || c == ',' || c == ')' || c == '(')
        return spec_error(whole, "the arbitrary string after \"===\" may not contain " +
                                     util::quote(std::string_view(&c, 1)));
    auto v = parse_version(rest);
    return SpecifierAccess::make(SpecOp::Arbitrary, std::string(rest),
                                 v.ok() ? *v : Version{}, false, v.ok());
  }

  bool wildcard = false;
  std::string_view vtext = rest;
  if (vtext.size() >= 2 && vtext.substr(vtext.size() - 2) == ".*") {
    if (found->op != SpecOp::Equal && found->op != SpecOp::NotEqual)
      return spec_error(whole, "a \".*\" wildcard is only allowed with \"==\" and \"!=\", not " +
                                   op_q);
    wildcard = true;
    vtext.remove_suffix(2);
  }
  if (!vtext.empty() && is_space(vtext.back()))
    return spec_error(whole, "unexpected whitespace inside the version after " + op_q);
  auto parsed = parse_version(vtext);
  if (!parsed.ok())
    return spec_error(whole, util::quote(rest, 60) + " after " + op_q +
                                 " is not a PEP 440 version");
  const Version& v = *parsed;
  if (wildcard && (v.pre() || v.post() || v.dev() || v.has_local()))
    return spec_error(whole, "a \".*\" wildcard may only follow a release number such as "
                             "\"1.2.*\", not " + util::quote(rest, 60));
  if (v.has_local() && found->op != SpecOp::Equal && found->op != SpecOp::NotEqual)
    return spec_error(whole, "a local version label (\"+...\") is only allowed with \"==\" "
                             "and \"!=\", not " + op_q);
  if (found->op == SpecOp::Compatible && v.release().size() < 2)
    return spec_error(whole, "\"~=\" needs a version with at least two release numbers, "
                             "such as \"~=1.0\", not " + util::quote(rest, 60));
  return SpecifierAccess::make(found->op, std::string(vtext), v, wildcard, false);
}

Result<Specifier> parse_specifier(std::string_view text) {
  return detail::parse_specifier_in(text, text);
}

bool Specifier::prereleases() const {
  switch (op_) {
    case SpecOp::NotEqual: return false;
    case SpecOp::Arbitrary: return arbitrary_is_version_ && version_.is_prerelease();
    default: return version_.is_prerelease();
  }
}

bool Specifier::contains(const Version& v, std::optional<bool> prereleases) const {
  bool allow_pre = prereleases.value_or(this->prereleases());
  if (v.is_prerelease() && !allow_pre) return false;
  switch (op_) {
    case SpecOp::Equal: return equal_match(v, *this);
    case SpecOp::NotEqual: return !equal_match(v, *this);
    case SpecOp::LessEqual: return v.public_version() <= version_;
    case SpecOp::GreaterEqual: return v.public_version() >= version_;
    case SpecOp::Less:
      if (!(v < version_)) return false;
      if (!version_.is_prerelease() && v.is_prerelease() &&
          v.base_version() == version_.base_version())
        return false;
      return true;
    case SpecOp::Greater:
      if (!(v > version_)) return false;
      if (!version_.is_postrelease() && v.is_postrelease() &&
          v.base_version() == version_.base_version())
        return false;
      if (v.has_local() && v.base_version() == version_.base_version()) return false;
      return true;
    case SpecOp::Compatible: {
      if (!(v.public_version() >= version_)) return false;
      Version prefix = version_.base_version();
      std::vector<std::uint64_t> rel = prefix.release();
      rel.pop_back();
      // Compare the first |rel| release numbers (zero padded) and the epoch.
      if (v.epoch() != version_.epoch()) return false;
      for (std::size_t i = 0; i < rel.size(); ++i) {
        std::uint64_t x = i < v.release().size() ? v.release()[i] : 0;
        if (x != rel[i]) return false;
      }
      return true;
    }
    case SpecOp::Arbitrary: return ascii_lower(v.to_string()) == ascii_lower(text_);
  }
  return false;
}

std::string Specifier::to_string() const {
  return std::string(spec_op_string(op_)) + text_ + (wildcard_ ? ".*" : "");
}

bool operator==(const Specifier& a, const Specifier& b) {
  if (a.op_ != b.op_ || a.wildcard_ != b.wildcard_) return false;
  if (a.op_ == SpecOp::Arbitrary) return ascii_lower(a.text_) == ascii_lower(b.text_);
  if (a.wildcard_ || a.op_ == SpecOp::Compatible)
    return a.version_.epoch() == b.version_.epoch() &&
           a.version_.release() == b.version_.release() &&
           a.version_.public_version().to_string() == b.version_.public_version().to_string();
  return a.version_ == b.version_;
}

// ---------------------------------------------------------------------------------------

SpecifierSet::SpecifierSet(std::vector<Specifier> specs) {
  for (Specifier& s : specs)
    if (std::find(specs_.begin(), specs_.end(), s) == specs_.end()) specs_.push_back(std::move(s));
}

bool SpecifierSet::prereleases() const {
  return std::any_of(specs_.begin(), specs_.end(),
                     [](const Specifier& s) { return s.prereleases(); });
}

bool SpecifierSet::contains(const Version& v, std::optional<bool> prereleases) const {
  bool allow_pre = prereleases.value_or(this->prereleases());
  if (v.is_prerelease() && !allow_pre) return false;
  return std::all_of(specs_.begin(), specs_.end(),
                     [&](const Specifier& s) { return s.contains(v, true); });
}

std::vector<Version> SpecifierSet::filter(const std::vector<Version>& candidates,
                                          std::optional<bool> prereleases) const {
  std::vector<Version> finals, pres;
  bool allow_pre = prereleases.value_or(this->prereleases());
  for (const Version& v : candidates) {
    if (!contains(v, true)) continue;
    if (v.is_prerelease() && !allow_pre)
      pres.push_back(v);
    else
      finals.push_back(v);
  }
  if (finals.empty() && !prereleases.has_value()) return pres;
  return finals;
}

SpecifierSet SpecifierSet::intersect(const SpecifierSet& other) const {
  std::vector<Specifier> all = specs_;
  all.insert(all.end(), other.specs_.begin(), other.specs_.end());
  return SpecifierSet(std::move(all));
}

std::string SpecifierSet::to_string() const {
  std::vector<std::string> parts;
  parts.reserve(specs_.size());
  for (const Specifier& s : specs_) parts.push_back(s.to_string());
  std::sort(parts.begin(), parts.end());
  std::string out;
  for (const std::string& p : parts) {
    if (!out.empty()) out += ',';
    out += p;
  }
  return out;
}

Result<SpecifierSet> parse_specifier_set(std::string_view text) {
  std::vector<Specifier> specs;
  if (text.size() > kMaxRequirementLength)
    return spec_error(text, "longer than " + std::to_string(kMaxRequirementLength) +
                                " characters");
  if (detail::strip(text).empty()) return SpecifierSet{};
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = text.find(',', start);
    std::string_view item =
        text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (detail::strip(item).empty())
      return spec_error(text, "expected a specifier such as \">=1.0\" between commas");
    specs.push_back(CYLLM_TRY(detail::parse_specifier_in(item, text)));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return SpecifierSet(std::move(specs));
}

}  // namespace cyllm::packaging
