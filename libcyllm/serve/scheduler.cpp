// The continuous-batching scheduler (see cyllm/serve.h).
//
// One thread owns the model work. Each loop: expire queued requests (cancel, deadline,
// queue timeout), admit from the queue head while a running slot and the KV budget allow
// (FIFO: a head that does not fit blocks the rest, so large requests are not starved),
// create their Sessions, then one model::eval_batch over all running sequences (a new
// one's whole prompt, one token of each decoding one), then sample each through its
// engine::Generation. Text pieces go into the request's own queue; the caller's thread,
// blocked in stream_predict, takes them out and runs the sink, so a slow client never
// stalls the batch. A sink that refuses, a raised cancel flag or a passed deadline ends
// the sequence at the next step, freeing its Session (KV cache) and KV reservation.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <new>
#include <optional>
#include <thread>

#include "cyllm/serve.h"
#include "engine/generate.h"

namespace cyllm::serve {
namespace {

using Clock = std::chrono::steady_clock;
using engine::Completion;
using engine::FinishReason;
using tokenizer::TokenId;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct Piece {
  std::string text;
  TokenId token;
};

// One request, shared by its caller and the scheduler thread.
struct Job {
  engine::Request request;
  std::vector<TokenId> prompt;
  std::string chat_format;
  const std::atomic<bool>* cancel = nullptr;
  Clock::time_point start;           // arrival
  Clock::time_point queue_deadline;  // serve.queue_timeout after this
  std::uint32_t max_tokens = 0;      // clamped to the session's room
  std::uint32_t n_ctx = 0;
  std::uint64_t kv_bytes = 0;

  // Scheduler thread only.
  std::unique_ptr<model::Session> session;
  std::unique_ptr<engine::Generation> gen;
  bool prefilling = true;
  TokenId next[1] = {0};
  double queue_ms = 0;
  bool reserved = false;

  // Caller <-> scheduler.
  std::atomic<bool> sink_closed{false};
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Piece> pieces;                  // guarded by mu
  std::optional<Result<Completion>> result;  // guarded by mu

  bool cancelled() const {
    return sink_closed.load() || (cancel != nullptr && cancel->load(std::memory_order_relaxed));
  }
  bool expired(Clock::time_point now) const { return request.deadline && now >= *request.deadline; }
};

}  // namespace

struct Scheduler::Impl {
  std::shared_ptr<const model::Model> model;
  SchedulerConfig cfg;
  Logger& log;
  std::uint64_t max_len = 0;

  mutable std::mutex mu;
  std::condition_variable cv;       // work arrived / stop
  std::condition_variable idle_cv;  // nothing queued or running
  std::deque<std::shared_ptr<Job>> queue;  // guarded by mu
  std::size_t n_running = 0;               // guarded by mu (admitted, not finished)
  std::uint64_t kv_reserved = 0;           // guarded by mu
  std::uint64_t steps = 0;                 // guarded by mu
  std::size_t max_batch = 0;               // guarded by mu
  bool accepting = true;                   // guarded by mu
  bool stopping = false;                   // guarded by mu
  std::vector<std::shared_ptr<Job>> running;  // scheduler thread only
  std::thread thread;

  // Metrics (null without a registry).
  struct M {
    Gauge* queue_size = nullptr;
    Gauge* running = nullptr;
    Gauge* kv_reserved = nullptr;
    Counter* prompt_tokens = nullptr;
    Counter* generation_tokens = nullptr;
    Counter* steps = nullptr;
    Histogram* ttft = nullptr;
    Histogram* tpot = nullptr;
    Histogram* e2e = nullptr;
    Histogram* queue_time = nullptr;
    Histogram* batch_size = nullptr;
  } m;
  MetricsRegistry* registry = nullptr;

