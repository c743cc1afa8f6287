// The native engine end to end on the generated demo model (random weights, byte-level
// vocabulary): determinism, stop strings, limits, cancellation, deadlines, concurrency,
// out-of-memory recovery and load errors.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "cyllm/engine.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::engine;
using namespace std::chrono_literals;

namespace {

struct Fixture {
  test::TempDir dir;
  std::string path = (dir.path() / "demo.gguf").string();
  NullLogger log;
  std::unique_ptr<BaseEngine> engine;

  explicit Fixture(EngineConfig cfg = {}) {
    REQUIRE(write_demo_model(path, 7).ok());
    cfg.n_threads = 1;
    auto e = EngineFactory().create(cfg, log);
    REQUIRE(e.ok());
    engine = std::move(*e);
    auto r = engine->load_model(path, cfg);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().to_string()));
  }
};

Request greedy(std::string prompt, std::uint32_t n) {
  Request r;
  r.prompt = std::move(prompt);
  r.max_tokens = n;
  r.sampling.temperature = 0;
  return r;
}

Request sampled(std::string prompt, std::uint32_t n, std::uint64_t seed) {
  Request r;
  r.prompt = std::move(prompt);
  r.max_tokens = n;
  r.sampling.temperature = 1.0f;
  r.sampling.top_k = 0;
  r.sampling.top_p = 1.0f;
  r.sampling.min_p = 0.0f;
  r.sampling.seed = seed;
  return r;
}

Completion run_ok(BaseEngine& e, const Request& r, std::string* streamed = nullptr) {
  auto c = e.stream_predict(r, [&](std::string_view text, TokenId) {
    if (streamed) *streamed += text;
    return true;
  });
  REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().to_string()));
  return *c;
}

}  // namespace

TEST_CASE("the demo model is deterministic and written identically from the same seed") {
  test::TempDir dir;
  REQUIRE(write_demo_model((dir.path() / "a.gguf").string(), 3).ok());
  REQUIRE(write_demo_model((dir.path() / "b.gguf").string(), 3).ok());
  REQUIRE(write_demo_model((dir.path() / "c.gguf").string(), 4).ok());
  CHECK(test::read_text(dir.path() / "a.gguf") == test::read_text(dir.path() / "b.gguf"));
  CHECK(test::read_text(dir.path() / "a.gguf") != test::read_text(dir.path() / "c.gguf"));
  auto p = ensure_demo_model(dir.path().string());
  REQUIRE(p.ok());
  CHECK(std::filesystem::exists(*p));
  CHECK(ensure_demo_model(dir.path().string()).value() == *p);  // reused
}

TEST_CASE("greedy generation streams what it returns and is repeatable") {
  Fixture f;
  std::string streamed;
  Completion a = run_ok(*f.engine, greedy("Hello world", 24), &streamed);
  CHECK(a.text == streamed);
  CHECK(a.usage.prompt_tokens > 2);
  CHECK(a.usage.completion_tokens == a.tokens.size());
  CHECK(a.tokens.size() <= 24);
  if (a.finish_reason == FinishReason::Length) CHECK(a.tokens.size() == 24);
  Completion b = run_ok(*f.engine, greedy("Hello world", 24));
  CHECK(a.tokens == b.tokens);
  CHECK(a.text == b.text);
  CHECK(a.timings.ttft_ms > 0);
  CHECK(a.timings.prompt_tokens_per_s > 0);
  CHECK(a.timings.load_ms > 0);
}

TEST_CASE("the same seed gives the same text; another seed another") {
  Fixture f;
  Completion a = run_ok(*f.engine, sampled("Once", 32, 11));
  Completion b = run_ok(*f.engine, sampled("Once", 32, 11));
  Completion c = run_ok(*f.engine, sampled("Once", 32, 12));
  CHECK(a.tokens == b.tokens);
  CHECK(a.tokens != c.tokens);
}

TEST_CASE("max_tokens bounds the generation; 0 generates nothing") {
  Fixture f;
  Completion a = run_ok(*f.engine, sampled("abc", 5, 1));
  CHECK(a.tokens.size() <= 5);
  Completion z = run_ok(*f.engine, greedy("abc", 0));
  CHECK(z.tokens.empty());
  CHECK(z.text.empty());
  CHECK(z.finish_reason == FinishReason::Length);
}

TEST_CASE("a stop string ends generation and is never delivered") {
  Fixture f;
  Completion full = run_ok(*f.engine, sampled("The", 40, 5));
  REQUIRE(full.text.size() >= 12);
  const std::string stop = full.text.substr(6, 3);
  const std::string before = full.text.substr(0, full.text.find(stop));
  Request r = sampled("The", 40, 5);
  r.stop = {stop};
  std::string streamed;
  Completion c = run_ok(*f.engine, r, &streamed);
  CHECK(c.finish_reason == FinishReason::Stop);
  CHECK(c.text == before);
  CHECK(streamed == before);
}

