// The load generator behind bench/serve_bench: sends N requests at a given concurrency
// (and optionally a Poisson arrival rate) through a Transport and reports TTFT, TPOT, ITL
// and end-to-end latency percentiles, throughput and errors by code.
//
// A Transport is how requests reach a server. serve_bench.cpp has two: HTTP (the OpenAI
// API, SSE streaming) and gRPC StreamPredict (cy-llm-serve's Unix socket).
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cyllm::bench {

struct BenchRequest {
  std::string prompt;
  bool chat = false;
  std::uint32_t max_tokens = 64;
  float temperature = 0.0f;
  std::uint64_t seed = 0;
  bool stream = true;
};

// One request's measurements. Times in milliseconds from the moment it was sent.
struct Outcome {
  bool ok = false;
  std::string error_code;        // "http_429", "serve.overloaded", "network", ...
  double ttft_ms = 0;            // first non-empty piece (non-streaming: the whole answer)
  double e2e_ms = 0;             // last byte of the answer
  std::vector<double> piece_ms;  // arrival time of every non-empty piece
  std::uint32_t prompt_tokens = 0;
  std::uint32_t completion_tokens = 0;  // from usage when given, else the piece count
  std::string text;
};

// One connection or channel, used by one worker thread at a time.
class Session {
 public:
  virtual ~Session() = default;
  virtual Outcome send(const BenchRequest& request) = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual std::string name() const = 0;  // "http", "grpc"
  virtual std::unique_ptr<Session> open() = 0;  // thread-safe
};

struct LoadOptions {
  int n_requests = 64;
  int concurrency = 4;
  double rate_per_s = 0;  // 0: send as soon as a worker is free; else Poisson arrivals
  std::uint64_t seed = 1;
};

struct Percentiles {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
  std::size_t n = 0;
};

struct Report {
  std::string transport;
  LoadOptions options;
  double wall_s = 0;
  int completed = 0;
  int failed = 0;
  std::map<std::string, int> errors;  // by code
  std::uint64_t prompt_tokens = 0;
  std::uint64_t completion_tokens = 0;
  Percentiles ttft_ms, tpot_ms, itl_ms, e2e_ms;
  double requests_per_s = 0;
  double output_tokens_per_s = 0;
  double total_tokens_per_s = 0;
};

// Runs the requests (cycled when fewer than n_requests) and measures them.
Report run_load(Transport& transport, const std::vector<BenchRequest>& requests, const LoadOptions& options);
// Summarises already measured outcomes (used by run_load; exposed for tests).
Report summarize(const std::vector<Outcome>& outcomes, double wall_s);
Percentiles percentiles(std::vector<double> values);

void print_table(const Report& report, std::FILE* out);
nlohmann::ordered_json report_json(const Report& report);

}  // namespace cyllm::bench
