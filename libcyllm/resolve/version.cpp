// PEP 440 versions: a hand-written parser for every spelling the PEP normalises, the
// canonical form, and the total order.
//
//   [v] [N!] N(.N)* [[-_.]{a|alpha|b|beta|c|rc|pre|preview}[-_.][N]]
//                   [-N | [-_.]{post|rev|r}[-_.][N]]
//                   [[-_.]dev[-_.][N]]
//                   [+label([-_.]label)*]            (case-insensitive, whitespace trimmed)
//
// A separator followed by digits is only taken as a segment's number when the digits
// are there; otherwise it is left for the next segment ("1.0a.post1" = 1.0a0.post1).
#include <algorithm>
#include <string>

#include "cyllm/packaging.h"
#include "resolve/packaging_internal.h"
#include "util/strings.h"

namespace cyllm::packaging {
namespace {

using detail::is_alnum;
using detail::is_digit;

constexpr std::string_view kShape = "[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]";

struct Parts {
  std::uint64_t epoch = 0;
  std::vector<std::uint64_t> release;
  std::optional<PreRelease> pre;
  std::optional<std::uint64_t> post, dev;
  std::vector<std::string> local;
};

class VersionParser {
 public:
  VersionParser(std::string_view original, std::string lowered)
      : original_(original), s_(std::move(lowered)) {}

  Error fail(std::string what) const {
    return Error(Errc::BadVersion, util::quote(original_) + " is not a valid version: " +
                                       std::move(what));
  }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek(std::size_t ahead = 0) const {
    return pos_ + ahead < s_.size() ? s_[pos_ + ahead] : '\0';
  }
  static bool is_sep(char c) { return c == '-' || c == '_' || c == '.'; }

  // Reads [0-9]+ at pos_; false (and no move) when there is no digit.
  Result<bool> number(std::uint64_t& out) {
    if (!is_digit(peek())) return false;
    std::uint64_t v = 0;
    std::size_t start = pos_;
    while (is_digit(peek())) {
      std::uint64_t d = static_cast<std::uint64_t>(peek() - '0');
      if (v > (UINT64_MAX - d) / 10)
        return fail("number " + util::quote(std::string_view(s_).substr(start, 30)) +
                    " does not fit in 64 bits");
      v = v * 10 + d;
      ++pos_;
    }
    out = v;
    return true;
  }

  // Matches one of `words` (longest listed first) at pos_, case already folded.
  std::string_view keyword(std::initializer_list<std::string_view> words) {
    for (std::string_view w : words) {
      if (std::string_view(s_).substr(pos_, w.size()) == w) {
        pos_ += w.size();
        return w;
      }
    }
    return {};
  }

  // [-_.]?N after a keyword: takes the separator only when digits follow it.
  Result<std::uint64_t> optional_number() {
    std::size_t save = pos_;
    if (is_sep(peek())) ++pos_;
    std::uint64_t n = 0;
    if (!CYLLM_TRY(number(n))) {
      pos_ = save;
      return std::uint64_t{0};
    }
    return n;
  }

  Result<Parts> run() {
    Parts v;
    if (s_.size() > kMaxVersionLength)
      return fail("longer than " + std::to_string(kMaxVersionLength) + " characters");
    if (peek() == 'v') ++pos_;
    std::uint64_t first = 0;
    if (!CYLLM_TRY(number(first)))
      return fail("expected a release number such as \"1.0\" (PEP 440: " +
                  std::string(kShape) + ")");
    if (peek() == '!') {
      ++pos_;
      v.epoch = first;
      if (!CYLLM_TRY(number(first))) return fail("expected a release number after the epoch \"!\"");
    }
    v.release.push_back(first);
    while (peek() == '.' && is_digit(peek(1))) {
      ++pos_;
      std::uint64_t n = 0;
      (void)CYLLM_TRY(number(n));
      v.release.push_back(n);
    }

    // pre-release
    {
      std::size_t save = pos_;
      if (is_sep(peek())) ++pos_;
      std::string_view k = keyword({"alpha", "beta", "preview", "pre", "rc", "a", "b", "c"});
      if (k.empty()) {
        pos_ = save;
      } else {
        PreRelease pre;
        pre.kind = (k == "alpha" || k == "a")  ? PreKind::Alpha
                   : (k == "beta" || k == "b") ? PreKind::Beta
                                               : PreKind::Rc;
        pre.number = CYLLM_TRY(optional_number());
        v.pre = pre;
      }
    }
    // post-release
    {
      std::size_t save = pos_;
      std::uint64_t n = 0;
      if (peek() == '-' && is_digit(peek(1))) {
        ++pos_;
        (void)CYLLM_TRY(number(n));
        v.post = n;
      } else {
        if (is_sep(peek())) ++pos_;
        if (keyword({"post", "rev", "r"}).empty())
          pos_ = save;
        else
          v.post = CYLLM_TRY(optional_number());
      }
    }
    // dev-release
    {
      std::size_t save = pos_;
      if (is_sep(peek())) ++pos_;
      if (keyword({"dev"}).empty())
        pos_ = save;
      else
        v.dev = CYLLM_TRY(optional_number());
    }
    // local label
    if (peek() == '+') {
      ++pos_;
      for (;;) {
        std::size_t start = pos_;
        while (is_alnum(peek())) ++pos_;
        if (pos_ == start)
          return fail(v.local.empty()
                          ? "expected a local version label (letters, digits) after \"+\""
                          : "expected a letter or digit after a separator in the local label");
        std::string seg = s_.substr(start, pos_ - start);
        if (std::all_of(seg.begin(), seg.end(), is_digit)) {
          std::size_t nz = seg.find_first_not_of('0');
          seg = nz == std::string::npos ? "0" : seg.substr(nz);
        }
        v.local.push_back(std::move(seg));
        if (is_sep(peek()))
          ++pos_;
        else
          break;
      }
    }
    if (!at_end())
      return fail("unexpected " + util::quote(std::string_view(original_).substr(pos_, 40)) +
                  " at position " + std::to_string(pos_ + 1) + " (PEP 440: " +
                  std::string(kShape) + ")");
    return v;
  }

