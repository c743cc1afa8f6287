// The HTTP/1.1 request parser: framing, limits and the statuses of refused requests,
// byte-at-a-time input and pipelining.
#include <doctest/doctest.h>

#include <string>

#include "http/request_parser.h"

using namespace cyllm::http;
using State = RequestParser::State;

namespace {

// Feeds one byte at a time, as the slowest client would.
State feed_slowly(RequestParser& p, std::string_view text) {
  State s = State::NeedMore;
  for (char c : text) s = p.feed(std::string_view(&c, 1));
  return s;
}

int error_of(std::string_view text, ParserLimits limits = {}) {
  RequestParser p(limits);
  if (p.feed(text) != State::Error) return 0;
  return p.error_status();
}

}  // namespace

TEST_CASE("a POST with a body parses the same at once and byte by byte") {
  const std::string text =
      "POST /v1/completions?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "X-Mixed-Case:   spaced value  \r\nContent-Length: 13\r\n\r\n{\"prompt\":1}\n";
  for (bool slow : {false, true}) {
    RequestParser p;
    State s = slow ? feed_slowly(p, text) : p.feed(text);
    REQUIRE(s == State::Complete);
    HttpRequest r = p.take();
    CHECK(r.method == "POST");
    CHECK(r.target == "/v1/completions?x=1");
    CHECK(r.path == "/v1/completions");
    CHECK(r.query == "x=1");
    CHECK(r.version_minor == 1);
    CHECK(r.body == "{\"prompt\":1}\n");
    REQUIRE(r.header("x-mixed-case") != nullptr);
    CHECK(*r.header("x-mixed-case") == "spaced value");
    CHECK(r.header("X-Mixed-Case") == nullptr);  // names are stored lower-case
    CHECK(r.keep_alive());
    CHECK(p.state() == State::NeedMore);
    CHECK(p.buffered_bytes() == 0);
  }
}

TEST_CASE("headers done and started are reported while the body is still coming") {
  RequestParser p;
  CHECK_FALSE(p.started());
  CHECK(p.feed("\r\n") == State::NeedMore);  // empty lines before a request are skipped
  CHECK_FALSE(p.started());
  CHECK(p.feed("POST / HTTP/1.1\r\nHost: x\r\n") == State::NeedMore);
  CHECK(p.started());
  CHECK_FALSE(p.headers_done());
  CHECK(p.feed("Expect: 100-continue\r\nContent-Length: 4\r\n\r\nab") == State::NeedMore);
  CHECK(p.headers_done());
  CHECK(p.expects_continue());
  CHECK(p.feed("cd") == State::Complete);
  CHECK_FALSE(p.expects_continue());
  CHECK(p.take().body == "abcd");
}

TEST_CASE("pipelined requests are taken in order") {
  RequestParser p;
  REQUIRE(p.feed("GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /c HTTP/1.0\r\n\r\n") ==
          State::Complete);
  CHECK(p.take().path == "/a");
  REQUIRE(p.state() == State::Complete);
  HttpRequest b = p.take();
  CHECK(b.path == "/b");
  CHECK(b.body == "hi");
  REQUIRE(p.state() == State::Complete);
  HttpRequest c = p.take();
  CHECK(c.path == "/c");
  CHECK(c.version_minor == 0);
  CHECK_FALSE(c.keep_alive());  // HTTP/1.0 closes unless asked
  CHECK(p.state() == State::NeedMore);
}

TEST_CASE("keep-alive follows the version and the Connection header") {
  RequestParser p;
  REQUIRE(p.feed("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n") == State::Complete);
  CHECK_FALSE(p.take().keep_alive());
  REQUIRE(p.feed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == State::Complete);
  CHECK(p.take().keep_alive());
}

TEST_CASE("bare LF line ends are accepted") {
  RequestParser p;
  REQUIRE(p.feed("GET /x HTTP/1.1\nHost: a\nContent-Length: 1\n\nz") == State::Complete);
  CHECK(p.take().body == "z");
}

TEST_CASE("malformed requests get 400 and unsupported framing its own status") {
  CHECK(error_of("GET /\r\n\r\n") == 400);                       // no version
  CHECK(error_of("GET  / HTTP/1.1\r\nHost: x\r\n\r\n") == 400);  // two spaces
  CHECK(error_of("G(T / HTTP/1.1\r\nHost: x\r\n\r\n") == 400);   // not a token
  CHECK(error_of("GET / HTTP/1.1\r\n\r\n") == 400);              // 1.1 without Host
  CHECK(error_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == 400);
  CHECK(error_of("GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n") == 400);
  CHECK(error_of("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n") == 400);
  CHECK(error_of("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n") == 400);
  static const char kNul[] = "GET / HTTP/1.1\r\nHost: x\r\nA: b\0c\r\n\r\n";
  CHECK(error_of(std::string(kNul, sizeof kNul - 1)) == 400);
  CHECK(error_of("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n") == 400);
  CHECK(error_of("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n") == 400);
  CHECK(error_of("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n") == 400);
  CHECK(error_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n") == 400);
  CHECK(error_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n") == 411);
  CHECK(error_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n") == 501);
  CHECK(error_of("GET / HTTP/2.0\r\nHost: x\r\n\r\n") == 505);
  CHECK(error_of("GET / HTTX/1.1\r\nHost: x\r\n\r\n") == 400);
  // Repeated equal values are one length.
  RequestParser p;
  REQUIRE(p.feed("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\nok") == State::Complete);
}

TEST_CASE("limits: 413 before the body is read, 431 for the header section") {
  ParserLimits small;
  small.max_body_bytes = 10;
  small.max_header_bytes = 200;
  small.max_headers = 3;
  RequestParser p(small);
  REQUIRE(p.feed("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n") == State::Error);
  CHECK(p.error_status() == 413);
  CHECK(p.error_message().find("11 bytes exceeds the limit of 10") != std::string::npos);
  CHECK(error_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789", small) == 0);
  CHECK(error_of("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", small) == 431);
  CHECK(error_of("GET / HTTP/1.1\r\nHost: x\r\nA: " + std::string(300, 'a') + "\r\n\r\n", small) == 431);
  // A header line that never ends is refused once it passes the limit, not buffered forever.
  RequestParser q(small);
  CHECK(q.feed("GET / HTTP/1.1\r\nHost: x\r\nA: " + std::string(250, 'a')) == State::Error);
  CHECK(q.error_status() == 431);
}
