// libFuzzer target: the HTTP/1.1 request parser of the API server (bytes straight from the
// network). The first byte picks small or default limits. Invariants: no crash, no hang;
// feeding the bytes at once or in pieces gives the same outcome; a complete request obeys
// the limits (body size, field count) and has a token method, a target and lower-case
// field names; an error carries a 4xx/5xx status; pipelined requests are taken in order.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cyllm/error.h"
#include "http/request_parser.h"

using namespace cyllm;
using namespace cyllm::http;

namespace {

struct Outcome {
  std::vector<HttpRequest> requests;
  int error_status = 0;
};

void take_all(RequestParser& p, Outcome& out, const ParserLimits& limits) {
  while (p.state() == RequestParser::State::Complete) {
    HttpRequest r = p.take();
    CYLLM_ASSERT(r.body.size() <= limits.max_body_bytes);
    CYLLM_ASSERT(r.headers.size() <= limits.max_headers);
    CYLLM_ASSERT(!r.method.empty() && !r.target.empty());
    CYLLM_ASSERT(r.version_minor == 0 || r.version_minor == 1);
    for (const auto& h : r.headers)
      for (char c : h.name) CYLLM_ASSERT(!std::isupper(static_cast<unsigned char>(c)));
    out.requests.push_back(std::move(r));
  }
  if (p.state() == RequestParser::State::Error) {
    out.error_status = p.error_status();
    CYLLM_ASSERT(p.error_status() >= 400 && p.error_status() < 600);
    CYLLM_ASSERT(!p.error_message().empty());
  }
}

Outcome run(std::string_view text, const ParserLimits& limits, std::size_t step) {
  RequestParser p(limits);
  Outcome out;
  for (std::size_t i = 0; i < text.size() && out.error_status == 0; i += step) {
    p.feed(text.substr(i, step));
    take_all(p, out, limits);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  ParserLimits limits;
  if (data[0] & 1) {
    limits.max_header_bytes = 256;
    limits.max_headers = 8;
    limits.max_body_bytes = 64;
  }
  const std::size_t step = 1 + (data[0] >> 1) % 7;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  Outcome whole = run(text, limits, text.size() + 1);
  Outcome pieces = run(text, limits, step);
  CYLLM_ASSERT(whole.error_status == pieces.error_status);
  CYLLM_ASSERT(whole.requests.size() == pieces.requests.size());
  for (std::size_t i = 0; i < whole.requests.size(); ++i) {
    CYLLM_ASSERT(whole.requests[i].target == pieces.requests[i].target);
    CYLLM_ASSERT(whole.requests[i].body == pieces.requests[i].body);
    CYLLM_ASSERT(whole.requests[i].headers.size() == pieces.requests[i].headers.size());
  }
  return 0;
}
