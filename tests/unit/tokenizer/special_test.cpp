// Special tokens: parse_special, longest match, user-defined tokens, the dummy prefix
// after a special token, end-of-generation recognition.
#include <doctest/doctest.h>

#include "tiny_vocab.h"

using namespace cyllm::tokenizer;
using namespace cyllm::tokenizer::test;

TEST_CASE("special: control tokens are matched only with parse_special") {
  auto t = make(bpe_vocab("qwen2", {{"h", "i"}},
                          {{"<|im_end|>", TokenType::Control},
                           {"<|x|>", TokenType::Control},
                           {"<|x|>y", TokenType::Control},
                           {"<tool>", TokenType::UserDefined}}));
  const TokenId im_end = id_of(t, "<|im_end|>");
  const TokenId hi = id_of(t, gpt2_text("hi"));
  auto ids = t.encode("hi<|im_end|>hi", false, true);
  REQUIRE(ids == std::vector<TokenId>{hi, im_end, hi});
  CHECK(t.decode(ids) == "hihi");
  CHECK(t.decode(ids, true) == "hi<|im_end|>hi");

  // Without parse_special the text is ordinary bytes.
  ids = t.encode("hi<|im_end|>", false, false);
  REQUIRE(ids.size() > 3);
  for (TokenId id : ids) CHECK(id != im_end);
  CHECK(t.decode(ids) == "hi<|im_end|>");

  // Longest match first.
  REQUIRE(t.encode("<|x|>yz", false, true) ==
          std::vector<TokenId>{id_of(t, "<|x|>y"), 'z'});
  // User-defined tokens are vocabulary entries: matched always, decoded always.
  const TokenId tool = id_of(t, "<tool>");
  REQUIRE(t.encode("hi<tool>", false, false) == std::vector<TokenId>{hi, tool});
  CHECK(t.decode(std::vector<TokenId>{tool}) == "<tool>");
  CHECK(t.piece(im_end) == "");
  CHECK(t.piece(im_end, true) == "<|im_end|>");

  CHECK(t.is_end_of_generation(im_end));  // recognised by its text
  CHECK_FALSE(t.is_end_of_generation(id_of(t, "<|x|>")));
  CHECK(t.is_control(im_end));
  CHECK_FALSE(t.is_control(tool));
  CHECK(t.find("<|im_end|>") == im_end);
  CHECK_FALSE(t.find("<|nope|>").has_value());
}

TEST_CASE("special: llama adds the dummy prefix at the start and after special tokens") {
  const std::string sp = "\xE2\x96\x81";
  auto t = make(spm_vocab({{sp, -1}, {"h", -1}, {"i", -1}, {sp + "h", -0.5f}, {sp + "hi", -0.2f}}));
  const TokenId shi = id_of(t, sp + "hi");
  REQUIRE(t.encode("<s>hi</s>hi", false, true) == std::vector<TokenId>{1, shi, 2, shi});
  REQUIRE(t.encode("hi", true, false) == std::vector<TokenId>{1, shi});
  // Decoding strips only the first space: after BOS (hidden) too.
  CHECK(t.decode(std::vector<TokenId>{1, shi}) == "hi");
  CHECK(t.decode(std::vector<TokenId>{1, shi}, true) == "<s> hi");
  // Special-looking text without parse_special is plain text (bytes, here).
  auto ids = t.encode("<s>", false, false);
  for (TokenId id : ids) CHECK(id != 1);
  CHECK(t.decode(ids) == "<s>");
}

TEST_CASE("special: declared end ids") {
  VocabData d = bpe_vocab("gpt-2", {}, {{"<|eot_id|>", TokenType::Control},
                                        {"<|end_of_text|>", TokenType::Control},
                                        {"<|eom|>", TokenType::Control}});
  d.eos = 257;
  d.eom = 258;
  d.bos = 257;
  auto t = make(std::move(d));
  CHECK(t.is_end_of_generation(256));  // <|eot_id|> by text
  CHECK(t.is_end_of_generation(257));
  CHECK(t.is_end_of_generation(258));
  CHECK_FALSE(t.is_end_of_generation(0));
  CHECK_FALSE(t.is_end_of_generation(-5));
  CHECK(t.eos() == 257);
  CHECK(t.bos() == 257);
  CHECK(t.n_vocab() == 259);
}