 private:
  std::string_view original_;  // trimmed input, as written
  std::string s_;              // lowercased
  std::size_t pos_ = 0;
};

// Numeric local segments are digit strings without leading zeros: longer is larger.
int compare_local_segment(const std::string& a, const std::string& b) {
  bool an = std::all_of(a.begin(), a.end(), is_digit);
  bool bn = std::all_of(b.begin(), b.end(), is_digit);
  if (an && bn) {
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
  }
  if (an != bn) return an ? 1 : -1;  // a number sorts above a word
  int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

std::strong_ordering to_ordering(int c) {
  return c < 0 ? std::strong_ordering::less
               : (c > 0 ? std::strong_ordering::greater : std::strong_ordering::equal);
}

}  // namespace

Result<Version> parse_version(std::string_view text) {
  std::string_view trimmed = detail::strip(text);
  if (trimmed.empty())
    return Error(Errc::BadVersion, util::quote(text) +
                                       " is not a valid version: expected a release number "
                                       "such as \"1.0\", found nothing");
  std::string lowered;
  lowered.reserve(trimmed.size());
  for (char c : trimmed) lowered.push_back(detail::lower(c));
  VersionParser p(trimmed, std::move(lowered));
  Parts parts = CYLLM_TRY(p.run());
  Version v;
  v.epoch_ = parts.epoch;
  v.release_ = std::move(parts.release);
  v.pre_ = parts.pre;
  v.post_ = parts.post;
  v.dev_ = parts.dev;
  v.local_ = std::move(parts.local);
  return v;
}

Version Version::public_version() const {
  Version v = *this;
  v.local_.clear();
  return v;
}

Version Version::base_version() const {
  Version v;
  v.epoch_ = epoch_;
  v.release_ = release_;
  return v;
}

std::string Version::to_string() const {
  std::string out;
  if (epoch_ != 0) out += std::to_string(epoch_) + "!";
  for (std::size_t i = 0; i < release_.size(); ++i) {
    if (i) out += '.';
    out += std::to_string(release_[i]);
  }
  if (pre_) {
    out += pre_->kind == PreKind::Alpha ? "a" : (pre_->kind == PreKind::Beta ? "b" : "rc");
    out += std::to_string(pre_->number);
  }
  if (post_) out += ".post" + std::to_string(*post_);
  if (dev_) out += ".dev" + std::to_string(*dev_);
  for (std::size_t i = 0; i < local_.size(); ++i) {
    out += i ? '.' : '+';
    out += local_[i];
  }
  return out;
}

std::strong_ordering operator<=>(const Version& a, const Version& b) {
  if (auto c = a.epoch_ <=> b.epoch_; c != 0) return c;
  // Release: trailing zeros do not count (1.0 == 1.0.0).
  std::size_t n = std::max(a.release_.size(), b.release_.size());
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t x = i < a.release_.size() ? a.release_[i] : 0;
    std::uint64_t y = i < b.release_.size() ? b.release_[i] : 0;
    if (auto c = x <=> y; c != 0) return c;
  }
  // Pre-release slot: a bare dev release (1.0.dev1) sorts below every pre-release of the
  // same release; no pre-release sorts above them all.
  auto pre_rank = [](const Version& v) {
    if (!v.pre_ && !v.post_ && v.dev_) return 0;
    return v.pre_ ? 1 : 2;
  };
  if (auto c = pre_rank(a) <=> pre_rank(b); c != 0) return c;
  if (a.pre_ && b.pre_) {
    if (auto c = a.pre_->kind <=> b.pre_->kind; c != 0) return c;
    if (auto c = a.pre_->number <=> b.pre_->number; c != 0) return c;
  }
  // Post: none sorts below any.
  if (auto c = a.post_.has_value() <=> b.post_.has_value(); c != 0) return c;
  if (a.post_ && b.post_)
    if (auto c = *a.post_ <=> *b.post_; c != 0) return c;
  // Dev: none sorts above any.
  if (auto c = b.dev_.has_value() <=> a.dev_.has_value(); c != 0) return c;
  if (a.dev_ && b.dev_)
    if (auto c = *a.dev_ <=> *b.dev_; c != 0) return c;
  // Local: none sorts below any; segment by segment, then the longer label wins.
  std::size_t m = std::min(a.local_.size(), b.local_.size());
  for (std::size_t i = 0; i < m; ++i)
    if (int c = compare_local_segment(a.local_[i], b.local_[i]); c != 0) return to_ordering(c);
  return a.local_.size() <=> b.local_.size();
}

}  // namespace cyllm::packaging
