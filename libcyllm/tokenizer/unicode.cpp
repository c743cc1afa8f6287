#include "tokenizer/unicode.h"

#include <algorithm>

namespace cyllm::tokenizer::unicode {
namespace {

// Allowed range of the second byte for each lead byte (the first byte fixes the rest to
// 0x80..0xBF); excludes overlong forms, surrogates and code points above U+10FFFF.
struct LeadInfo {
  std::uint32_t len;
  unsigned char lo;
  unsigned char hi;
};

LeadInfo lead_info(unsigned char b) {
  if (b < 0x80) return {1, 0, 0};
  if (b < 0xC2) return {0, 0, 0};
  if (b < 0xE0) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b < 0xF0) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b < 0xF4) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

}  // namespace

Decoded decode(std::string_view s, std::size_t i) {
  auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {b0, 1};
  LeadInfo li = lead_info(b0);
  if (li.len == 0 || i + li.len > s.size()) return {kInvalid, 1};
  auto b1 = static_cast<unsigned char>(s[i + 1]);
  if (b1 < li.lo || b1 > li.hi) return {kInvalid, 1};
  char32_t cp;
  if (li.len == 2) {
    cp = ((b0 & 0x1Fu) << 6) | (b1 & 0x3Fu);
  } else {
    auto b2 = static_cast<unsigned char>(s[i + 2]);
    if ((b2 & 0xC0) != 0x80) return {kInvalid, 1};
    if (li.len == 3) {
      cp = ((b0 & 0x0Fu) << 12) | ((b1 & 0x3Fu) << 6) | (b2 & 0x3Fu);
    } else {
      auto b3 = static_cast<unsigned char>(s[i + 3]);
      if ((b3 & 0xC0) != 0x80) return {kInvalid, 1};
      cp = ((b0 & 0x07u) << 18) | ((b1 & 0x3Fu) << 12) | ((b2 & 0x3Fu) << 6) | (b3 & 0x3Fu);
    }
  }
  return {cp, li.len};
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool could_complete(std::string_view tail) {
  if (tail.empty()) return false;
  LeadInfo li = lead_info(static_cast<unsigned char>(tail[0]));
  if (li.len < 2 || tail.size() >= li.len) return false;
  if (tail.size() >= 2) {
    auto b1 = static_cast<unsigned char>(tail[1]);
    if (b1 < li.lo || b1 > li.hi) return false;
  }
  if (tail.size() >= 3 && (static_cast<unsigned char>(tail[2]) & 0xC0) != 0x80) return false;
  return true;
}

std::string sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    Decoded d = decode(s, i);
    if (d.cp == kInvalid) {
      out += "\xEF\xBF\xBD";
    } else {
      out.append(s.substr(i, d.len));
    }
    i += d.len;
  }
  return out;
}

bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    Decoded d = decode(s, i);
    if (d.cp == kInvalid) return false;
    i += d.len;
  }
  return true;
}

Category category(char32_t cp) {
  if (cp < 0x80) {
    if (cp >= 'a' && cp <= 'z') return Category::Letter;
    if (cp >= 'A' && cp <= 'Z') return Category::Letter;
    if (cp >= '0' && cp <= '9') return Category::Number;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return Category::Space;
    return Category::Other;
  }
  if (cp == kInvalid) return Category::Other;
  const CategoryRange* end = kCategoryRanges + kNumCategoryRanges;
  const CategoryRange* it = std::upper_bound(
      kCategoryRanges, end, cp, [](char32_t c, const CategoryRange& r) { return c < r.first; });
  if (it == kCategoryRanges) return Category::Other;
  --it;
  return cp <= it->last ? it->category : Category::Other;
}

char contraction_fold(char32_t cp) {
  if (cp < 0x80) {
    char c = static_cast<char>(cp);
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    switch (c) {
      case 's': case 't': case 'r': case 'e': case 'v': case 'm': case 'l': case 'd':
        return c;
      default:
        return 0;
    }
  }
  for (std::size_t i = 0; i < kNumContractionFolds; ++i) {
    if (kContractionFolds[i].code_point == cp) return kContractionFolds[i].folded;
  }
  return 0;
}

}  // namespace cyllm::tokenizer::unicode
