// SentencePiece-style ("llama") encoding on hand-made vocabularies: exact merge order by
// score, the dummy prefix, byte fallback, decoding.
#include <doctest/doctest.h>

#include "tiny_vocab.h"

using namespace cyllm::tokenizer;
using namespace cyllm::tokenizer::test;

namespace {
const std::string kSp = "\xE2\x96\x81";  // U+2581
}

TEST_CASE("spm: highest score merges first, ties go left") {
  // "abc": ab (-1) beats bc (-2) -> [ab, c]
  {
    auto t = make(spm_vocab({{kSp, -5}, {"a", -3}, {"b", -3}, {"c", -3}, {"ab", -1}, {"bc", -2}}));
    auto ids = t.encode("abc", false, false);
    REQUIRE(ids == std::vector<TokenId>{id_of(t, kSp), id_of(t, "ab"), id_of(t, "c")});
  }
  {
    auto t = make(spm_vocab({{kSp, -5}, {"a", -3}, {"b", -3}, {"c", -3}, {"ab", -2}, {"bc", -1}}));
    auto ids = t.encode("abc", false, false);
    REQUIRE(ids == std::vector<TokenId>{id_of(t, kSp), id_of(t, "a"), id_of(t, "bc")});
  }
  // Equal scores: the leftmost pair merges first. "aaa" -> [aa, a]
  {
    auto t = make(spm_vocab({{"a", -3}, {"aa", -1}}));
    VocabData d = spm_vocab({{"a", -3}, {"aa", -1}});
    d.add_space_prefix = false;
    auto t2 = make(std::move(d));
    REQUIRE(t2.encode("aaa", false, false) ==
            std::vector<TokenId>{id_of(t2, "aa"), id_of(t2, "a")});
  }
}

TEST_CASE("spm: multi-step merges build the whole word with the dummy prefix") {
  auto t = make(spm_vocab({{kSp, -9}, {"h", -9}, {"e", -9}, {"l", -9}, {"o", -9},
                           {kSp + "h", -4}, {"ll", -2}, {"he", -3}, {"llo", -1.5f},
                           {kSp + "he", -1}, {kSp + "hello", -0.5f}, {"w", -9}}));
  CHECK(t.model_name() == "llama");
  CHECK(t.add_bos_by_default());
  auto ids = t.encode("hello", false, false);
  REQUIRE(ids == std::vector<TokenId>{id_of(t, kSp + "hello")});
  // With BOS.
  ids = t.encode("hello", true, false);
  REQUIRE(ids == std::vector<TokenId>{1, id_of(t, kSp + "hello")});
  // Two words, the second with its own U+2581.
  ids = t.encode("hello hello", false, false);
  REQUIRE(ids == std::vector<TokenId>{id_of(t, kSp + "hello"), id_of(t, kSp + "hello")});
  CHECK(t.decode(ids) == "hello hello");
  // "hellow": ▁hello + w
  ids = t.encode("hellow", false, false);
  REQUIRE(ids == std::vector<TokenId>{id_of(t, kSp + "hello"), id_of(t, "w")});
  CHECK(t.decode(ids) == "hellow");
  // Empty text -> nothing (not even the dummy prefix).
  CHECK(t.encode("", false, false).empty());
  CHECK(t.encode("", true, false) == std::vector<TokenId>{1});
}

TEST_CASE("spm: byte fallback for characters missing from the vocabulary") {
  auto t = make(spm_vocab({{kSp, -1}, {"a", -1}}));
  // "é" = C3 A9 -> <0xC3> <0xA9>; byte tokens are ids 3 + byte.
  auto ids = t.encode("a\xC3\xA9", false, false);
  REQUIRE(ids == std::vector<TokenId>{id_of(t, kSp), id_of(t, "a"), 3 + 0xC3, 3 + 0xA9});
  CHECK(t.piece(3 + 0xC3) == "\xC3");
  CHECK(t.decode(ids) == "a\xC3\xA9");
  // Invalid UTF-8 survives the round trip through byte tokens.
  std::string bad = "a\xFF\xC3(";
  CHECK(t.decode(t.encode(bad, false, false)) == bad);
}

TEST_CASE("spm: add_space_prefix=false and leading spaces") {
  VocabData d = spm_vocab({{kSp, -1}, {"a", -1}, {kSp + "a", -0.5f}});
  d.add_space_prefix = false;
  auto t = make(std::move(d));
  REQUIRE(t.encode("a a", false, false) ==
          std::vector<TokenId>{id_of(t, "a"), id_of(t, kSp + "a")});
  CHECK(t.decode(t.encode(" a", false, false)) == " a");

  auto t2 = make(spm_vocab({{kSp, -1}, {"a", -1}, {kSp + "a", -0.5f}}));
  // " a" -> "▁▁a" -> [▁, ▁a]; decoding strips only the one space encode added.
  auto ids = t2.encode(" a", false, false);
  REQUIRE(ids == std::vector<TokenId>{id_of(t2, kSp), id_of(t2, kSp + "a")});
  CHECK(t2.decode(ids) == " a");
}

TEST_CASE("spm: control tokens decode to text only when asked") {
  auto t = make(spm_vocab({{kSp, -1}, {"a", -1}}));
  std::vector<TokenId> ids{1, id_of(t, "a"), 2};
  CHECK(t.decode(ids) == "a");
  CHECK(t.decode(ids, true) == "<s>a</s>");
  CHECK(t.is_control(1));
  CHECK_FALSE(t.is_control(id_of(t, "a")));
  CHECK(t.is_end_of_generation(2));
  CHECK_FALSE(t.is_end_of_generation(1));
}

TEST_CASE("spm: a token spanning a word boundary turns off the per-word split") {
  // "a▁b" lets merges cross the U+2581 between words, so the text must be merged whole.
  auto t = make(spm_vocab({{kSp, -9}, {"a", -9}, {"b", -9}, {"a" + kSp, -1}, {"a" + kSp + "b", -0.5f}}));
  REQUIRE(t.encode("a b", false, false) == std::vector<TokenId>{id_of(t, kSp), id_of(t, "a" + kSp + "b")});
  CHECK(t.decode(t.encode("a b", false, false)) == "a b");
  // Without such a token, words are merged separately with the same result as a whole.
  auto u = make(spm_vocab({{kSp, -9}, {"a", -9}, {"b", -9}, {kSp + "a", -1}, {kSp + "b", -1}}));
  REQUIRE(u.encode("a b", false, false) == std::vector<TokenId>{id_of(u, kSp + "a"), id_of(u, kSp + "b")});
}
