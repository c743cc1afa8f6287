// libFuzzer target: encode + decode of arbitrary bytes with in-memory vocabularies of
// both families (SentencePiece with byte fallback; byte-level BPE with each
// pre-tokenizer). The first input byte picks the vocabulary and whether special tokens
// are parsed. Invariants: every id is in range; without special parsing decode(encode(s))
// == s exactly (byte fallback / byte-level mapping cover every byte; llama vocabularies
// give a literal U+2581 back as ' ', as SentencePiece does); StreamDecoder
// chunks are always valid UTF-8, and equal decode() when s is valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "cyllm/tokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

using namespace cyllm::tokenizer;

namespace {

const std::string kSp = "\xE2\x96\x81";

VocabData spm_data() {
  VocabData d;
  d.model = "llama";
  d.tokens = {"<unk>", "<s>", "</s>"};
  d.token_types = {2, 3, 3};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    d.tokens.push_back(buf);
    d.token_types.push_back(6);
  }
  const char* pieces[] = {"a", "b", "c", "e", "h", "l", "n", "o", "t", "th", "he", "the", "in",
                          "er", "an", "ll", "lo", "hel", "hello", "\xC3\xA9", "\xE4\xB8\xAD"};
  for (const char* p : pieces) d.tokens.push_back(p);
  d.tokens.push_back(kSp);
  d.tokens.push_back(kSp + "t");
  d.tokens.push_back(kSp + "the");
  d.tokens.push_back(kSp + kSp);
  d.tokens.push_back("<|im_end|>");
  d.token_types.resize(d.tokens.size(), 1);
  d.token_types.back() = 3;
  d.scores.resize(d.tokens.size());
  for (std::size_t i = 0; i < d.scores.size(); ++i) {
    d.scores[i] = -static_cast<float>((i * 7919) % 101);
  }
  d.unk = 0;
  d.bos = 1;
  d.eos = 2;
  return d;
}

std::string mapped(std::string_view bytes) {
  std::string s;
  for (unsigned char b : bytes) {
    auto printable = [](int v) { return (v >= 0x21 && v <= 0x7E) || (v >= 0xA1 && v <= 0xAC) || v >= 0xAE; };
    unsigned cp = b;
    if (!printable(b)) {
      unsigned n = 0;
      for (int v = 0; v < b; ++v) n += printable(v) ? 0 : 1;
      cp = 0x100 + n;
    }
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return s;
}

VocabData bpe_data(const char* pre) {
  VocabData d;
  d.model = "gpt2";
  d.pre = pre;
  for (int b = 0; b < 256; ++b) d.tokens.push_back(mapped(std::string(1, static_cast<char>(b))));
  const std::pair<const char*, const char*> merges[] = {
      {" ", "t"}, {"h", "e"}, {" t", "he"}, {"i", "n"}, {"e", "r"}, {"a", "n"}, {"l", "l"},
      {"he", "ll"}, {"hell", "o"}, {" ", " "}, {"  ", "  "}, {"\n", "\n"}, {"1", "2"},
      {"12", "3"}, {"\xC3", "\xA9"}, {"\xE4", "\xB8"}, {"\xE4\xB8", "\xAD"}, {"'", "s"},
      {" ", "a"}, {" a", "n"}};
  for (const auto& [l, r] : merges) {
    d.merges.push_back(mapped(l) + " " + mapped(r));
    d.tokens.push_back(mapped(std::string(l) + r));
  }
  d.token_types.assign(d.tokens.size(), 1);
  d.tokens.push_back("<|endoftext|>");
  d.token_types.push_back(3);
  d.tokens.push_back("<|im_end|>");
  d.token_types.push_back(3);
  d.tokens.push_back("<tool>");
  d.token_types.push_back(4);
  d.eos = static_cast<TokenId>(d.tokens.size() - 3);
  return d;
}

struct Vocabs {
  std::vector<Tokenizer> all;
  Vocab spm = std::move(build_vocab(spm_data())).value();
  Vocabs() {
    all.push_back(std::move(Tokenizer::from_vocab(spm_data())).value());
    for (const char* pre : {"llama-bpe", "qwen2", "gpt-2"}) {
      all.push_back(std::move(Tokenizer::from_vocab(bpe_data(pre))).value());
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Vocabs vocabs;  // built once per process
  if (size == 0) return 0;
  const Tokenizer& tok = vocabs.all[data[0] % vocabs.all.size()];
  const bool parse_special = (data[0] & 0x10) != 0;
  const bool add_bos = (data[0] & 0x20) != 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  std::vector<TokenId> ids = tok.encode(text, add_bos, parse_special);
  for (TokenId id : ids) CYLLM_ASSERT(id >= 0 && static_cast<std::size_t>(id) < tok.n_vocab());
  const std::string decoded = tok.decode(ids, parse_special);
  if (!parse_special) {
    // SentencePiece reads a literal U+2581 as its space marker, as the reference does.
    std::string expected;
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (tok.model_name() == "llama" && text.compare(i, 3, kSp) == 0) {
        expected += ' ';
        i += 2;
      } else {
        expected += text[i];
      }
    }
    CYLLM_ASSERT(decoded == expected);
  }

  StreamDecoder sd(tok, parse_special);
  std::string streamed;
  for (TokenId id : ids) {
    std::string chunk = sd.push(id);
    CYLLM_ASSERT(unicode::is_valid_utf8(chunk));
    streamed += chunk;
  }
  std::string tail = sd.flush();
  CYLLM_ASSERT(unicode::is_valid_utf8(tail));
  streamed += tail;
  CYLLM_ASSERT(streamed == unicode::sanitize(decoded));

  // The per-word split of SentencePiece merging gives the same ids as merging the whole.
  if (vocabs.spm.spm_split_words) {
    std::string escaped;
    for (char c : text) {
      if (c == ' ') {
        escaped += kSp;
      } else {
        escaped += c;
      }
    }
    std::vector<TokenId> split, whole;
    vocabs.spm.encode_spm(escaped, split);
    vocabs.spm.encode_spm_segment(escaped, whole);
    CYLLM_ASSERT(split == whole);
  }
  return 0;
}
