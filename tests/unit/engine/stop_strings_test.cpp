#include <doctest/doctest.h>

#include "engine/stop_strings.h"

using namespace cyllm::engine;

namespace {

struct Result {
  std::string shown;
  bool stopped = false;
  std::vector<std::string> emitted;  // each non-empty release
};

Result run(const std::vector<std::string>& stops, const std::vector<std::string>& pieces) {
  StopFilter f(stops);
  Result r;
  for (const auto& p : pieces) {
    auto o = f.push(p);
    if (!o.text.empty()) r.emitted.push_back(o.text);
    r.shown += o.text;
    if (o.stopped) {
      r.stopped = true;
      return r;
    }
  }
  std::string tail = f.flush();
  if (!tail.empty()) r.emitted.push_back(tail);
  r.shown += tail;
  return r;
}

// Every way to cut `text` into two or three pieces.
std::vector<std::vector<std::string>> splits(const std::string& text) {
  std::vector<std::vector<std::string>> out;
  for (std::size_t i = 0; i <= text.size(); ++i)
    for (std::size_t j = i; j <= text.size(); ++j)
      out.push_back({text.substr(0, i), text.substr(i, j - i), text.substr(j)});
  return out;
}

}  // namespace

TEST_CASE("a stop string is never shown, wherever the pieces split it") {
  const std::string text = "Hello world</end> and more";
  for (const auto& pieces : splits(text)) {
    Result r = run({"</end>"}, pieces);
    CAPTURE(pieces[0]);
    CAPTURE(pieces[1]);
    CHECK(r.stopped);
    CHECK(r.shown == "Hello world");
    for (const auto& e : r.emitted) CHECK(e.find('<') == std::string::npos);
  }
}

TEST_CASE("text that only looks like the start of a stop string is released") {
  const std::string text = "a </en b </e";
  for (const auto& pieces : splits(text)) {
    Result r = run({"</end>"}, pieces);
    CHECK_FALSE(r.stopped);
    CHECK(r.shown == text);
  }
}

TEST_CASE("the earliest of several stop strings wins") {
  for (const auto& pieces : splits("xxSTOPyyHALT")) {
    Result r = run({"HALT", "STOP"}, pieces);
    CHECK(r.stopped);
    CHECK(r.shown == "xx");
  }
}

TEST_CASE("held-back text is released as soon as it cannot become a stop string") {
  StopFilter f({"###"});
  CHECK(f.push("ab#").text == "ab");
  CHECK(f.push("#").text == "");
  CHECK(f.push("x").text == "##x");
  CHECK(f.flush() == "");
}

TEST_CASE("no stop strings: everything passes straight through") {
  StopFilter f({});
  CHECK(f.push("abc").text == "abc");
  CHECK(f.push("").text == "");
  CHECK(f.flush() == "");
}

TEST_CASE("multi-byte stop strings keep characters whole") {
  // "é" is C3 A9; the stop string starts with it.
  const std::string text = "caf\xC3\xA9\xC3\xA9!";
  for (const auto& pieces : splits(text)) {
    Result r = run({"\xC3\xA9\xC3\xA9"}, pieces);
    CHECK(r.stopped);
    CHECK(r.shown == "caf");
  }
}

TEST_CASE("after a stop, further pieces are dropped") {
  StopFilter f({"!"});
  auto o = f.push("hi!there");
  CHECK(o.stopped);
  CHECK(o.text == "hi");
  CHECK(f.push("more").text == "");
  CHECK(f.flush() == "");
  CHECK(f.stopped());
}
