// Conformance with the reference tokenizers: every string of testdata/vocab/*.inp must
// encode (without BOS, without special-token parsing) to exactly the ids of the matching
// .out line. Also checks what load() reads from the real files.
#include <doctest/doctest.h>

#include <cstdio>
#include <sstream>

#include "vocab_files.h"

using namespace cyllm::tokenizer;
using namespace cyllm::tokenizer::test;

namespace {

struct Case {
  std::string text;
  std::vector<TokenId> ids;
};

// .inp: strings each followed by "\n__ggml_vocab_test__\n"; .out: one line of ids each.
std::vector<Case> read_cases(const std::string& name) {
  const std::string base = vocab_path(name);
  std::string inp = cyllm::test::read_text(base + ".inp");
  std::string out = cyllm::test::read_text(base + ".out");
  REQUIRE(!inp.empty());
  REQUIRE(!out.empty());
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (std::size_t pos = 0;;) {
    std::size_t q = inp.find(sep, pos);
    if (q == std::string::npos) {
      REQUIRE(pos == inp.size());  // nothing after the last separator
      break;
    }
    texts.push_back(inp.substr(pos, q - pos));
    pos = q + sep.size();
  }
  std::vector<Case> cases;
  std::istringstream lines(out);
  std::string line;
  for (const std::string& t : texts) {
    REQUIRE(std::getline(lines, line));
    Case c{t, {}};
    std::istringstream ids(line);
    TokenId id;
    while (ids >> id) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  return cases;
}

std::string show(const std::vector<TokenId>& ids) {
  std::string s;
  for (TokenId id : ids) s += " " + std::to_string(id);
  return s;
}

}  // namespace

TEST_CASE("conformance: every test string of every vocabulary") {
  for (const char* name : kVocabNames) {
    CAPTURE(name);
    const Tokenizer& tok = load_vocab(name);
    std::vector<Case> cases = read_cases(name);
    CHECK(cases.size() >= 40);
    std::size_t passed = 0;
    for (const Case& c : cases) {
      auto got = tok.encode(c.text, false, false);
      if (got == c.ids) {
        ++passed;
      } else {
        FAIL_CHECK("\"" << c.text << "\": expected" << show(c.ids) << ", got" << show(got));
      }
    }
    std::printf("conformance %-10s %zu/%zu strings match\n", name, passed, cases.size());
    CHECK(passed == cases.size());
  }
}

TEST_CASE("load: metadata of the real vocabularies") {
  {
    const Tokenizer& t = load_vocab("llama-spm");
    CHECK(t.model_name() == "llama");
    CHECK(t.n_vocab() == 32000);
    CHECK(t.bos() == 1);
    CHECK(t.eos() == 2);
    CHECK(t.add_bos_by_default());
    CHECK(t.encode("Hello", true, false) == std::vector<TokenId>{1, 15043});
    CHECK(t.encode("<s>Hi</s>", false, true).front() == 1);
    CHECK(t.encode("<s>Hi</s>", false, true).back() == 2);
    CHECK(t.is_end_of_generation(2));
    CHECK(t.piece(t.find("<0x0A>").value()) == "\n");
  }
  {
    const Tokenizer& t = load_vocab("llama-bpe");
    CHECK(t.model_name() == "gpt2");
    CHECK(t.pre_name() == "llama-bpe");
    CHECK(t.n_vocab() == 128256);
    CHECK(t.bos() == 128000);
    const TokenId eot = t.find("<|eot_id|>").value();
    CHECK(eot == 128009);
    CHECK(t.encode("<|begin_of_text|>Hello<|eot_id|>", false, true) ==
          std::vector<TokenId>{128000, 9906, eot});
    CHECK(t.is_end_of_generation(eot));
    CHECK(t.is_end_of_generation(128001));
    CHECK_FALSE(t.is_end_of_generation(128000));
    CHECK(t.decode(std::vector<TokenId>{128000, 9906, eot}) == "Hello");
    CHECK(t.decode(std::vector<TokenId>{128000, 9906, eot}, true) ==
          "<|begin_of_text|>Hello<|eot_id|>");
  }
  {
    const Tokenizer& t = load_vocab("qwen2");
    CHECK(t.pre_name() == "qwen2");
    const TokenId im_start = t.find("<|im_start|>").value();
    const TokenId im_end = t.find("<|im_end|>").value();
    auto ids = t.encode("<|im_start|>user\nhi<|im_end|>", false, true);
    CHECK(ids.front() == im_start);
    CHECK(ids.back() == im_end);
    CHECK(t.is_end_of_generation(im_end));
    CHECK(t.is_end_of_generation(151643));  // <|endoftext|>, the eos
    CHECK_FALSE(t.add_bos_by_default());
  }
  {
    const Tokenizer& t = load_vocab("gpt-2");
    CHECK(t.pre_name() == "gpt-2");
    CHECK(t.n_vocab() == 50257);
    CHECK(t.is_end_of_generation(50256));
  }
}

TEST_CASE("load: missing or mistyped keys are BadVocab errors naming the key") {
  using cyllm::gguf::File;
  using cyllm::gguf::Writer;
  auto load_bytes = [](const Writer& w) {
    auto f = File::parse(w.bytes());
    REQUIRE(f.ok());
    return Tokenizer::load(*f);
  };
  {
    Writer w;
    w.set_string("tokenizer.ggml.model", "llama");
    auto r = load_bytes(w);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == cyllm::Errc::BadVocab);
    CHECK(r.error().message().find("tokenizer.ggml.tokens") != std::string::npos);
  }
  {
    Writer w;
    w.set_strings("tokenizer.ggml.tokens", {"a"});
    auto r = load_bytes(w);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message().find("tokenizer.ggml.model") != std::string::npos);
  }
  {
    Writer w;
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_strings("tokenizer.ggml.tokens", {"a", "b"});
    auto r = load_bytes(w);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message().find("tokenizer.ggml.merges") != std::string::npos);
  }
  {
    Writer w;
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_strings("tokenizer.ggml.tokens", {"a", "b"});
    w.set_f32s("tokenizer.ggml.scores", {0.0f});
    auto r = load_bytes(w);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message().find("tokenizer.ggml.scores") != std::string::npos);
  }
  {
    Writer w;
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_strings("tokenizer.ggml.tokens", {"a", "b"});
    w.set_string("tokenizer.ggml.bos_token_id", "1");
    auto r = load_bytes(w);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message().find("bos_token_id") != std::string::npos);
  }
  {
    // A minimal valid one, with add_space_prefix off.
    Writer w;
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_strings("tokenizer.ggml.tokens", {"<unk>", "a", "b", "ab"});
    w.set_f32s("tokenizer.ggml.scores", {0, -1, -1, -0.5f});
    w.set_i32s("tokenizer.ggml.token_type", {2, 1, 1, 1});
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
    w.set_bool("tokenizer.ggml.add_space_prefix", false);
    w.set_bool("tokenizer.ggml.add_bos_token", false);
    auto r = load_bytes(w);
    REQUIRE(r.ok());
    CHECK(r->encode("abab", true, false) == std::vector<TokenId>{3, 3});
    CHECK(r->encode("c", false, false) == std::vector<TokenId>{0});  // no byte tokens: <unk>
  }
}
