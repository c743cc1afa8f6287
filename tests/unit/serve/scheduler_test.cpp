// The continuous-batching scheduler against the real native engine on generated models:
// outputs identical to single-request runs, overflow, queue timeout, cancellation,
// deadlines, the KV budget and draining.
#include <doctest/doctest.h>

#include <thread>

#include "../model/tiny_model.h"
#include "cyllm/engine.h"
#include "cyllm/serve.h"
#include "test_support.h"
#include "slow_model.h"

using namespace cyllm;
using namespace cyllm::engine;
using namespace cyllm::serve;
using namespace std::chrono_literals;

namespace {

using SteadyClock = std::chrono::steady_clock;

Request greedy(std::string prompt, std::uint32_t n) {
  Request r;
  r.prompt = std::move(prompt);
  r.max_tokens = n;
  r.sampling.temperature = 0;
  return r;
}

std::shared_ptr<const model::Model> load(const std::string& path) {
  auto m = model::Model::load(path);
  REQUIRE_MESSAGE(m.ok(), (m.ok() ? "" : m.error().to_string()));
  return *m;
}

using test::write_slow_model;

template <class Pred>
bool wait_for(Pred p, std::chrono::milliseconds limit = 10s) {
  const auto until = SteadyClock::now() + limit;
  while (SteadyClock::now() < until) {
    if (p()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return p();
}

}  // namespace

TEST_CASE("concurrent requests get exactly the tokens of single-request runs, batched together") {
  test::TempDir dir;
  const std::string path = (dir.path() / "demo.gguf").string();
  REQUIRE(write_demo_model(path, 7).ok());
  NullLogger log;
  EngineConfig cfg;
  cfg.n_threads = 1;
  auto engine = make_native_engine(cfg, log);
  REQUIRE(engine->load_model(path, cfg).ok());

  std::vector<Request> reqs;
  for (int i = 0; i < 24; ++i) {
    Request r = greedy("prompt number " + std::to_string(i) + " says", 8 + (i % 5) * 7);
    if (i % 3 == 1) {  // seeded sampling is per sequence, so it is reproducible too
      r.sampling.temperature = 0.9f;
      r.sampling.seed = 100 + i;
    }
    if (i % 4 == 2) r.stop = {"e"};
    if (i % 6 == 5) {
      r.prompt.clear();
      r.messages = {{"system", "be brief"}, {"user", "hello " + std::to_string(i)}};
    }
    reqs.push_back(r);
  }
  std::vector<Completion> want;
  for (const auto& r : reqs) {
    auto c = engine->stream_predict(r, nullptr);
    REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().to_string()));
    want.push_back(*c);
  }

  MetricsRegistry metrics;
  SchedulerConfig sc;
  sc.max_running = 8;
  sc.max_queue = 64;
  sc.n_threads = 1;
  Scheduler sched(load(path), sc, log, &metrics);
  std::vector<Result<Completion>> got(reqs.size(), Error(Errc::EngineInternal, "not run"));
  std::vector<std::string> streamed(reqs.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < reqs.size(); ++i)
    threads.emplace_back([&, i] {
      const auto caller = std::this_thread::get_id();
      got[i] = sched.stream_predict(reqs[i], [&, i, caller](std::string_view t, TokenId) {
        CHECK(std::this_thread::get_id() == caller);  // pieces arrive on the caller's thread
        streamed[i] += t;
        return true;
      });
    });
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    CAPTURE(i);
    REQUIRE_MESSAGE(got[i].ok(), (got[i].ok() ? "" : got[i].error().to_string()));
    CHECK(got[i]->tokens == want[i].tokens);
    CHECK(got[i]->text == want[i].text);
    CHECK(streamed[i] == want[i].text);
    CHECK(got[i]->finish_reason == want[i].finish_reason);
    CHECK(got[i]->usage.prompt_tokens == want[i].usage.prompt_tokens);
    CHECK(got[i]->usage.completion_tokens == want[i].usage.completion_tokens);
    CHECK(got[i]->chat_format == want[i].chat_format);
    CHECK(got[i]->timings.queue_ms >= 0);
    CHECK(got[i]->timings.ttft_ms >= got[i]->timings.queue_ms);
  }
  const auto st = sched.stats();
  CHECK(st.max_batch > 1);
  CHECK(st.max_batch <= 8);
  CHECK(st.running == 0);
  CHECK(st.kv_reserved_bytes == 0);
  const std::string text = metrics.prometheus_text();
  CHECK(text.find("cyllm_time_to_first_token_seconds_count 24") != std::string::npos);
  CHECK(text.find("cyllm_running_sequences 0\n") != std::string::npos);
}

