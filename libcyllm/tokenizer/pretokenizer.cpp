#include "tokenizer/pretokenizer.h"

#include <cstdint>

#include "tokenizer/unicode.h"

namespace cyllm::tokenizer {
namespace {

using unicode::Category;

struct Char {
  std::uint32_t offset;  // byte offset in the text
  char32_t cp;           // unicode::kInvalid for an invalid byte
  Category cat;
  char fold;             // contraction letter it folds to, or 0
};

std::vector<Char> decode_chars(std::string_view text) {
  std::vector<Char> out;
  out.reserve(text.size() + 1);
  for (std::size_t i = 0; i < text.size();) {
    unicode::Decoded d = unicode::decode(text, i);
    out.push_back({static_cast<std::uint32_t>(i), d.cp, unicode::category(d.cp),
                   unicode::contraction_fold(d.cp)});
    i += d.len;
  }
  // Sentinel: its offset is the text size.
  out.push_back({static_cast<std::uint32_t>(text.size()), 0, Category::Other, 0});
  return out;
}

class Scanner {
 public:
  explicit Scanner(std::string_view text) : chars_(decode_chars(text)), n_(chars_.size() - 1) {}

  std::size_t size() const { return n_; }
  bool letter(std::size_t i) const { return i < n_ && chars_[i].cat == Category::Letter; }
  bool number(std::size_t i) const { return i < n_ && chars_[i].cat == Category::Number; }
  bool space(std::size_t i) const { return i < n_ && chars_[i].cat == Category::Space; }
  // [^\s\p{L}\p{N}]
  bool other(std::size_t i) const { return i < n_ && chars_[i].cat == Category::Other; }
  bool newline(std::size_t i) const {
    return i < n_ && (chars_[i].cp == '\r' || chars_[i].cp == '\n');
  }
  bool is(std::size_t i, char32_t cp) const { return i < n_ && chars_[i].cp == cp; }
  char fold(std::size_t i) const { return i < n_ ? chars_[i].fold : 0; }

  // Length (in characters) of a contraction at i, or 0. Case-insensitive when asked.
  std::size_t contraction(std::size_t i, bool ignore_case) const {
    if (!is(i, '\'') || i + 1 >= n_) return 0;
    auto letter_at = [&](std::size_t k) -> char {
      if (k >= n_) return 0;
      if (ignore_case) return chars_[k].fold;
      char32_t cp = chars_[k].cp;
      return cp < 0x80 ? static_cast<char>(cp) : 0;
    };
    char a = letter_at(i + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    char b = letter_at(i + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
  }

  void emit(std::vector<ByteSpan>& out, std::size_t from, std::size_t to) const {
    out.push_back({chars_[from].offset, chars_[to].offset - chars_[from].offset});
  }

 private:
  std::vector<Char> chars_;
  std::size_t n_;
};

// Whitespace alternatives shared by all three: with `newline_rule`, \s*[\r\n]+ first;
// then \s+(?!\S), then \s+. `i` is at a space character. Returns the end.
std::size_t scan_space(const Scanner& s, std::size_t i, bool newline_rule) {
  std::size_t end = i;
  std::size_t last_newline = SIZE_MAX;
  while (s.space(end)) {
    if (s.newline(end)) last_newline = end;
    ++end;
  }
  if (newline_rule && last_newline != SIZE_MAX) return last_newline + 1;
  if (end == s.size() || end - i == 1) return end;
  return end - 1;  // leave the last space to prefix the next word
}

void split_gpt2(const Scanner& s, std::vector<ByteSpan>& out) {
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    std::size_t end;
    if (std::size_t c = s.contraction(i, false); c != 0) {
      end = i + c;
    } else {
      std::size_t j = i;
      if (s.is(i, ' ') && (s.letter(i + 1) || s.number(i + 1) || s.other(i + 1))) j = i + 1;
      if (s.letter(j)) {
        end = j;
        while (s.letter(end)) ++end;
      } else if (s.number(j)) {
        end = j;
        while (s.number(end)) ++end;
      } else if (s.other(j)) {
        end = j;
        while (s.other(end)) ++end;
      } else {
        end = scan_space(s, i, false);
      }
    }
    s.emit(out, i, end);
    i = end;
  }
}

void split_llama3(const Scanner& s, std::size_t max_digits, std::vector<ByteSpan>& out) {
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    std::size_t end;
    if (std::size_t c = s.contraction(i, true); c != 0) {
      end = i + c;
    } else if (s.letter(i) || (!s.newline(i) && !s.letter(i) && !s.number(i) && s.letter(i + 1))) {
      // [^\r\n\p{L}\p{N}]?\p{L}+
      end = i + 1;
      while (s.letter(end)) ++end;
    } else if (s.number(i)) {
      end = i + 1;
      while (end - i < max_digits && s.number(end)) ++end;
    } else if (s.other(i) || (s.is(i, ' ') && s.other(i + 1))) {
      //  ?[^\s\p{L}\p{N}]+[\r\n]*
      end = i + 1;
      while (s.other(end)) ++end;
      while (s.newline(end)) ++end;
    } else {
      end = scan_space(s, i, true);
    }
    s.emit(out, i, end);
    i = end;
  }
}

}  // namespace

std::vector<ByteSpan> pretokenize(PreTokenizer kind, std::string_view text) {
  std::vector<ByteSpan> out;
  if (text.empty()) return out;
  Scanner s(text);
  switch (kind) {
    case PreTokenizer::Gpt2:
      split_gpt2(s, out);
      break;
    case PreTokenizer::Llama3:
      split_llama3(s, 3, out);
      break;
    case PreTokenizer::Qwen2:
      split_llama3(s, 1, out);
      break;
  }
  return out;
}

}  // namespace cyllm::tokenizer
