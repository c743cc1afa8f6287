// decode(encode(s)) == s on hard Unicode for each real vocabulary, and StreamDecoder fed
// token by token gives the same text with every chunk valid UTF-8.
#include <doctest/doctest.h>

#include "tokenizer/unicode.h"
#include "vocab_files.h"

using namespace cyllm::tokenizer;
using namespace cyllm::tokenizer::test;

namespace {

const std::vector<std::string>& hard_strings() {
  static const std::vector<std::string> k = {
      "e\u0301 n\u0303o\u0308 a\u0323\u0302 Z\u0351\u0352\u0353\u0354",           // combining marks
      "\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466 \U0001F3F3\uFE0F\u200D\U0001F308 "
      "\U0001F44D\U0001F3FD",                                                     // emoji ZWJ
      "\u4e2d\u6587\u5b57\u7b26\u6d4b\u8bd5\uff0c\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8"
      "\u3001\ud55c\uad6d\uc5b4",                                                 // CJK
      "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd \u0645\u0631\u062d\u0628\u0627 "
      "\u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u200f123\u200e",                // RTL
      "\U0001D518\U0001D52B\U0001D526\U0001D520 \U00010348 \U0001F004 \U00020000", // 4-byte
      " ", "\n", "\t", "  ", "  \n\t \r\n", "a \n b\t\tc  ", "\n\n\n", " leading", "trailing ",
      "<s></s><|im_end|><|endoftext|><|eot_id|><|begin_of_text|>[PAD151646]<0x41><unk> "
      "\xE2\x96\x81 \xC4\xA0",                                                     // lookalikes
      std::string("nul\0byte", 8),
      "I've been 'told he's there, 'RE you sure? 12345678 3.14159 x=-1;",
      "\u00bd \u2153 \u0663\u0664 \u2167 \u00a0nbsp\u3000ideographic",
  };
  return k;
}

}  // namespace

TEST_CASE("round trip: decode(encode(s)) == s, and streaming gives the same text") {
  for (const char* name : kVocabNames) {
    CAPTURE(name);
    const Tokenizer& tok = load_vocab(name);
    std::size_t n_ok = 0;
    for (std::string s : hard_strings()) {
      // SentencePiece's escaping is lossy for a literal U+2581 (it is the space marker):
      // the reference decodes it as ' ' too. Covered separately below.
      if (tok.model_name() == "llama") {
        std::string t;
        for (std::size_t i = 0; i < s.size(); ++i) {
          if (s.compare(i, 3, "\xE2\x96\x81") == 0) {
            t += '_';
            i += 2;
          } else {
            t += s[i];
          }
        }
        s = t;
      }
      CAPTURE(s);
      for (bool add_bos : {false, true}) {
        auto ids = tok.encode(s, add_bos, false);
        for (TokenId id : ids) REQUIRE((id >= 0 && static_cast<std::size_t>(id) < tok.n_vocab()));
        CHECK(tok.decode(ids) == s);
        StreamDecoder sd(tok);
        std::string streamed;
        for (TokenId id : ids) {
          std::string chunk = sd.push(id);
          CHECK(unicode::is_valid_utf8(chunk));
          streamed += chunk;
        }
        std::string tail = sd.flush();
        CHECK(tail.empty());  // all input was valid UTF-8
        CHECK(streamed == s);
        if (tok.decode(ids) == s && streamed == s) ++n_ok;
      }
    }
    std::printf("round trip %-10s %zu/%zu\n", name, n_ok, 2 * hard_strings().size());
  }
}

TEST_CASE("round trip: a literal U+2581 reads as a space in llama vocabularies") {
  const Tokenizer& tok = load_vocab("llama-spm");
  CHECK(tok.decode(tok.encode("a\xE2\x96\x81" "b", false, false)) == "a b");
  CHECK(tok.encode("a\xE2\x96\x81" "b", false, false) == tok.encode("a b", false, false));
}

TEST_CASE("round trip: invalid UTF-8 input survives encode/decode byte for byte") {
  const std::string bad = "a\xFF\xFE b\xC3 \xE2\x82 \xED\xA0\x80 \xF0\x9F\x98";
  for (const char* name : kVocabNames) {
    CAPTURE(name);
    const Tokenizer& tok = load_vocab(name);
    auto ids = tok.encode(bad, false, false);
    CHECK(tok.decode(ids) == bad);
    StreamDecoder sd(tok);
    std::string streamed;
    for (TokenId id : ids) {
      std::string chunk = sd.push(id);
      CHECK(unicode::is_valid_utf8(chunk));
      streamed += chunk;
    }
    streamed += sd.flush();
    CHECK(unicode::is_valid_utf8(streamed));
    CHECK(streamed == unicode::sanitize(bad));
  }
}