  Impl(std::shared_ptr<const model::Model> mdl, const SchedulerConfig& c, Logger& l, MetricsRegistry* reg)
      : model(std::move(mdl)), cfg(c), log(l), registry(reg) {
    max_len = cfg.max_model_len ? cfg.max_model_len : model->hparams().n_ctx_train;
    if (cfg.max_running == 0) cfg.max_running = 1;
    if (reg) {
      m.queue_size = &reg->gauge("cyllm_queue_size", "Requests waiting for a running slot");
      m.running = &reg->gauge("cyllm_running_sequences", "Sequences in the running batch");
      m.kv_reserved = &reg->gauge("cyllm_kv_reserved_bytes", "KV cache bytes reserved by running sequences");
      m.prompt_tokens = &reg->counter("cyllm_prompt_tokens_total", "Prompt tokens evaluated");
      m.generation_tokens = &reg->counter("cyllm_generation_tokens_total", "Tokens generated");
      m.steps = &reg->counter("cyllm_batch_steps_total", "Batched model steps (eval_batch calls)");
      const auto lat = latency_buckets_s();
      m.ttft = &reg->histogram("cyllm_time_to_first_token_seconds", "Arrival to first token", lat);
      m.tpot = &reg->histogram("cyllm_time_per_output_token_seconds", "Mean time per output token after the first",
                               {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5});
      m.e2e = &reg->histogram("cyllm_e2e_request_latency_seconds", "Arrival to the end of the request", lat);
      m.queue_time = &reg->histogram("cyllm_queue_time_seconds", "Arrival to admission into the batch", lat);
      m.batch_size = &reg->histogram("cyllm_batch_size", "Sequences per batched step",
                                     {1, 2, 4, 8, 16, 32, 64, 128});
    }
  }

  void publish_locked() {
    if (m.queue_size) {
      m.queue_size->set(static_cast<double>(queue.size()));
      m.running->set(static_cast<double>(n_running));
      m.kv_reserved->set(static_cast<double>(kv_reserved));
    }
    if (queue.empty() && n_running == 0) idle_cv.notify_all();
  }

  // Hands the request's outcome to its caller and frees what it held.
  void finish(Job& job, Result<Completion> r) {
    job.session.reset();  // the KV cache goes now, not when the caller wakes up
    if (job.reserved) {   // and so do the slot and the reservation: a caller that reads the
      std::lock_guard lock(mu);  // stats or /metrics after its reply sees them free
      release(job);
      publish_locked();
    }
    if (r.ok()) {
      r->timings.queue_ms = job.queue_ms;
      r->chat_format = job.chat_format;
    }
    {
      std::lock_guard lock(job.mu);
      job.result = std::move(r);
    }
    job.cv.notify_all();
  }

  void release(Job& job) {  // called with mu held
    if (job.reserved) {
      kv_reserved -= job.kv_bytes;
      job.reserved = false;
      --n_running;
    }
  }

  engine::Generation::Deliver deliver_to(Job& job) {
    return [&job](std::string_view text, TokenId id) {
      {
        std::lock_guard lock(job.mu);
        job.pieces.push_back({std::string(text), id});
      }
      job.cv.notify_all();
      return !job.sink_closed.load();
    };
  }

  std::optional<FinishReason> interrupted(const Job& job, Clock::time_point now) const {
    if (job.cancelled()) return FinishReason::Cancelled;
    if (job.expired(now)) return FinishReason::Deadline;
    return std::nullopt;
  }

  // Ends a running job because of `reason` (cancel or deadline): an error before its first
  // token, a partial Completion after.
  void interrupt(Job& job, FinishReason reason) {
    if (job.gen && job.gen->started()) {
      job.gen->stop(reason, deliver_to(job));
      finish(job, std::move(job.gen->completion()));
    } else if (reason == FinishReason::Cancelled) {
      finish(job, Error(Errc::EngineCancelled, "the request was cancelled before its first token"));
    } else {
      finish(job, Error(Errc::DeadlineExceeded, "the deadline passed before the first token"));
    }
  }

