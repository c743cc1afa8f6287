// The Service: model loading, warm-up, readiness, drain, and one log line per request.
#include <filesystem>

#include "cyllm/serve.h"

namespace cyllm::serve {
namespace {
using Clock = std::chrono::steady_clock;
}

Service::Service(Logger& log) : log_(log) {
  metrics_.gauge_callback("cyllm_ready", "1 when the server accepts requests (model loaded, not draining)",
                          [this] { return ready_.load() ? 1.0 : 0.0; });
  metrics_.gauge_callback("cyllm_process_resident_memory_bytes", "Resident set size of the server process",
                          [] { return static_cast<double>(resident_memory_bytes()); });
}

Service::~Service() {
  std::lock_guard lock(mu_);
  scheduler_.reset();
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
  if (config.warm_up) {
    engine::Request warm;
    warm.prompt = "Hello";
    warm.max_tokens = 2;
    warm.sampling.temperature = 0;
    warm.id = "warm-up";
    auto r = sched->stream_predict(warm, nullptr);
    if (!r.ok()) return Error(Errc::ModelLoadFailed, "the warm-up request failed: " + r.error().to_string());
  }
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
  {
    std::lock_guard lock(mu_);
    s = scheduler_.get();
  }
  if (draining_.load()) return Error(Errc::EngineUnavailable, "the server is draining; no new requests");
  if (!s || !ready_.load()) return Error(Errc::EngineUnavailable, "the model is not loaded yet");
  const std::string id = request.id.empty() ? "req-" + std::to_string(next_id_++) : request.id;
  auto r = s->stream_predict(request, sink, cancel);
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
  if (!s) return true;
  s->stop_accepting();
  const bool idle = s->wait_idle(Clock::now() + timeout);
  log_.log(idle ? LogLevel::Info : LogLevel::Warn,
           idle ? "drained: every in-flight request finished" : "drain timeout: requests still running");
  return idle;
}

}  // namespace cyllm::serve
