// Hand-made vocabularies for the tokenizer unit tests (built in memory, no files).
#pragma once

#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "cyllm/tokenizer.h"

namespace cyllm::tokenizer::test {

// A SentencePiece-style vocabulary: <unk> <s> </s>, 256 byte tokens, then `pieces`
// (text, score) as normal tokens, then any (text, type) extras.
inline VocabData spm_vocab(const std::vector<std::pair<std::string, float>>& pieces,
                           const std::vector<std::pair<std::string, TokenType>>& extras = {}) {
  VocabData d;
  d.model = "llama";
  d.tokens = {"<unk>", "<s>", "</s>"};
  d.scores = {0, 0, 0};
  d.token_types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    d.tokens.push_back(buf);
    d.scores.push_back(0);
    d.token_types.push_back(6);
  }
  for (const auto& [t, s] : pieces) {
    d.tokens.push_back(t);
    d.scores.push_back(s);
    d.token_types.push_back(1);
  }
  for (const auto& [t, ty] : extras) {
    d.tokens.push_back(t);
    d.scores.push_back(0);
    d.token_types.push_back(static_cast<std::int32_t>(ty));
  }
  d.unk = 0;
  d.bos = 1;
  d.eos = 2;
  return d;
}

// GPT-2's byte -> code point mapping, written out independently of the library.
inline std::string gpt2_char(unsigned char b) {
  auto printable = [](int v) { return (v >= 0x21 && v <= 0x7E) || (v >= 0xA1 && v <= 0xAC) || v >= 0xAE; };
  unsigned cp = b;
  if (!printable(b)) {
    unsigned n = 0;
    for (int v = 0; v < b; ++v) n += printable(v) ? 0 : 1;
    cp = 0x100 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

inline std::string gpt2_text(const std::string& bytes) {
  std::string s;
  for (unsigned char c : bytes) s += gpt2_char(c);
  return s;
}

// A byte-level BPE vocabulary: ids 0..255 are the single mapped bytes (in byte order),
// then the results of `merges` (pairs of byte strings, in rank order), then extras.
inline VocabData bpe_vocab(const std::string& pre,
                           const std::vector<std::pair<std::string, std::string>>& merges,
                           const std::vector<std::pair<std::string, TokenType>>& extras = {}) {
  VocabData d;
  d.model = "gpt2";
  d.pre = pre;
  for (int b = 0; b < 256; ++b) d.tokens.push_back(gpt2_char(static_cast<unsigned char>(b)));
  for (const auto& [l, r] : merges) {
    d.merges.push_back(gpt2_text(l) + " " + gpt2_text(r));
    d.tokens.push_back(gpt2_text(l + r));
  }
  d.token_types.assign(d.tokens.size(), 1);
  for (const auto& [t, ty] : extras) {
    d.tokens.push_back(t);
    d.token_types.push_back(static_cast<std::int32_t>(ty));
  }
  return d;
}

inline Tokenizer make(VocabData d) {
  auto t = Tokenizer::from_vocab(std::move(d));
  REQUIRE_MESSAGE(t.ok(), (t.ok() ? "" : t.error().to_string()));
  return std::move(t).value();
}

inline TokenId id_of(const Tokenizer& t, const std::string& text) {
  auto id = t.find(text);
  REQUIRE_MESSAGE(id.has_value(), "no token " << text);
  return *id;
}

}  // namespace cyllm::tokenizer::test
