// libFuzzer target: the gRPC request decoder (untrusted bytes from a socket). Invariants:
// no crash on any bytes; an accepted request has a prompt or messages, a max_tokens in
// range, and passes the engine's own validation (the server's ranges are never looser than
// the engine's); a refusal is always engine.invalid_request.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cyllm/serve.h"
#include "engine/generate.h"

using namespace cyllm;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string field;
  auto r = serve::parse_grpc_request(bytes, &field);
  if (!r.ok()) {
    CYLLM_ASSERT(r.error().code() == Errc::InvalidRequest);
    return 0;
  }
  CYLLM_ASSERT(!r->prompt.empty() || !r->messages.empty());
  CYLLM_ASSERT(r->max_tokens >= 1 && r->max_tokens <= 65536);
  CYLLM_ASSERT(engine::validate_request(*r).ok());
  return 0;
}
