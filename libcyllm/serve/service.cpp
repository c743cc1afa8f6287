// The Service: model loading, warm-up, readiness, drain, and one log line per request.
#include <filesystem>

#include "cyllm/serve.h"

namespace cyllm::serve {
namespace {
using Clock = std::chrono::steady_clock;

// One short greedy generation before the server says it is ready: the first request then
// does not pay for page faults, caches and (for external engines) lazy compilation.
Result<void> warm_up(const std::function<Result<engine::Completion>(const engine::Request&)>& predict) {
  engine::Request warm;
  warm.prompt = "Hello";
  warm.max_tokens = 2;
  warm.sampling.temperature = 0;
  warm.id = "warm-up";
  auto r = predict(warm);
  if (!r.ok()) return Error(Errc::ModelLoadFailed, "the warm-up request failed: " + r.error().to_string());
  return {};
}

}  // namespace

Service::Service(Logger& log) : log_(log) {
  metrics_.gauge_callback("cyllm_ready", "1 when the server accepts requests (model loaded, not draining)",
                          [this] { return ready_.load() ? 1.0 : 0.0; });
  metrics_.gauge_callback("cyllm_process_resident_memory_bytes", "Resident set size of the server process",
                          [] { return static_cast<double>(resident_memory_bytes()); });
}

Service::~Service() {
  std::lock_guard lock(mu_);
  scheduler_.reset();
  if (engine_) engine_->unload_model();
}

Result<void> Service::load_engine(std::unique_ptr<engine::BaseEngine> eng, const std::string& model,
                                  const engine::EngineConfig& engine_config, const ServiceConfig& config) {
  const auto t0 = Clock::now();
  if (auto r = eng->load_model(model, engine_config); !r.ok()) return r;
  const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  log_.log(LogLevel::Info, "engine loaded",
           {{"engine", std::string(eng->name())}, {"model", model}, {"load_ms", std::to_string(load_ms)}});
  engine::BaseEngine* raw = eng.get();
  if (config.warm_up) CYLLM_TRY_VOID(warm_up([raw](const engine::Request& r) { return raw->stream_predict(r, nullptr); }));
  metrics_.gauge_callback("cyllm_engine_memory_bytes", "Memory the engine holds (an external engine: its process group)",
                          [raw] { return raw->get_memory_usage() * 1e9; });
  metrics_.gauge_callback("cyllm_running_sequences", "Requests running in the engine", [this] {
    std::lock_guard lock(gate_mu_);
    return static_cast<double>(gate_running_);
  });
  metrics_.gauge_callback("cyllm_queue_size", "Requests waiting for a running slot", [this] {
    std::lock_guard lock(gate_mu_);
    return static_cast<double>(gate_waiting_);
  });
  {
    std::lock_guard lock(mu_);
    gate_config_ = config.scheduler;
    model_id_ = engine_config.model_id.empty() ? std::filesystem::path(model).stem().string() : engine_config.model_id;
    engine_ = std::move(eng);
  }
  if (!draining_.load()) ready_.store(true);
  log_.log(LogLevel::Info, "ready", {{"model", model_id()}});
  return {};
}

Result<engine::Completion> Service::engine_predict(const engine::Request& request, const engine::TokenSink& sink,
                                                   const std::atomic<bool>* cancel) {
  const auto start = Clock::now();
  auto finish = [&](Result<engine::Completion> r) {
    const double e2e_s = std::chrono::duration<double>(Clock::now() - start).count();
    const auto lat = latency_buckets_s();
    metrics_.histogram("cyllm_e2e_request_latency_seconds", "Arrival to the end of the request", lat).observe(e2e_s);
    if (r.ok()) {
      metrics_.counter("cyllm_requests_total", "Finished requests by outcome and code",
                       {{"outcome", "success"}, {"code", std::string(engine::finish_reason_name(r->finish_reason))}})
          .inc();
      metrics_.counter("cyllm_prompt_tokens_total", "Prompt tokens evaluated").inc(r->usage.prompt_tokens);
      metrics_.counter("cyllm_generation_tokens_total", "Tokens generated").inc(r->usage.completion_tokens);
      if (r->usage.completion_tokens > 0)
        metrics_.histogram("cyllm_time_to_first_token_seconds", "Arrival to first token", lat)
            .observe((r->timings.queue_ms + r->timings.ttft_ms) / 1000.0);
      if (r->usage.completion_tokens > 1)
        metrics_.histogram("cyllm_time_per_output_token_seconds", "Mean time per output token after the first", lat)
            .observe(r->timings.generation_ms / 1000.0 / (r->usage.completion_tokens - 1));
    } else {
      metrics_.counter("cyllm_requests_total", "Finished requests by outcome and code",
                       {{"outcome", "error"}, {"code", std::string(r.error().id())}})
          .inc();
    }
    return r;
  };
  {
    std::unique_lock lock(gate_mu_);
    if (gate_running_ >= gate_config_.max_running) {
      if (gate_waiting_ >= gate_config_.max_queue)
        return finish(Error(Errc::Overloaded, "the server is at capacity (" + std::to_string(gate_running_) +
                                                  " running, " + std::to_string(gate_waiting_) + " queued); retry later"));
      ++gate_waiting_;
      const bool got = gate_cv_.wait_until(lock, start + gate_config_.queue_timeout,
                                           [&] { return gate_running_ < gate_config_.max_running; });
      --gate_waiting_;
      if (!got)
        return finish(Error(Errc::QueueTimeout, "the request waited " +
                                                    std::to_string(gate_config_.queue_timeout.count()) +
                                                    " ms for a free slot; retry later"));
    }
    ++gate_running_;
  }
  const double queue_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  metrics_.histogram("cyllm_queue_time_seconds", "Arrival to admission into the batch", latency_buckets_s())
      .observe(queue_ms / 1000.0);
  auto r = engine_->stream_predict(request, sink, cancel);
  {
    std::lock_guard lock(gate_mu_);
    --gate_running_;
  }
  gate_cv_.notify_all();
  if (r.ok()) r->timings.queue_ms = queue_ms;
  return finish(std::move(r));
}

Result<void> Service::load(const std::string& model_path, const ServiceConfig& config) {
  const auto t0 = Clock::now();
  model::LoadOptions opts;
  opts.file.use_mmap = config.use_mmap;
  auto m = model::Model::load(model_path, opts);
  if (!m.ok()) {
    Error e(Errc::ModelLoadFailed, "cannot load \"" + model_path + "\": " + std::string(m.error().id()) +
                                       ": " + m.error().message());
    return e;
  }
  std::shared_ptr<const model::Model> model = *m;
  auto sched = std::make_unique<Scheduler>(model, config.scheduler, log_, &metrics_);
  const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  metrics_.gauge("cyllm_model_weight_bytes", "Bytes of model weights").set(static_cast<double>(model->weight_bytes()));
  log_.log(LogLevel::Info, "model loaded", {{"path", model_path}, {"load_ms", std::to_string(load_ms)}});
  if (config.warm_up)
    CYLLM_TRY_VOID(warm_up([&sched](const engine::Request& r) { return sched->stream_predict(r, nullptr); }));
  metrics_.gauge_callback("cyllm_engine_memory_bytes", "Model weights plus the KV cache reserved by running sequences",
                          [this, weights = model->weight_bytes()] {
                            Scheduler* s = scheduler();
                            return static_cast<double>(weights + (s ? s->stats().kv_reserved_bytes : 0));
                          });
  {
    std::lock_guard lock(mu_);
    model_ = model;
    model_id_ = std::filesystem::path(model_path).stem().string();
    scheduler_ = std::move(sched);
  }
  if (!draining_.load()) ready_.store(true);
  log_.log(LogLevel::Info, "ready", {{"model", model_id()}});
  return {};
}

std::string Service::model_id() const {
  std::lock_guard lock(mu_);
  return model_id_;
}

Scheduler* Service::scheduler() {
  std::lock_guard lock(mu_);
  return scheduler_.get();
}

Result<engine::Completion> Service::stream_predict(const engine::Request& request,
                                                   const engine::TokenSink& sink,
                                                   const std::atomic<bool>* cancel) {
  Scheduler* s = nullptr;
  bool external = false;
  {
    std::lock_guard lock(mu_);
    s = scheduler_.get();
    external = engine_ != nullptr;
  }
  if (draining_.load()) return Error(Errc::EngineUnavailable, "the server is draining; no new requests");
  if ((!s && !external) || !ready_.load()) return Error(Errc::EngineUnavailable, "the model is not loaded yet");
  const std::string id = request.id.empty() ? "req-" + std::to_string(next_id_++) : request.id;
  auto r = external ? engine_predict(request, sink, cancel) : s->stream_predict(request, sink, cancel);
  if (r.ok()) {
    log_.log(LogLevel::Info, "request finished",
             {{"request_id", id},
              {"finish_reason", std::string(engine::finish_reason_name(r->finish_reason))},
              {"prompt_tokens", std::to_string(r->usage.prompt_tokens)},
              {"completion_tokens", std::to_string(r->usage.completion_tokens)},
              {"queue_ms", std::to_string(r->timings.queue_ms)},
              {"ttft_ms", std::to_string(r->timings.ttft_ms)}});
  } else {
    log_.log(LogLevel::Info, "request failed", {{"request_id", id}, {"error", r.error().to_string()}});
  }
  return r;
}

bool Service::drain(std::chrono::milliseconds timeout) {
  draining_.store(true);
  ready_.store(false);
  Scheduler* s = scheduler();
  bool idle = true;
  if (s) {
    s->stop_accepting();
    idle = s->wait_idle(Clock::now() + timeout);
  } else {
    std::unique_lock lock(gate_mu_);
    idle = gate_cv_.wait_for(lock, timeout, [&] { return gate_running_ == 0 && gate_waiting_ == 0; });
  }
  log_.log(idle ? LogLevel::Info : LogLevel::Warn,
           idle ? "drained: every in-flight request finished" : "drain timeout: requests still running");
  return idle;
}

}  // namespace cyllm::serve
