// PEP 508 requirement strings and PEP 503 name normalisation.
//
//   name [ws] ['[' extra (',' extra)* ']'] [ws] (specifiers | '(' specifiers ')') [ws] [';' marker]
//   name [ws] ['[' extra (',' extra)* ']'] [ws] '@' [ws] URL [ws ';' marker]
//
// The URL runs to the next whitespace, so a marker after a URL needs a space before its
// ';' (PEP 508). We require the URL to start with a scheme ("https:", "file:", ...): a
// bare path is refused rather than guessed at.
#include <algorithm>
#include <string>

#include "cyllm/packaging.h"
#include "resolve/packaging_internal.h"
#include "util/strings.h"

namespace cyllm::packaging {

std::string normalize_name(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  bool in_sep = false;
  for (char c : name) {
    if (c == '-' || c == '_' || c == '.') {
      if (!in_sep) out += '-';
      in_sep = true;
    } else {
      out += detail::lower(c);
      in_sep = false;
    }
  }
  return out;
}

bool is_valid_name(std::string_view name) {
  if (name.empty() || !detail::is_alnum(name.front()) || !detail::is_alnum(name.back()))
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return detail::is_alnum(c) || c == '-' || c == '_' || c == '.';
  });
}

namespace {

class RequirementParser {
 public:
  explicit RequirementParser(std::string_view s) : s_(s) {}

  Result<Requirement> run() {
    if (s_.size() > kMaxRequirementLength)
      return fail("longer than " + std::to_string(kMaxRequirementLength) + " characters");
    Requirement r;
    skip_ws();
    // name
    std::size_t start = pos_;
    while (!at_end() && (detail::is_alnum(peek()) || peek() == '-' || peek() == '_' || peek() == '.'))
      ++pos_;
    std::string_view name = s_.substr(start, pos_ - start);
    if (name.empty())
      return fail(at_end() ? "expected a package name, found nothing"
                           : "expected a package name (letters, digits, '.', '-', '_'), found " +
                                 rest_quoted());
    if (!is_valid_name(name))
      return fail("the name " + util::quote(name) +
                  " must start and end with a letter or digit");
    r.name = std::string(name);
    skip_ws();

    // extras
    if (peek() == '[') {
      ++pos_;
      skip_ws();
      if (peek() == ']') {
        ++pos_;
      } else {
        for (;;) {
          skip_ws();
          std::size_t es = pos_;
          while (!at_end() && (detail::is_alnum(peek()) || peek() == '-' || peek() == '_' ||
                               peek() == '.'))
            ++pos_;
          std::string_view extra = s_.substr(es, pos_ - es);
          if (extra.empty()) return fail("expected an extra name inside \"[...]\", found " + rest_quoted());
          if (!is_valid_name(extra))
            return fail("the extra " + util::quote(extra) +
                        " must start and end with a letter or digit");
          r.extras.push_back(normalize_name(extra));
          skip_ws();
          if (peek() == ',') {
            ++pos_;
            continue;
          }
          if (peek() == ']') {
            ++pos_;
            break;
          }
          return fail(at_end() ? "expected \",\" or \"]\" to close the extras, found the end"
                               : "expected \",\" or \"]\" after an extra, found " + rest_quoted());
        }
      }
      std::sort(r.extras.begin(), r.extras.end());
      r.extras.erase(std::unique(r.extras.begin(), r.extras.end()), r.extras.end());
      skip_ws();
    }

    if (peek() == '@') {
      ++pos_;
      skip_ws();
      std::size_t us = pos_;
      while (!at_end() && !detail::is_space(peek())) ++pos_;
      std::string_view url = s_.substr(us, pos_ - us);
      if (url.empty()) return fail("expected a URL after \"@\"");
      if (!has_scheme(url))
        return fail("the URL " + util::quote(url, 60) +
                    " needs a scheme such as \"https://\" or \"file://\"");
      r.url = std::string(url);
      std::size_t before = pos_;
      skip_ws();
      if (at_end()) return r;
      if (peek() != ';' || pos_ == before)
        return fail("expected the end or \" ;\" and a marker after the URL, found " +
                    rest_quoted());
      CYLLM_TRY_VOID(parse_marker_part(r));
      return r;
    }

    // version specifiers, bare or in parentheses
    if (peek() == '(') {
      std::size_t close = s_.find(')', pos_);
      if (close == std::string_view::npos)
        return fail("expected \")\" to close the version specifiers");
      std::string_view inside = s_.substr(pos_ + 1, close - pos_ - 1);
      if (detail::strip(inside).empty())
        return Error(Errc::BadSpecifier, util::quote(s_) +
                                             " is not a valid specifier: expected a version "
                                             "specifier such as \">=1.0\" inside \"()\"");
      r.specifier = CYLLM_TRY(parse_specs(inside));
      pos_ = close + 1;
    } else if (!at_end() && std::string_view("<>=!~").find(peek()) != std::string_view::npos) {
      std::size_t end = s_.find(';', pos_);
      if (end == std::string_view::npos) end = s_.size();
      r.specifier = CYLLM_TRY(parse_specs(s_.substr(pos_, end - pos_)));
      pos_ = end;
    }
    skip_ws();
    if (at_end()) return r;
    if (peek() == ';') {
      CYLLM_TRY_VOID(parse_marker_part(r));
      return r;
    }
    return fail("expected \"[\", \"(\", a version specifier, \"@\", \";\" or the end, found " +
                rest_quoted());
  }