  // Drops finished jobs from `running` and returns their reservations.
  void reap(std::vector<Job*>& finished) {
    if (finished.empty()) return;
    std::lock_guard lock(mu);
    for (Job* j : finished) release(*j);
    std::erase_if(running, [&](const std::shared_ptr<Job>& j) {
      return std::find(finished.begin(), finished.end(), j.get()) != finished.end();
    });
    finished.clear();
    publish_locked();
  }

  void loop() {
    std::vector<Job*> finished;
    while (true) {
      std::vector<std::shared_ptr<Job>> admitted;
      {
        std::unique_lock lock(mu);
        if (running.empty() && queue.empty() && !stopping) {
          publish_locked();
          cv.wait(lock, [&] { return stopping || !queue.empty(); });
        }
        if (stopping) break;
        // Expire queued requests.
        const auto now = Clock::now();
        for (auto it = queue.begin(); it != queue.end();) {
          Job& j = **it;
          std::optional<Error> err;
          if (j.cancelled()) err = Error(Errc::EngineCancelled, "the request was cancelled while queued");
          else if (j.expired(now)) err = Error(Errc::DeadlineExceeded, "the deadline passed while the request was queued");
          else if (now >= j.queue_deadline)
            err = Error(Errc::QueueTimeout, "the request waited " +
                                                std::to_string(cfg.queue_timeout.count()) +
                                                " ms in the queue without a free slot");
          if (err) {
            finish(j, *err);
            it = queue.erase(it);
          } else {
            ++it;
          }
        }
        // Admit from the head.
        while (!queue.empty() && n_running < cfg.max_running) {
          Job& j = *queue.front();
          if (cfg.kv_budget_bytes && kv_reserved + j.kv_bytes > cfg.kv_budget_bytes) break;
          kv_reserved += j.kv_bytes;
          j.reserved = true;
          ++n_running;
          admitted.push_back(queue.front());
          queue.pop_front();
        }
        publish_locked();
        if (running.empty() && admitted.empty()) {
          // Queued work that cannot start yet (never for long: only expiry runs here).
          cv.wait_for(lock, std::chrono::milliseconds(5));
          continue;
        }
      }

      // Sessions for the admitted (outside the lock: allocation may take a while).
      const auto t_admit = Clock::now();
      for (auto& jp : admitted) {
        Job& j = *jp;
        j.queue_ms = ms_between(j.start, t_admit);
        if (m.queue_time) m.queue_time->observe(j.queue_ms / 1000.0);
        model::SessionOptions so;
        so.n_ctx = j.n_ctx;
        so.n_threads = cfg.n_threads;
        Result<std::unique_ptr<model::Session>> s = Error(Errc::OutOfMemory, "");
        try {
          s = model::Session::create(model, so);
        } catch (const std::bad_alloc&) {
          s = Error(Errc::OutOfMemory, "out of memory creating the request's KV cache");
        }
        if (!s.ok()) {
          finish(j, s.error());
          finished.push_back(&j);
          running.push_back(jp);  // reaped below
          continue;
        }
        j.session = std::move(*s);
        j.gen = std::make_unique<engine::Generation>(model->tokenizer(), j.prompt, j.request,
                                                     j.max_tokens, j.start);
        running.push_back(jp);
      }
      reap(finished);

      // Cancellations and deadlines noticed between steps.
      const auto now = Clock::now();
      for (auto& jp : running)
        if (auto reason = interrupted(*jp, now)) {
          interrupt(*jp, *reason);
          finished.push_back(jp.get());
        }
      reap(finished);
      if (running.empty()) continue;

      // One batched step.
      std::vector<model::BatchEntry> entries;
      entries.reserve(running.size());
      for (auto& jp : running) {
        Job& j = *jp;
        if (j.prefilling) entries.push_back({j.session.get(), j.prompt});
        else entries.push_back({j.session.get(), std::span<const TokenId>(j.next, 1)});
      }
      const auto t_step = Clock::now();
      Result<void> step;
      try {
        step = model::eval_batch(entries);
      } catch (const std::bad_alloc&) {
        step = Error(Errc::OutOfMemory, "out of memory in a batched step; the batch's requests were ended");
      } catch (const std::exception& e) {
        step = Error(Errc::EngineInternal, std::string("a batched step threw: ") + e.what());
      }
      const auto t_done = Clock::now();
      {
        std::lock_guard lock(mu);
        ++steps;
        max_batch = std::max(max_batch, entries.size());
      }
      if (m.steps) {
        m.steps->inc();
        m.batch_size->observe(static_cast<double>(entries.size()));
      }
      if (!step.ok()) {
        log.log(LogLevel::Error, "a batched step failed", {{"error", step.error().to_string()}});
        for (auto& jp : running) {
          finish(*jp, step.error());
          finished.push_back(jp.get());
        }
        reap(finished);
        continue;
      }

      // Sample every sequence.
      for (auto& jp : running) {
        Job& j = *jp;
        const auto deliver = deliver_to(j);
        if (j.prefilling) {
          j.prefilling = false;
          j.gen->set_prompt_ms(ms_between(t_step, t_done));
          if (m.prompt_tokens) m.prompt_tokens->inc(static_cast<double>(j.prompt.size()));
          if (auto reason = interrupted(j, t_done)) {
            interrupt(j, *reason);
            finished.push_back(&j);
            continue;
          }
          if (j.max_tokens == 0) j.gen->stop(FinishReason::Length, deliver);
        }
        bool done = j.gen->done();
        if (!done) {
          done = j.gen->accept(j.session->logits(), deliver, [this, &j]() {
            return interrupted(j, Clock::now());
          });
          if (m.generation_tokens && j.gen->started()) m.generation_tokens->inc();
        }
        if (done) {
          finish(j, std::move(j.gen->completion()));
          finished.push_back(&j);
        } else {
          j.next[0] = j.gen->next_input();
        }
      }
      reap(finished);
    }

    // Stopping: everything still here ends with engine.unavailable.
    std::deque<std::shared_ptr<Job>> left;
    {
      std::lock_guard lock(mu);
      left.swap(queue);
    }
    for (auto& jp : running) left.push_back(jp);
    for (auto& jp : left) finish(*jp, Error(Errc::EngineUnavailable, "the server is shutting down"));
    std::lock_guard lock(mu);
    for (auto& jp : running) release(*jp);
    running.clear();
    publish_locked();
  }

