// Private helpers shared by the packaging parsers (version, specifier, marker,
// requirement). Not part of the public API.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "cyllm/packaging.h"

namespace cyllm::packaging::detail {

// Python's str.strip() for ASCII: space, \t, \n, \v, \f, \r.
inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline bool is_alnum(char c) { return is_digit(c) || is_alpha(c); }
inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

inline std::string_view strip(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Parses one specifier; errors quote `whole` (the requirement or set it came from).
Result<Specifier> parse_specifier_in(std::string_view item, std::string_view whole);
// Parses a marker; errors quote `whole` and give columns relative to it (`offset` is
// where `text` starts inside `whole`).
Result<Marker> parse_marker_in(std::string_view text, std::string_view whole,
                               std::size_t offset);

}  // namespace cyllm::packaging::detail