TEST_CASE("a full queue refuses at once while the running and queued requests succeed") {
  test::TempDir dir;
  const std::string path = write_slow_model(dir);
  NullLogger log;
  MetricsRegistry metrics;
  SchedulerConfig sc;
  sc.max_running = 1;
  sc.max_queue = 1;
  Scheduler sched(load(path), sc, log, &metrics);

  std::atomic<bool> cancel_a{false};
  std::atomic<int> pieces_a{0};
  Result<Completion> a = Error(Errc::EngineInternal, "not run");
  std::thread ta([&] {
    a = sched.stream_predict(greedy("a long one", 8000), [&](std::string_view, TokenId) {
      ++pieces_a;
      return true;
    }, &cancel_a);
  });
  REQUIRE(wait_for([&] { return pieces_a.load() > 0; }));
  Result<Completion> b = Error(Errc::EngineInternal, "not run");
  std::thread tb([&] { b = sched.stream_predict(greedy("second", 4), nullptr); });
  REQUIRE(wait_for([&] { return sched.stats().queued == 1; }));

  const auto t0 = SteadyClock::now();
  auto c = sched.stream_predict(greedy("third", 4), nullptr);
  CHECK(SteadyClock::now() - t0 < 1s);
  REQUIRE_FALSE(c.ok());
  CHECK(c.error().code() == Errc::Overloaded);

  cancel_a = true;
  ta.join();
  tb.join();
  REQUIRE_MESSAGE(a.ok(), (a.ok() ? "" : a.error().to_string()));
  CHECK(a->finish_reason == FinishReason::Cancelled);
  CHECK(a->usage.completion_tokens < 8000);
  REQUIRE_MESSAGE(b.ok(), (b.ok() ? "" : b.error().to_string()));
  CHECK(b->usage.completion_tokens > 0);
  CHECK(b->timings.queue_ms > 0);
  const std::string text = metrics.prometheus_text();
  CHECK(text.find("cyllm_requests_total{outcome=\"error\",code=\"serve.overloaded\"} 1") != std::string::npos);
  CHECK(text.find("cyllm_requests_total{outcome=\"success\",code=\"cancelled\"} 1") != std::string::npos);
}

