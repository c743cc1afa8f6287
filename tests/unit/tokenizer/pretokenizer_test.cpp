// The pre-tokenizer scanners against splits worked out by hand from the reference
// regular expressions (see libcyllm/tokenizer/pretokenizer.h).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"

using namespace cyllm::tokenizer;

namespace {

std::vector<std::string> split(PreTokenizer k, const std::string& s) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  for (const ByteSpan& w : pretokenize(k, s)) {
    REQUIRE(w.offset == pos);  // covers the input, in order
    REQUIRE(w.size_bytes > 0);
    out.push_back(s.substr(w.offset, w.size_bytes));
    pos += w.size_bytes;
  }
  REQUIRE(pos == s.size());
  return out;
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("unicode categories and folds") {
  using unicode::Category;
  CHECK(unicode::category(U'a') == Category::Letter);
  CHECK(unicode::category(U'\u00e9') == Category::Letter);     // é
  CHECK(unicode::category(U'\u4e2d') == Category::Letter);     // 中
  CHECK(unicode::category(U'\u0301') == Category::Other);      // combining acute (Mn)
  CHECK(unicode::category(U'\u00bd') == Category::Number);     // ½
  CHECK(unicode::category(U'\u0663') == Category::Number);     // Arabic-Indic 3
  CHECK(unicode::category(U'\u00a0') == Category::Space);
  CHECK(unicode::category(U'\u3000') == Category::Space);
  CHECK(unicode::category(0x1C) == Category::Other);            // not White_Space
  CHECK(unicode::category(U'\U0001F600') == Category::Other);  // emoji
  CHECK(unicode::contraction_fold(U'S') == 's');
  CHECK(unicode::contraction_fold(U'\u017f') == 's');          // long s folds to s
  CHECK(unicode::contraction_fold(U'x') == 0);
}

TEST_CASE("utf8 decoding rejects overlong, surrogate and truncated forms") {
  using unicode::decode;
  using unicode::kInvalid;
  CHECK(decode("\xC3\xA9", 0).cp == 0xE9);
  CHECK(decode("\xF0\x9F\x98\x80", 0).cp == 0x1F600);
  CHECK(decode("\xC0\xAF", 0).cp == kInvalid);          // overlong '/'
  CHECK(decode("\xED\xA0\x80", 0).cp == kInvalid);      // surrogate
  CHECK(decode("\xF4\x90\x80\x80", 0).cp == kInvalid);  // > U+10FFFF
  CHECK(decode("\xE2\x82", 0).cp == kInvalid);          // truncated
  CHECK(decode("\xE2\x82", 0).len == 1);
  CHECK(unicode::could_complete("\xE2\x82"));
  CHECK_FALSE(unicode::could_complete("\xE2\x41"));
  CHECK_FALSE(unicode::could_complete("\xFF"));
  CHECK(unicode::sanitize("a\xFF" "b") == "a\xEF\xBF\xBD" "b");
}

TEST_CASE("llama3 pre-tokenizer") {
  auto k = PreTokenizer::Llama3;
  CHECK(split(k, "Hello world") == V{"Hello", " world"});
  CHECK(split(k, "I've 12345 apples") == V{"I", "'ve", " ", "123", "45", " apples"});
  CHECK(split(k, "   \n\n  x") == V{"   \n\n", " ", " x"});
  CHECK(split(k, "a  ") == V{"a", "  "});
  CHECK(split(k, "WE'RE 'Ll") == V{"WE", "'RE", " '", "Ll"});
  CHECK(split(k, "$hello") == V{"$hello"});
  CHECK(split(k, "\thello") == V{"\thello"});
  CHECK(split(k, "hi!!\n\nyo") == V{"hi", "!!\n\n", "yo"});
  CHECK(split(k, "a\xFF" "b") == V{"a", "\xFF" "b"});
  CHECK(split(k, "x = 1;") == V{"x", " =", " ", "1", ";"});
  CHECK(split(k, "") == V{});
}

TEST_CASE("qwen2 pre-tokenizer: one digit per word") {
  CHECK(split(PreTokenizer::Qwen2, "12345 ok") == V{"1", "2", "3", "4", "5", " ok"});
}

TEST_CASE("gpt-2 pre-tokenizer") {
  auto k = PreTokenizer::Gpt2;
  CHECK(split(k, "Hello world") == V{"Hello", " world"});
  CHECK(split(k, "WE'RE we're") == V{"WE", "'", "RE", " we", "'re"});
  CHECK(split(k, "$hello") == V{"$", "hello"});
  CHECK(split(k, "\thello") == V{"\t", "hello"});
  CHECK(split(k, "hi!!\n\nyo") == V{"hi", "!!", "\n", "\n", "yo"});
  CHECK(split(k, "12345 678") == V{"12345", " 678"});
  CHECK(split(k, "a   b") == V{"a", "  ", " b"});
  CHECK(split(k, "end  ") == V{"end", "  "});
}