  void record(const Result<Completion>& r, Clock::time_point start) {
    if (!registry) return;
    const double e2e_s = ms_between(start, Clock::now()) / 1000.0;
    if (r.ok()) {
      registry->counter("cyllm_requests_total", "Finished requests by outcome and code",
                        {{"outcome", "success"}, {"code", std::string(engine::finish_reason_name(r->finish_reason))}})
          .inc();
      m.e2e->observe(e2e_s);
      if (r->usage.completion_tokens > 0) m.ttft->observe(r->timings.ttft_ms / 1000.0);
      if (r->usage.completion_tokens > 1)
        m.tpot->observe(r->timings.generation_ms / 1000.0 / (r->usage.completion_tokens - 1));
    } else {
      registry->counter("cyllm_requests_total", "Finished requests by outcome and code",
                        {{"outcome", "error"}, {"code", std::string(r.error().id())}})
          .inc();
      m.e2e->observe(e2e_s);
    }
  }

  Result<Completion> submit(const engine::Request& request, const engine::TokenSink& sink,
                            const std::atomic<bool>* cancel, Clock::time_point start);
};

Result<Completion> Scheduler::Impl::submit(const engine::Request& request, const engine::TokenSink& sink,
                                           const std::atomic<bool>* cancel, Clock::time_point start) {
  CYLLM_TRY_VOID(engine::validate_request(request));
  auto job = std::make_shared<Job>();
  {
    auto prepared = CYLLM_TRY(engine::prepare_prompt(*model, request, max_len));
    job->prompt = std::move(prepared.tokens);
    job->chat_format = std::move(prepared.chat_format);
  }
  const std::uint64_t n_ctx =
      std::min<std::uint64_t>(max_len, job->prompt.size() + std::max(request.max_tokens, 1u));
  if (n_ctx > 0xffffffffull) return Error(Errc::InvalidRequest, "context length too large");
  job->n_ctx = static_cast<std::uint32_t>(n_ctx);
  job->max_tokens = static_cast<std::uint32_t>(std::min<std::uint64_t>(request.max_tokens, n_ctx - job->prompt.size()));
  job->kv_bytes = n_ctx * model->kv_bytes_per_token();
  if (cfg.kv_budget_bytes && job->kv_bytes > cfg.kv_budget_bytes)
    return Error(Errc::OutOfMemory, "the request needs " + std::to_string(job->kv_bytes) +
                                        " bytes of KV cache for " + std::to_string(n_ctx) +
                                        " positions (prompt + max_tokens); the server's KV budget is " +
                                        std::to_string(cfg.kv_budget_bytes) + " bytes");
  job->request = request;
  job->cancel = cancel;
  job->start = start;
  job->queue_deadline = start + cfg.queue_timeout;
  {
    std::lock_guard lock(mu);
    if (stopping || !accepting) return Error(Errc::EngineUnavailable, "the server is draining; no new requests");
    if (queue.size() >= cfg.max_queue)
      return Error(Errc::Overloaded, "the queue is full (" + std::to_string(cfg.max_queue) +
                                         " waiting, " + std::to_string(n_running) + " running)");
    queue.push_back(job);
    publish_locked();
  }
  cv.notify_all();

  // Hand the pieces to the sink on this thread until the scheduler has finished the job.
  std::deque<Piece> batch;
  while (true) {
    std::optional<Result<Completion>> result;
    {
      std::unique_lock lock(job->mu);
      job->cv.wait(lock, [&] { return !job->pieces.empty() || job->result.has_value(); });
      batch.swap(job->pieces);
      if (batch.empty() && job->result) result = std::move(job->result);
    }
    for (auto& p : batch)
      if (!job->sink_closed.load() && sink && !sink(p.text, p.token)) job->sink_closed.store(true);
    batch.clear();
    if (result) return std::move(*result);
  }
}

Scheduler::Scheduler(std::shared_ptr<const model::Model> model, const SchedulerConfig& config,
                     Logger& log, MetricsRegistry* metrics)
    : impl_(std::make_unique<Impl>(std::move(model), config, log, metrics)) {
  impl_->thread = std::thread([this] { impl_->loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->thread.join();
}

Result<Completion> Scheduler::stream_predict(const engine::Request& request, const engine::TokenSink& sink,
                                             const std::atomic<bool>* cancel) {
  const auto start = Clock::now();
  Result<Completion> r = Error(Errc::EngineInternal, "");
  try {
    r = impl_->submit(request, sink, cancel, start);
  } catch (const std::bad_alloc&) {
    r = Error(Errc::OutOfMemory, "out of memory while handling the request");
  } catch (const std::exception& e) {
    r = Error(Errc::EngineInternal, std::string("the request threw: ") + e.what());
  }
  impl_->record(r, start);
  return r;
}

void Scheduler::stop_accepting() {
  std::lock_guard lock(impl_->mu);
  impl_->accepting = false;
}

bool Scheduler::wait_idle(Clock::time_point until) {
  std::unique_lock lock(impl_->mu);
  return impl_->idle_cv.wait_until(lock, until, [&] { return impl_->queue.empty() && impl_->n_running == 0; });
}

Scheduler::Stats Scheduler::stats() const {
  std::lock_guard lock(impl_->mu);
  Stats s;
  s.queued = impl_->queue.size();
  s.running = impl_->n_running;
  s.kv_reserved_bytes = impl_->kv_reserved;
  s.steps = impl_->steps;
  s.max_batch = impl_->max_batch;
  return s;
}

}  // namespace cyllm::serve
