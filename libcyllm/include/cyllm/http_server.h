// The OpenAI-compatible HTTP API of cy-llm-serve, on the project's own HTTP/1.1 server
// (libcyllm/http/server.h says why it is not cpp-httplib).
//
// Routes:
//   POST /v1/completions, POST /v1/chat/completions   (JSON; SSE when "stream": true)
//   GET  /v1/models
//   GET  /health/live     200 while the process serves
//   GET  /health/ready    200 when callbacks.ready() is true and the server is not draining,
//                         else 503
//   GET  /health          the same as /health/ready (the path vLLM and trtllm-serve answer,
//                         so probes and cy-llm's own process engine work unchanged)
//   GET  /metrics         Prometheus text: this server's HTTP metrics, then
//                         callbacks.metrics_text()
// /v1/* need "Authorization: Bearer <api_key>" when api_key is set (401 otherwise); health
// and metrics never do. Unknown path 404, known path with another method 405 (with Allow).
// Errors have the OpenAI shape {"error":{"message","type","param","code"}}; the mapping of
// predict's error codes to statuses is openai::error_from (cyllm/openai.h).
//
// The server knows no scheduler: every generation goes through callbacks.predict, called
// on a worker thread of this server, once per request. Pieces it hands to the sink are
// written to the client as they come (SSE) or collected (non-streaming). When the client
// hangs up, the sink returns false and *cancel is raised.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cyllm/context.h"
#include "cyllm/engine.h"
#include "cyllm/error.h"

namespace cyllm::http {

// The shape of engine::BaseEngine::stream_predict. Blocking; may be called from many
// threads at once.
using PredictFn = std::function<Result<engine::Completion>(
    const engine::Request&, const engine::TokenSink&, const std::atomic<bool>* cancel)>;

struct HttpServerConfig {
  std::string host = "127.0.0.1";  // loopback unless the operator says otherwise
  std::uint16_t port = 0;          // 0: an ephemeral port (see HttpServer::port())
  std::string model_id;            // served name: /v1/models, "model" of every response
  std::string api_key;             // non-empty: Bearer auth on /v1/*
  std::size_t max_body_bytes = 1 << 20;     // larger bodies: 413
  std::size_t max_header_bytes = 16 << 10;  // larger header sections: 431
  std::size_t max_headers = 100;            // more fields: 431
  std::chrono::milliseconds header_timeout{10000};  // first byte -> end of headers (408)
  std::chrono::milliseconds body_timeout{30000};    // end of headers -> end of body (408)
  std::chrono::milliseconds idle_timeout{60000};    // keep-alive connections
  std::chrono::milliseconds write_timeout{30000};   // a client that stops reading
  unsigned n_workers = 128;         // requests served at once (the scheduler limits further)
  std::size_t max_pending = 1024;   // complete requests waiting for a worker (then 503)
  std::size_t max_connections = 4096;
  std::uint32_t default_max_tokens = 256;  // chat requests without max_tokens
  std::uint32_t max_tokens_limit = 1u << 20;
  int retry_after_s = 1;            // Retry-After of 429/503 from overload and queue timeout
};

struct HttpServerCallbacks {
  PredictFn predict;                         // required
  std::function<std::string()> metrics_text; // optional: appended to /metrics
  std::function<bool()> ready;               // optional: null means ready
};

class HttpServer {
 public:
  // Binds host:port and starts serving. serve.bind_failed when the address cannot be
  // bound; util.invalid_argument without predict. `log` (one line per request at Info,
  // with the request id) must outlive the server.
  static Result<std::unique_ptr<HttpServer>> start(HttpServerConfig config,
                                                   HttpServerCallbacks callbacks, Logger& log);
  ~HttpServer();  // stop(0): requests still running are cancelled
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  std::uint16_t port() const;  // the bound port (useful with port 0)
  // Stops accepting new connections and reports not ready; requests in flight go on.
  void begin_drain();
  // begin_drain(), then waits up to drain_timeout for requests in flight, cancels the rest
  // (through their cancel flags), and joins all threads. Idempotent; blocks.
  void stop(std::chrono::milliseconds drain_timeout);
  std::size_t requests_in_flight() const;
  std::size_t open_connections() const;

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cyllm::http
