// Byte-level BPE on hand-made vocabularies: rank order, ties, ignore_merges (llama3),
// bytes outside ASCII, decoding through the byte mapping.
#include <doctest/doctest.h>

#include "tiny_vocab.h"

using namespace cyllm::tokenizer;
using namespace cyllm::tokenizer::test;

namespace {
TokenId byte_id(unsigned char b) { return b; }  // ids 0..255 are the bytes in tiny vocabs
}

TEST_CASE("bpe: lower rank merges first") {
  {
    auto t = make(bpe_vocab("gpt-2", {{"b", "c"}, {"a", "b"}}));
    REQUIRE(t.encode("abc", false, false) ==
            std::vector<TokenId>{byte_id('a'), id_of(t, gpt2_text("bc"))});
  }
  {
    auto t = make(bpe_vocab("gpt-2", {{"a", "b"}, {"b", "c"}}));
    REQUIRE(t.encode("abc", false, false) ==
            std::vector<TokenId>{id_of(t, gpt2_text("ab")), byte_id('c')});
  }
  // Same pair twice: leftmost first. "aaa" -> [aa, a]
  auto t = make(bpe_vocab("gpt-2", {{"a", "a"}}));
  REQUIRE(t.encode("aaa", false, false) ==
          std::vector<TokenId>{id_of(t, gpt2_text("aa")), byte_id('a')});
}

TEST_CASE("bpe: merges chain within words, never across them") {
  auto t = make(bpe_vocab("gpt-2", {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"},
                                    {" ", "w"}, {" w", "o"}, {" wo", "r"}, {"o", " "}}));
  CHECK(t.model_name() == "gpt2");
  CHECK(t.pre_name() == "gpt-2");
  CHECK_FALSE(t.add_bos_by_default());
  auto ids = t.encode("hello wor", false, false);
  // "o " is a merge but 'o' and ' ' are in different words.
  REQUIRE(ids == std::vector<TokenId>{id_of(t, gpt2_text("hello")), id_of(t, gpt2_text(" wor"))});
  CHECK(t.decode(ids) == "hello wor");
  CHECK(t.piece(id_of(t, gpt2_text(" wor"))) == " wor");
}

TEST_CASE("bpe: llama3 emits a word that is a token without merging (ignore_merges)") {
  VocabData d = bpe_vocab("llama-bpe", {{"a", "b"}});
  d.tokens.push_back(gpt2_text("xyz"));  // no merge path leads here
  d.token_types.push_back(1);
  auto t = make(std::move(d));
  REQUIRE(t.encode("xyz", false, false) == std::vector<TokenId>{id_of(t, gpt2_text("xyz"))});
  VocabData g = bpe_vocab("gpt-2", {{"a", "b"}});
  g.tokens.push_back(gpt2_text("xyz"));
  g.token_types.push_back(1);
  auto t2 = make(std::move(g));
  REQUIRE(t2.encode("xyz", false, false) ==
          std::vector<TokenId>{byte_id('x'), byte_id('y'), byte_id('z')});
}

TEST_CASE("bpe: non-ASCII and control bytes go through the byte mapping") {
  auto t = make(bpe_vocab("qwen2", {{"\xC3", "\xA9"}, {"\n", "\n"}}));
  auto ids = t.encode("\xC3\xA9\n\n\x01", false, false);
  REQUIRE(ids == std::vector<TokenId>{id_of(t, gpt2_text("\xC3\xA9")),
                                      id_of(t, gpt2_text("\n\n")), byte_id(1)});
  CHECK(gpt2_text("\n") == "\xC4\x8A");  // Ċ
  CHECK(t.decode(ids) == "\xC3\xA9\n\n\x01");
  std::string bad = "x\xFF\xFE\xC3";
  CHECK(t.decode(t.encode(bad, false, false)) == bad);
}

TEST_CASE("bpe: bad vocabularies are rejected with the key named") {
  VocabData d = bpe_vocab("gpt-2", {});
  d.merges.push_back("nospace");
  auto r = Tokenizer::from_vocab(d);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == cyllm::Errc::BadVocab);
  CHECK(r.error().message().find("tokenizer.ggml.merges[0]") != std::string::npos);

  VocabData p = bpe_vocab("falcon", {});
  auto r2 = Tokenizer::from_vocab(p);
  REQUIRE_FALSE(r2.ok());
  CHECK(r2.error().message().find("tokenizer.ggml.pre \"falcon\"") != std::string::npos);

  VocabData e = bpe_vocab("gpt-2", {});
  e.eos = 100000;
  auto r3 = Tokenizer::from_vocab(e);
  REQUIRE_FALSE(r3.ok());
  CHECK(r3.error().message().find("eos_token_id") != std::string::npos);

  VocabData s = bpe_vocab("gpt-2", {});
  s.token_types.pop_back();
  CHECK_FALSE(Tokenizer::from_vocab(s).ok());

  VocabData m;
  m.model = "t5";
  m.tokens = {"a"};
  auto r4 = Tokenizer::from_vocab(m);
  REQUIRE_FALSE(r4.ok());
  CHECK(r4.error().message().find("tokenizer.ggml.model") != std::string::npos);
}
