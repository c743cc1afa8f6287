// libFuzzer target: what an external engine's server (or a remote OpenAI endpoint) sends
// back. The first byte picks chat or completions and how the rest is cut into network
// reads; the rest is fed to UpstreamStream as an SSE body and to upstream_error as an
// error answer's body.
// Invariants: no crash, no hang; the pieces handed out are exactly the non-empty texts
// seen (their total never exceeds the input size); a stopped stream hands out nothing more.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cyllm/error.h"
#include "external/openai_client.h"

using namespace cyllm;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool chat = data[0] & 1;
  const std::size_t chunk = 1 + (data[0] >> 1);
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  external::UpstreamStream stream(chat);
  std::size_t total = 0, pieces = 0;
  const std::size_t stop_after = data[0] % 7;  // 0: never stop
  bool stopped = false;
  for (std::size_t at = 0; at < body.size(); at += chunk) {
    const bool go = stream.feed(body.substr(at, chunk), [&](std::string_view piece) {
      CYLLM_ASSERT(!stopped);
      CYLLM_ASSERT(!piece.empty());
      total += piece.size();
      ++pieces;
      return stop_after == 0 || pieces < stop_after;
    });
    if (!go) stopped = true;
  }
  CYLLM_ASSERT(total <= body.size());
  CYLLM_ASSERT(stopped == stream.stopped());
  const Error e = external::upstream_error(400 + data[0] % 200, body, "http://127.0.0.1:1/v1/completions");
  CYLLM_ASSERT(!e.message().empty());
  return 0;
}
