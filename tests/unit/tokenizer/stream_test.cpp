// StreamDecoder on hand-made vocabularies: characters split over tokens are held back,
// invalid bytes become U+FFFD, every chunk is valid UTF-8, the llama leading space.
#include <doctest/doctest.h>

#include "tiny_vocab.h"
#include "tokenizer/unicode.h"

using namespace cyllm::tokenizer;
using namespace cyllm::tokenizer::test;

namespace {

std::string stream_all(const Tokenizer& t, const std::vector<TokenId>& ids,
                       std::vector<std::string>* chunks = nullptr) {
  StreamDecoder sd(t);
  std::string out;
  for (TokenId id : ids) {
    std::string c = sd.push(id);
    CHECK(unicode::is_valid_utf8(c));
    if (chunks) chunks->push_back(c);
    out += c;
  }
  std::string tail = sd.flush();
  CHECK(unicode::is_valid_utf8(tail));
  if (chunks) chunks->push_back(tail);
  return out + tail;
}

}  // namespace

TEST_CASE("stream: a 4-byte character split over byte tokens is emitted once complete") {
  auto t = make(spm_vocab({{"\xE2\x96\x81", -1}, {"a", -1}}));
  // "a😀" with 😀 = F0 9F 98 80 as four byte tokens.
  auto ids = t.encode("a\xF0\x9F\x98\x80", false, false);
  REQUIRE(ids.size() == 6);  // ▁ a + 4 bytes
  std::vector<std::string> chunks;
  CHECK(stream_all(t, ids, &chunks) == "a\xF0\x9F\x98\x80");
  REQUIRE(chunks.size() == 7);
  CHECK(chunks[0] == "");   // the leading space is dropped
  CHECK(chunks[1] == "a");
  CHECK(chunks[2] == "");
  CHECK(chunks[3] == "");
  CHECK(chunks[4] == "");
  CHECK(chunks[5] == "\xF0\x9F\x98\x80");
  CHECK(chunks[6] == "");
}

TEST_CASE("stream: invalid and truncated bytes become U+FFFD") {
  auto t = make(spm_vocab({{"\xE2\x96\x81", -1}, {"a", -1}}));
  auto b = [](unsigned char x) { return static_cast<TokenId>(3 + x); };
  const std::string fffd = "\xEF\xBF\xBD";
  // FF can never start a character; C3 followed by 'a' cannot complete.
  CHECK(stream_all(t, {b(0xFF), b('a'), b(0xC3), b('a')}) == fffd + "a" + fffd + "a");
  // A truncated tail at the end is replaced by flush().
  CHECK(stream_all(t, {b('a'), b(0xE2), b(0x82)}) == "a" + fffd + fffd);
  // Same text as decode() when the whole is valid.
  auto ids = t.encode("x y\xC3\xA9z", true, false);
  CHECK(stream_all(t, ids) == t.decode(ids));
}

TEST_CASE("stream: gpt2 vocabularies keep leading spaces") {
  auto t = make(bpe_vocab("gpt-2", {{" ", "a"}}));
  auto ids = t.encode(" a b", false, false);
  CHECK(stream_all(t, ids) == " a b");
  CHECK(t.decode(ids) == " a b");
}
