// The server core behind cy-llm-serve (seed Server Core): a continuous-batching scheduler
// over one model, a metrics registry with the Prometheus text format, the Service that
// every transport (gRPC here, HTTP in the http module) calls, and the gRPC transport.
//
// Threads: one scheduler thread runs the model (model::eval_batch over every running
// sequence); transports call Service/Scheduler::stream_predict from their own threads,
// which block and receive their text pieces on their own thread. No global state; signals
// are the tool's business.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "cyllm/context.h"
#include "cyllm/engine.h"
#include "cyllm/error.h"
#include "cyllm/log.h"
#include "cyllm/model.h"

namespace cyllm::serve {

// ---- Metrics --------------------------------------------------------------------------

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {  // thread-safe
 public:
  void inc(double v = 1) { v_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

class Gauge {  // thread-safe
 public:
  void set(double v) { v_.store(v, std::memory_order_relaxed); }
  void add(double v) { v_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

class Histogram {  // thread-safe; cumulative buckets as Prometheus wants them
 public:
  explicit Histogram(std::vector<double> upper_bounds);  // ascending; +Inf is implicit
  void observe(double v);
  struct Snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;  // per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<std::uint64_t> counts_;  // per bucket (not cumulative), last = +Inf
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

// Metric families by name, each with series by label set. Returned references stay valid
// as long as the registry. Registering the same name and labels again returns the same
// series; the same name with another type is a bug (asserted). Thread-safe.
class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help,
                       const std::vector<double>& upper_bounds, const Labels& labels = {});
  // A gauge read when the text is produced (memory, readiness).
  void gauge_callback(const std::string& name, const std::string& help, std::function<double()> fn);
  // The Prometheus text exposition format (version 0.0.4), families sorted by name.
  std::string prometheus_text() const;

 private:
  struct Family;
  Family& family(const std::string& name, const std::string& help, int type);
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family>> families_;
};

// Latency buckets in seconds, 5 ms .. 60 s.
std::vector<double> latency_buckets_s();

// ---- Scheduler ------------------------------------------------------------------------

struct SchedulerConfig {
  std::uint32_t max_running = 16;  // sequences decoded together (the concurrency limit)
  std::uint32_t max_queue = 64;    // waiting requests; one more is refused (serve.overloaded)
  std::chrono::milliseconds queue_timeout{30000};  // serve.queue_timeout after this long
  // KV memory that running sequences may reserve (prompt + max_tokens positions each);
  // 0: no limit. A request larger than the whole budget is refused (engine.out_of_memory).
  std::uint64_t kv_budget_bytes = 0;
  std::uint32_t max_model_len = 0;  // per-request context; 0: the model's training context
  std::uint32_t n_threads = 0;      // per session; 0: hardware concurrency
};

// The seed's TaskScheduler: a bounded queue in front of a continuous-batching loop.
// Between steps it admits queued requests (FIFO) while the running count and the KV
// budget allow, creating a Session sized prompt + max_tokens; each step evaluates every
// new sequence's prompt and one token of every decoding sequence in one model::eval_batch,
// then samples each (engine::Generation) and hands the text to the waiting caller.
// Greedy outputs are those of engine::NativeEngine for the same request.
class Scheduler {
 public:
  Scheduler(std::shared_ptr<const model::Model> model, const SchedulerConfig& config,
            Logger& log, MetricsRegistry* metrics = nullptr);
  // Stops the loop: queued and running requests end with engine.unavailable.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Same contract as engine::BaseEngine::stream_predict, thread-safe, blocking. Text goes to
  // `sink` on the calling thread. The sink returning false or *cancel turning true ends the
  // request (its slot and KV are freed within one step). Errors: engine.invalid_request
  // (checked before queueing), serve.overloaded (queue full, at once), serve.queue_timeout,
  // engine.out_of_memory (the KV for prompt + max_tokens cannot be reserved),
  // engine.cancelled / engine.deadline_exceeded before the first token (a partial
  // Completion with finish_reason cancelled/deadline after), engine.unavailable when
  // draining. timings.queue_ms is the time spent queued.
  Result<engine::Completion> stream_predict(const engine::Request& request,
                                            const engine::TokenSink& sink,
                                            const std::atomic<bool>* cancel = nullptr);
  // Refuses new requests from now on (engine.unavailable); queued and running ones go on.
  void stop_accepting();
  // Waits until nothing is queued or running, or `until`; true when idle.
  bool wait_idle(std::chrono::steady_clock::time_point until);

  struct Stats {
    std::size_t queued = 0;
    std::size_t running = 0;
    std::uint64_t kv_reserved_bytes = 0;
    std::uint64_t steps = 0;      // eval_batch calls so far
    std::size_t max_batch = 0;    // the largest batch (entries) so far
  };
  Stats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// ---- Service: what every transport calls ----------------------------------------------

struct ServiceConfig {
  SchedulerConfig scheduler;
  bool use_mmap = true;
  bool warm_up = true;  // one short generation before becoming ready
};

// Holds the model and its scheduler, readiness and the metrics. Not ready while loading,
// after a failed load and while draining; stream_predict then returns engine.unavailable.
// Thread-safe.
class Service {
 public:
  explicit Service(Logger& log);
  ~Service();
  // Loads the GGUF model, starts the scheduler, runs the warm-up, then becomes ready.
  Result<void> load(const std::string& model_path, const ServiceConfig& config);
  // Serves through another engine instead of the native scheduler (an external engine:
  // a vLLM child process, an "openai" upstream): loads `model` into it, then becomes
  // ready. Requests go straight to engine->stream_predict, at most
  // config.scheduler.max_running at once; up to max_queue more wait (queue_timeout), the
  // next is refused with serve.overloaded. The engine batches on its own.
  Result<void> load_engine(std::unique_ptr<engine::BaseEngine> engine, const std::string& model,
                           const engine::EngineConfig& engine_config, const ServiceConfig& config);
  Result<engine::Completion> stream_predict(const engine::Request& request,
                                            const engine::TokenSink& sink,
                                            const std::atomic<bool>* cancel = nullptr);
  bool ready() const { return ready_.load(); }
  bool draining() const { return draining_.load(); }
  // Stops accepting (not ready), waits up to `timeout` for in-flight requests; true when
  // they all finished.
  bool drain(std::chrono::milliseconds timeout);
  MetricsRegistry& metrics() { return metrics_; }
  std::string metrics_text() const { return metrics_.prometheus_text(); }
  std::string model_id() const;  // the model file's stem, "" before load
  Scheduler* scheduler();        // null before load

 private:
  Logger& log_;
  MetricsRegistry metrics_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
  mutable std::mutex mu_;
  std::shared_ptr<const model::Model> model_;
  std::string model_id_;
  std::unique_ptr<Scheduler> scheduler_;
  std::atomic<std::uint64_t> next_id_{1};

  // The external-engine path (load_engine).
  Result<engine::Completion> engine_predict(const engine::Request& request, const engine::TokenSink& sink,
                                            const std::atomic<bool>* cancel);
  std::unique_ptr<engine::BaseEngine> engine_;
  SchedulerConfig gate_config_;
  std::mutex gate_mu_;
  std::condition_variable gate_cv_;
  std::uint32_t gate_running_ = 0;
  std::uint32_t gate_waiting_ = 0;
};

// Resident set size of this process in bytes (from /proc/self/statm), 0 when unknown.
std::uint64_t resident_memory_bytes();

// JSON lines appended to a file that can be reopened (SIGHUP after log rotation).
// Thread-safe.
class FileLogger final : public Logger {
 public:
  // io error when the file cannot be opened for appending.
  static Result<std::unique_ptr<FileLogger>> open(const std::string& path, LogLevel min_level,
                                                  std::string tool);
  ~FileLogger() override;
  void log(LogLevel level, std::string_view message,
           const std::vector<std::pair<std::string, std::string>>& fields = {}) override;
  // Closes and reopens the path (a rotated file is left to its new name). On failure the
  // old file stays in use.
  Result<void> reopen();

 private:
  FileLogger(std::string path, LogLevel min_level, std::string tool, std::FILE* f);
  std::string path_;
  LogLevel min_;
  std::string tool_;
  std::mutex mu_;
  std::FILE* file_;
  std::unique_ptr<StreamLogger> inner_;
};

// ---- gRPC transport (proto/inference.proto, grpc.health.v1) ---------------------------

struct GrpcOptions {
  std::string uds_path;        // "": no Unix socket. Created with mode 0600.
  int tcp_port = -1;           // -1: no TCP; 0: any free port (see GrpcServer::tcp_port)
  std::string tcp_host = "127.0.0.1";
  std::string api_key;         // TCP: required as "authorization: Bearer KEY" when set
  std::string tls_cert_pem, tls_key_pem;  // TCP TLS when both are set (PEM text)
  std::string tls_client_ca_pem;          // also require client certificates from this CA
  bool insecure_tcp = false;   // allow TCP without a key and without TLS
};

// Decodes a serialized cyllm.inference.v1.Request (untrusted bytes) into an engine request,
// checking each field's range: engine.invalid_request quoting the field and the bad value
// (its name also goes to *field). The deadline_ms becomes an absolute deadline from now.
// util.unsupported in a build without gRPC.
Result<engine::Request> parse_grpc_request(std::string_view bytes, std::string* field = nullptr);

class GrpcServer {
 public:
  // Binds and starts serving. serve.bind_failed when a socket cannot be opened (a live
  // server already on the Unix socket path, a taken port); engine.invalid_request when TCP
  // is asked for without --api-key or TLS and without insecure_tcp. A stale socket file
  // (nothing listening) is replaced.
  static Result<std::unique_ptr<GrpcServer>> start(const GrpcOptions& options, Service& service,
                                                   Logger& log);
  ~GrpcServer();
  int tcp_port() const;  // the bound port, -1 without TCP
  // grpc.health.v1 status of "" and "cyllm.inference.v1.InferenceService".
  void set_serving(bool serving);
  // Stops accepting calls; in-flight calls get until `deadline`, then are cancelled.
  void shutdown(std::chrono::system_clock::time_point deadline);

  struct Impl;

 private:
  explicit GrpcServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cyllm::serve