 private:
  Error fail(std::string what) const {
    return Error(Errc::BadRequirement,
                 util::quote(s_) + " is not a valid requirement: " + std::move(what));
  }
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (!at_end() && detail::is_space(s_[pos_])) ++pos_;
  }
  std::string rest_quoted() const { return util::quote(s_.substr(pos_), 30); }

  static bool has_scheme(std::string_view url) {
    if (url.empty() || !detail::is_alpha(url[0])) return false;
    std::size_t i = 1;
    while (i < url.size() &&
           (detail::is_alnum(url[i]) || url[i] == '+' || url[i] == '-' || url[i] == '.'))
      ++i;
    return i < url.size() && url[i] == ':' && i + 1 < url.size();
  }

  // Comma-separated specifiers, every item required (PEP 508 has no empty items).
  Result<SpecifierSet> parse_specs(std::string_view text) const {
    std::vector<Specifier> specs;
    std::size_t start = 0;
    for (;;) {
      std::size_t comma = text.find(',', start);
      std::string_view item = text.substr(
          start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
      if (detail::strip(item).empty())
        return Error(Errc::BadSpecifier,
                     util::quote(s_) + " is not a valid specifier: expected a specifier such as "
                                       "\">=1.0\" " +
                         (comma == std::string_view::npos ? "after the last comma"
                                                          : "between commas"));
      specs.push_back(CYLLM_TRY(detail::parse_specifier_in(item, s_)));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return SpecifierSet(std::move(specs));
  }

  Result<void> parse_marker_part(Requirement& r) {
    ++pos_;  // ';'
    std::string_view rest = s_.substr(pos_);
    r.marker = CYLLM_TRY(detail::parse_marker_in(rest, s_, pos_));
    pos_ = s_.size();
    return {};
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

}  // namespace

Result<Requirement> parse_requirement(std::string_view text) {
  return RequirementParser(text).run();
}

Result<bool> Requirement::applies_to(const MarkerEnvironment& env) const {
  if (!marker) return true;
  return marker->evaluate(env);
}

std::string Requirement::to_string() const {
  std::string out = name;
  if (!extras.empty()) {
    out += '[';
    for (std::size_t i = 0; i < extras.size(); ++i) {
      if (i) out += ',';
      out += extras[i];
    }
    out += ']';
  }
  out += specifier.to_string();
  if (!url.empty()) {
    out += " @ " + url;
    if (marker) out += ' ';
  }
  if (marker) out += "; " + marker->to_string();
  return out;
}

}  // namespace cyllm::packaging
