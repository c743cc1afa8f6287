// A client of an OpenAI-compatible server over libcurl: streamed completions (SSE) into an
// engine::TokenSink, with cancellation, deadlines and stall timeouts, and error answers
// mapped back to cy-llm's error codes. Used by ProcessEngine (a child's loopback server)
// and OpenAiEngine (a remote endpoint).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cyllm/engine.h"
#include "cyllm/error.h"
#include "cyllm/http_client.h"

namespace cyllm::external {

struct ClientOptions {
  std::string base_url;   // the OpenAI root, e.g. "http://127.0.0.1:8000/v1" (no trailing '/')
  std::string api_key;    // "" = no Authorization header
  std::string ca_bundle;  // "" = the system store (TLS checks are never turned off)
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds stall_timeout{300000};  // no byte for this long ends a request
};

struct HttpReply {
  long status = 0;
  std::string body;
};

// GET `url` (a full URL). engine.unavailable when it cannot be reached.
Result<HttpReply> http_get(const std::string& url, const ClientOptions& options,
                           std::chrono::milliseconds timeout);

// The request body we send for `r` (chat when r.messages is non-empty, else completions).
// Sampling fields at their "off" values are left out, so plain OpenAI servers get no
// parameter they may not know.
nlohmann::json request_body(const engine::Request& r, const std::string& model);

// An upstream's error answer -> a cy-llm error: its "code" when it is a cy-llm id (a
// cy-llm-serve upstream), else by status (400/404/422 engine.invalid_request, 401/403
// engine.unavailable naming the key, 429 serve.overloaded, 5xx engine.unavailable, and
// engine.out_of_memory when the message says out of memory). The message quotes the URL.
Error upstream_error(long status, std::string_view body, std::string_view url);

// Parses an upstream's text/event-stream answer (untrusted bytes): OpenAI chunks give text
// pieces (choices[0].text, or choices[0].delta.content for chat), the finish reason and
// usage; an {"error": ...} event is kept; "[DONE]" ends it. Other events are skipped.
class UpstreamStream {
 public:
  explicit UpstreamStream(bool chat) : chat_(chat) {}
  // Feeds bytes as they arrive; on_piece gets each non-empty piece and returns false to
  // stop (then feed returns false and ignores the rest).
  bool feed(std::string_view bytes, const std::function<bool(std::string_view piece)>& on_piece);
  bool done() const { return done_; }
  bool stopped() const { return stopped_; }
  const std::string& finish_reason() const { return finish_reason_; }
  const std::optional<engine::Usage>& usage() const { return usage_; }
  const std::string& error_event() const { return error_; }  // its JSON text, "" when none

 private:
  void on_event(std::string_view data, const std::function<bool(std::string_view)>& on_piece);
  bool chat_;
  http::SseReader sse_;
  bool done_ = false;
  bool stopped_ = false;
  std::string finish_reason_;
  std::optional<engine::Usage> usage_;
  std::string error_;
};

// Streams one request (stream: true, include_usage). Pieces go to `sink` as they arrive
// with token id tokenizer::kNoToken (-1: the OpenAI API does not carry ids). Contract of
// engine::BaseEngine::stream_predict; a broken connection or a stream that ends without
// [DONE] is engine.unavailable ("the stream broke: ...").
Result<engine::Completion> stream_completion(const ClientOptions& options, const engine::Request& r,
                                             const std::string& model, const engine::TokenSink& sink,
                                             const std::atomic<bool>* cancel);

}  // namespace cyllm::external