TEST_CASE("the sink returning false stops the request with finish_reason cancelled") {
  Fixture f;
  int calls = 0;
  auto c = f.engine->stream_predict(sampled("x", 64, 2), [&](std::string_view, TokenId) { return ++calls < 3; });
  REQUIRE(c.ok());
  CHECK(c->finish_reason == FinishReason::Cancelled);
  CHECK(calls == 3);
}

TEST_CASE("the cancel flag stops generation mid-way; raised before the start it is an error") {
  Fixture f;
  std::atomic<bool> cancel{false};
  int calls = 0;
  auto c = f.engine->stream_predict(
      sampled("x", 64, 2),
      [&](std::string_view, TokenId) {
        if (++calls == 4) cancel = true;
        return true;
      },
      &cancel);
  REQUIRE(c.ok());
  CHECK(c->finish_reason == FinishReason::Cancelled);
  CHECK(c->tokens.size() < 64);
  auto again = f.engine->stream_predict(sampled("x", 8, 2), {}, &cancel);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code() == Errc::EngineCancelled);
}

TEST_CASE("deadlines: passed before the start is an error, reached mid-way ends with deadline") {
  Fixture f;
  Request r = sampled("x", 64, 2);
  r.deadline = std::chrono::steady_clock::now() - 1ms;
  auto e = f.engine->stream_predict(r, {});
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().code() == Errc::DeadlineExceeded);
  r.deadline = std::chrono::steady_clock::now() + 300ms;
  auto c = f.engine->stream_predict(r, [](std::string_view, TokenId) {
    std::this_thread::sleep_for(50ms);
    return true;
  });
  REQUIRE(c.ok());
  CHECK(c->finish_reason == FinishReason::Deadline);
  CHECK(c->tokens.size() < 64);
}

TEST_CASE("four threads on one engine get exactly their single-threaded results") {
  Fixture f;
  std::vector<Request> reqs = {sampled("alpha", 24, 1), sampled("beta beta", 24, 2),
                               greedy("gamma", 24), sampled("alpha", 24, 3)};
  std::vector<Completion> alone;
  for (const auto& r : reqs) alone.push_back(run_ok(*f.engine, r));
  std::vector<Result<Completion>> together(reqs.size(), Error(Errc::Internal, "not run"));
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < reqs.size(); ++i)
    threads.emplace_back([&, i] { together[i] = f.engine->stream_predict(reqs[i], {}); });
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    REQUIRE(together[i].ok());
    CHECK(together[i]->tokens == alone[i].tokens);
    CHECK(together[i]->text == alone[i].text);
  }
}

TEST_CASE("chat requests use the model's template or the one asked for") {
  Fixture f;
  Request r = greedy("", 4);
  r.messages = {{"system", "Be brief."}, {"user", "Hi"}};
  Completion c = run_ok(*f.engine, r);
  CHECK(c.chat_format == "chatml");
  // The markers are single tokens in a chat prompt, characters in a plain one.
  Request plain = greedy(*apply_chat_template(ChatFormat::ChatML, r.messages), 4);
  const std::uint32_t plain_tokens = run_ok(*f.engine, plain).usage.prompt_tokens;
  CHECK(plain_tokens > c.usage.prompt_tokens + 30);  // 5 markers of 10-12 characters
  plain.parse_special = true;
  CHECK(run_ok(*f.engine, plain).usage.prompt_tokens == c.usage.prompt_tokens);
  r.chat_template = "llama3";
  CHECK(run_ok(*f.engine, r).chat_format == "llama3");
  r.chat_template = "vicuna";
  auto bad = f.engine->stream_predict(r, {});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code() == Errc::InvalidRequest);
  CHECK(bad.error().message().find("vicuna") != std::string::npos);
}

TEST_CASE("bad requests are engine.invalid_request") {
  Fixture f;
  Request r = greedy("", 4);
  auto empty = f.engine->stream_predict(r, {});
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().code() == Errc::InvalidRequest);
  r = sampled("x", 4, 1);
  r.sampling.top_p = 0;
  CHECK(f.engine->stream_predict(r, {}).error().code() == Errc::InvalidRequest);
  r = greedy(std::string(3000, 'a'), 4);  // longer than the 2048-token context
  auto longp = f.engine->stream_predict(r, {});
  REQUIRE_FALSE(longp.ok());
  CHECK(longp.error().code() == Errc::InvalidRequest);
  CHECK(longp.error().message().find("context") != std::string::npos);
}

