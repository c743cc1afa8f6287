// Small, allocation-light string helpers shared by the parsers of untrusted text
// (procfs, sysfs, vendor tool output). All are pure; numeric parsers refuse overflow,
// trailing garbage and empty input rather than guessing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cyllm::util {

std::string_view trim(std::string_view s);
// Splits on `sep`; keeps empty fields.
std::vector<std::string_view> split(std::string_view s, char sep);
// Splits on runs of spaces/tabs; drops empty fields.
std::vector<std::string_view> split_ws(std::string_view s);
// Lines without their '\n' (and a trailing '\r'); a final line without '\n' counts.
std::vector<std::string_view> split_lines(std::string_view s);
bool starts_with(std::string_view s, std::string_view prefix);
bool ends_with(std::string_view s, std::string_view suffix);
std::string to_lower(std::string_view s);

// Whole-string decimal parses (after trim). nullopt on empty, garbage or overflow.
std::optional<std::uint64_t> parse_u64(std::string_view s);
std::optional<std::int64_t> parse_i64(std::string_view s);
std::optional<double> parse_double(std::string_view s);
// "0x10de" or "10de" (base 16), whole string.
std::optional<std::uint64_t> parse_hex_u64(std::string_view s);
// Bytes as lower-case hex, two digits each (a digest as sha256sum prints it).
std::string hex_lower(const unsigned char* bytes, std::size_t n);

// "0-3,8,10-11" -> 7. nullopt on malformed input or absurd ranges (> 1<<20 CPUs).
std::optional<int> count_cpu_list(std::string_view s);

// Quotes a value for an error message, shortening it to max_len bytes with "...".
std::string quote(std::string_view s, std::size_t max_len = 80);

}  // namespace cyllm::util