TEST_CASE("a sink that refuses, a deadline and a queue timeout each end their request") {
  test::TempDir dir;
  const std::string path = write_slow_model(dir);
  NullLogger log;
  SchedulerConfig sc;
  sc.max_running = 1;
  sc.max_queue = 4;
  sc.queue_timeout = 150ms;
  Scheduler sched(load(path), sc, log);

  SUBCASE("sink refuses: cancelled, slot and KV freed") {
    int n = 0;
    auto r = sched.stream_predict(greedy("stop me", 8000), [&](std::string_view, TokenId) { return ++n < 3; });
    REQUIRE(r.ok());
    CHECK(r->finish_reason == FinishReason::Cancelled);
    CHECK(n == 3);
    CHECK(r->usage.completion_tokens < 100);
    REQUIRE(wait_for([&] { return sched.stats().running == 0; }, 1s));
    CHECK(sched.stats().kv_reserved_bytes == 0);
  }
  SUBCASE("deadline: a partial completion") {
    // The deadline leaves room for a few tokens however fast this build is (sanitizers).
    const auto t0 = SteadyClock::now();
    REQUIRE(sched.stream_predict(greedy("deadline", 1), nullptr).ok());
    const auto first = SteadyClock::now() - t0;
    Request req = greedy("deadline", 8000);
    req.deadline = SteadyClock::now() + 4 * first + 300ms;
    auto r = sched.stream_predict(req, nullptr);
    REQUIRE(r.ok());
    CHECK(r->finish_reason == FinishReason::Deadline);
    CHECK(r->usage.completion_tokens > 0);
    CHECK(r->usage.completion_tokens < 8000);
  }
  SUBCASE("deadline already passed: an error, no tokens") {
    Request req = greedy("late", 10);
    req.deadline = SteadyClock::now() - 1ms;
    auto r = sched.stream_predict(req, nullptr);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Errc::DeadlineExceeded);
  }
  SUBCASE("queue timeout while another request holds the only slot") {
    std::atomic<bool> cancel{false};
    std::thread t([&] { (void)sched.stream_predict(greedy("holder", 8000), nullptr, &cancel); });
    REQUIRE(wait_for([&] { return sched.stats().running == 1; }));
    auto r = sched.stream_predict(greedy("waiter", 4), nullptr);
    cancel = true;
    t.join();
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Errc::QueueTimeout);
  }
  SUBCASE("cancelled while queued") {
    std::atomic<bool> cancel_holder{false}, cancel_waiter{false};
    std::thread t([&] { (void)sched.stream_predict(greedy("holder", 8000), nullptr, &cancel_holder); });
    REQUIRE(wait_for([&] { return sched.stats().running == 1; }));
    Result<Completion> r = Error(Errc::EngineInternal, "not run");
    std::thread w([&] { r = sched.stream_predict(greedy("waiter", 4), nullptr, &cancel_waiter); });
    REQUIRE(wait_for([&] { return sched.stats().queued == 1; }));
    cancel_waiter = true;
    w.join();
    cancel_holder = true;
    t.join();
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Errc::EngineCancelled);
  }
}

TEST_CASE("admission reserves KV for prompt + max_tokens against the budget") {
  test::TempDir dir;
  const std::string path = (dir.path() / "demo.gguf").string();
  REQUIRE(write_demo_model(path, 7).ok());
  NullLogger log;
  auto model = load(path);
  SchedulerConfig sc;
  sc.kv_budget_bytes = 64 * model->kv_bytes_per_token();
  Scheduler sched(model, sc, log);
  auto big = sched.stream_predict(greedy("hello", 200), nullptr);
  REQUIRE_FALSE(big.ok());
  CHECK(big.error().code() == Errc::OutOfMemory);
  CHECK(big.error().message().find("KV budget") != std::string::npos);
  auto small = sched.stream_predict(greedy("hello", 20), nullptr);
  CHECK(small.ok());
}

TEST_CASE("bad requests are refused before queueing; draining refuses new ones") {
  test::TempDir dir;
  const std::string path = (dir.path() / "demo.gguf").string();
  REQUIRE(write_demo_model(path, 7).ok());
  NullLogger log;
  Scheduler sched(load(path), {}, log);
  Request bad = greedy("x", 4);
  bad.sampling.top_p = 2;
  auto r = sched.stream_predict(bad, nullptr);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::InvalidRequest);
  CHECK(r.error().message().find("top_p") != std::string::npos);
  auto empty = sched.stream_predict(greedy("", 4), nullptr);
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().code() == Errc::InvalidRequest);

  CHECK(sched.stream_predict(greedy("fine", 3), nullptr).ok());
  sched.stop_accepting();
  auto late = sched.stream_predict(greedy("late", 3), nullptr);
  REQUIRE_FALSE(late.ok());
  CHECK(late.error().code() == Errc::EngineUnavailable);
  CHECK(sched.wait_idle(SteadyClock::now() + 1s));
}