TEST_CASE("memory usage counts weights and live KV caches; unload frees the model") {
  Fixture f;
  const double idle = f.engine->get_memory_usage();
  CHECK(idle > 0);
  double during = 0;
  run_ok(*f.engine, greedy("x", 2));
  auto c = f.engine->stream_predict(greedy("x", 4), [&](std::string_view, TokenId) {
    during = f.engine->get_memory_usage();
    return true;
  });
  REQUIRE(c.ok());
  if (!c->text.empty()) CHECK(during > idle);
  CHECK(f.engine->get_memory_usage() == doctest::Approx(idle));
  f.engine->unload_model();
  CHECK_FALSE(f.engine->loaded());
  CHECK(f.engine->get_memory_usage() == 0);
  auto r = f.engine->stream_predict(greedy("x", 2), {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::EngineUnavailable);
  f.engine->unload_model();  // idempotent
}

TEST_CASE("load errors are engine.model_load_failed quoting the cause; the read path works too") {
  NullLogger log;
  test::TempDir dir;
  auto e = make_native_engine({}, log);
  auto missing = e->load_model((dir.path() / "nope.gguf").string(), {});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code() == Errc::ModelLoadFailed);
  CHECK(missing.error().message().find("nope.gguf") != std::string::npos);
  test::write_file(dir.path() / "junk.gguf", std::string(64, 'x'));
  auto junk = e->load_model((dir.path() / "junk.gguf").string(), {});
  REQUIRE_FALSE(junk.ok());
  CHECK(junk.error().message().find("gguf.bad_magic") != std::string::npos);
  CHECK_FALSE(e->loaded());

  const std::string path = (dir.path() / "demo.gguf").string();
  REQUIRE(write_demo_model(path, 7).ok());
  EngineConfig read;
  read.extra_config["use_mmap"] = "false";
  REQUIRE(e->load_model(path, read).ok());
  Completion c = run_ok(*e, greedy("Hello world", 8));
  Fixture mapped;
  CHECK(run_ok(*mapped.engine, greedy("Hello world", 8)).tokens == c.tokens);

  EngineConfig tp;
  tp.tensor_parallel_size = 2;
  CHECK(e->load_model(path, tp).error().code() == Errc::InvalidRequest);
  EngineConfig extra;
  extra.extra_config["nonsense"] = "1";
  CHECK(e->load_model(path, extra).error().message().find("nonsense") != std::string::npos);
  EngineConfig bad_flag;
  bad_flag.extra_config["repack"] = "maybe";
  CHECK(e->load_model(path, bad_flag).error().message().find("repack=\"maybe\" is not a boolean") != std::string::npos);
  // Weights in place (repack=false) give the tokens of the repacked default.
  EngineConfig in_place;
  in_place.extra_config["repack"] = "false";
  REQUIRE(e->load_model(path, in_place).ok());
  CHECK(run_ok(*e, greedy("Hello world", 8)).tokens == c.tokens);
  // onednn is a boolean too; on, a short prompt stays on the native kernels (the same tokens).
  EngineConfig bad_onednn;
  bad_onednn.extra_config["onednn"] = "perhaps";
  CHECK(e->load_model(path, bad_onednn).error().message().find("onednn=\"perhaps\" is not a boolean") !=
        std::string::npos);
  EngineConfig onednn;
  onednn.extra_config["onednn"] = "true";
  REQUIRE(e->load_model(path, onednn).ok());
  CHECK(run_ok(*e, greedy("Hello world", 8)).tokens == c.tokens);
}

// RLIMIT_AS cannot be used under ASan (its shadow memory); gcc and clang say so differently.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CYLLM_TEST_SANITIZED 1
#endif
#endif
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && !defined(CYLLM_TEST_SANITIZED)
TEST_CASE("out of memory during a request: engine.out_of_memory, then the engine serves again") {
  // In a child with a 1 GiB address-space limit (ulimit -v), ask for a KV cache of
  // 2^26 positions (32 GiB on the demo model).
  Fixture f([] {
    EngineConfig c;
    c.max_model_len = 1u << 26;
    return c;
  }());
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    rlimit lim{1ull << 30, 1ull << 30};
    if (::setrlimit(RLIMIT_AS, &lim) != 0) ::_exit(10);
    auto huge = f.engine->stream_predict(greedy("Hello", (1u << 26) - 64), {});
    if (huge.ok()) ::_exit(11);
    if (huge.error().code() != Errc::OutOfMemory) ::_exit(12);
    auto normal = f.engine->stream_predict(greedy("Hello", 8), {});
    if (!normal.ok()) ::_exit(13);
    if (f.engine->get_memory_usage() > 0.01) ::_exit(14);  // the huge cache is not counted
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
#endif
