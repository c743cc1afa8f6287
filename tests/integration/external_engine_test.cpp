// External engines end to end, with cy-llm-serve itself (native engine, a generated model)
// as the engine's OpenAI server: ProcessEngine's start, readiness, streaming, cancel,
// unload, a kill -9 mid-stream and the restart after it, restart back-off, a server that
// never becomes ready, an OOM death, and no zombie left behind; then
// `cy-llm-serve --engine openai --upstream` fronting a second cy-llm-serve.
#include <doctest/doctest.h>

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cyllm/engine.h"
#include "cyllm/external.h"
#include "cyllm/http_client.h"
#include "external/child_process.h"
#include "external/openai_client.h"
#include "../unit/serve/slow_model.h"
#include "serve_process.h"
#include "test_support.h"

using namespace cyllm;
using namespace std::chrono_literals;

namespace {

using SteadyClock = std::chrono::steady_clock;

// Children of this process as (pid, state letter), from /proc.
std::vector<std::pair<pid_t, char>> children() {
  std::vector<std::pair<pid_t, char>> out;
  DIR* d = ::opendir("/proc");
  REQUIRE(d != nullptr);
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const pid_t pid = static_cast<pid_t>(std::atol(e->d_name));
    const auto st = external::read_proc_stat(pid);
    if (st && st->ppid == ::getpid()) out.emplace_back(pid, st->state);
  }
  ::closedir(d);
  return out;
}

// Launches cy-llm-serve on the given port; remembers the last port and counts launches.
struct ServeLauncher {
  std::shared_ptr<std::atomic<int>> port = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> launches = std::make_shared<std::atomic<int>>(0);
  external::LaunchBuilder launcher() const {
    return [port = port, launches = launches](const std::string& model, const engine::EngineConfig& cfg,
                                               std::uint16_t p, const std::string& work) -> Result<external::LaunchSpec> {
      external::LaunchSpec s;
      s.argv = {(test::tools_dir() / "cy-llm-serve").string(), "-m", model, "--uds", work + "/grpc.sock",
                "--http-port", std::to_string(p), "--no-warmup", "-t", "1"};
      if (cfg.max_model_len) {
        s.argv.push_back("-c");
        s.argv.push_back(std::to_string(cfg.max_model_len));
      }
      s.health_path = "/health/ready";
      s.oom_patterns = {"engine.out_of_memory"};
      port->store(p);
      ++*launches;
      return s;
    };
  }
};

external::ProcessEngineOptions serve_options(const test::TempDir& dir, const ServeLauncher& l) {
  external::ProcessEngineOptions o;
  o.name = "cy-llm-serve";
  o.launcher = l.launcher();
  o.work_dir = (dir.path() / "engine").string();
  o.ready_timeout = 60s;
  o.stop_grace = 10s;
  o.poll_interval = 50ms;
  return o;
}

engine::Request greedy(const std::string& prompt, std::uint32_t n) {
  engine::Request r;
  r.prompt = prompt;
  r.max_tokens = n;
  r.sampling.temperature = 0;
  return r;
}

std::string get_metrics(int port) {
  external::ClientOptions c;
  auto r = external::http_get("http://127.0.0.1:" + std::to_string(port) + "/metrics", c, 10s);
  REQUIRE(r.ok());
  return r->body;
}

// What the native engine answers for a greedy prompt: the reference for every transport.
engine::Completion native_greedy(const std::string& model, const std::string& prompt, std::uint32_t n) {
  test::RecordingLogger log;
  auto native = engine::make_native_engine({}, log);
  REQUIRE(native->load_model(model, {}).ok());
  auto r = native->stream_predict(greedy(prompt, n), nullptr);
  REQUIRE(r.ok());
  return *r;
}

void require_loaded(engine::BaseEngine& eng, const std::string& model) {
  auto r = eng.load_model(model, {});
  REQUIRE_MESSAGE(r.ok(), r.error().to_string());
}

void check_no_children_left() {
  // stop() reaps the leader; nothing of ours may linger, zombie or alive.
  const auto kids = children();
  for (const auto& k : kids) INFO("child " << k.first << " state " << k.second);
  CHECK(kids.empty());
}

}  // namespace

TEST_CASE("process engine: start, ready, stream, unload; greedy text equals the native engine's") {
  test::TempDir dir;
  const std::string model = test::write_slow_model(dir);
  test::RecordingLogger log;
  const auto want = native_greedy(model, "Hello world", 16);

  ServeLauncher l;
  auto eng = external::make_process_engine(serve_options(dir, l), log);
  CHECK(eng->name() == "cy-llm-serve");
  CHECK_FALSE(eng->loaded());
  auto r0 = eng->stream_predict(greedy("x", 1), nullptr);
  REQUIRE_FALSE(r0.ok());
  CHECK(r0.error().code() == Errc::EngineUnavailable);

  REQUIRE_MESSAGE(eng->load_model(model, {}).ok(), test::read_text(dir.path() / "engine" / "engine.log"));
  CHECK(eng->loaded());
  CHECK(eng->get_memory_usage() > 0.001);  // the child's RSS, in GB
  auto kids = children();
  REQUIRE(kids.size() == 1);
  CHECK(kids[0].second != 'Z');

  std::string streamed;
  int pieces = 0;
  auto got = eng->stream_predict(greedy("Hello world", 16), [&](std::string_view t, engine::TokenId id) {
    streamed += t;
    ++pieces;
    CHECK(id == -1);
    return true;
  });
  REQUIRE_MESSAGE(got.ok(), got.error().to_string());
  CHECK(got->text == want.text);
  CHECK(streamed == got->text);
  CHECK(pieces > 1);
  CHECK(got->finish_reason == engine::FinishReason::Length);
  CHECK(got->usage.completion_tokens == 16);
  CHECK(got->usage.prompt_tokens == want.usage.prompt_tokens);

  // Several requests at once go through (the upstream batches them).
  std::vector<std::thread> ts;
  std::atomic<int> same{0};
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      auto r = eng->stream_predict(greedy("Hello world", 16), nullptr);
      if (r.ok() && r->text == want.text) ++same;
    });
  for (auto& t : ts) t.join();
  CHECK(same.load() == 4);

  eng->unload_model();
  CHECK_FALSE(eng->loaded());
  CHECK(eng->get_memory_usage() == 0);
  check_no_children_left();
  auto after = eng->stream_predict(greedy("x", 1), nullptr);
  REQUIRE_FALSE(after.ok());
  CHECK(after.error().code() == Errc::EngineUnavailable);
  CHECK(test::read_text(dir.path() / "engine" / "engine.log").find("---- cy-llm: starting cy-llm-serve") !=
        std::string::npos);
  eng->unload_model();  // idempotent
}

TEST_CASE("process engine: GPU memory from NVML per process; cancel closes the stream and the server frees the request") {
  test::TempDir dir;
  const std::string model = test::write_slow_model(dir);
  test::RecordingLogger log;
  ServeLauncher l;
  auto opts = serve_options(dir, l);
  opts.nvml_library = test::fake_nvml_path().string();
  auto eng = external::make_process_engine(opts, log);
  require_loaded(*eng, model);

  // Memory: NVML's per-process accounting for the child's group when a driver answers
  // (here the fake libnvidia-ml), else the group's RSS.
  const std::string nvml_data = (dir.path() / "fake-nvml.txt").string();
  ::setenv("CYLLM_FAKE_NVML_DATA", nvml_data.c_str(), 1);
  const double rss_gb = eng->get_memory_usage();  // no data file yet: no GPU, so RSS
  CHECK(rss_gb > 0.001);
  CHECK(rss_gb < 2.0);
  REQUIRE(children().size() == 1);
  const pid_t child = children()[0].first;
  test::write_file(nvml_data, "gpu|NVIDIA H100 80GB HBM3|GPU-1|00000000:01:00.0|85899345920|1000|9.0|0\n"
                              "gpu|NVIDIA H100 80GB HBM3|GPU-2|00000000:02:00.0|85899345920|1000|9.0|0\n"
                              "proc|0|" + std::to_string(child) + "|3000000000\n"
                              "proc|1|" + std::to_string(child) + "|1500000000\n"
                              "proc|1|1|7000000000\n"  // another group's process
                              "proc|1|" + std::to_string(child) + "|-\n");
  CHECK(eng->get_memory_usage() == doctest::Approx(4.5));
  ::unsetenv("CYLLM_FAKE_NVML_DATA");

  std::atomic<bool> cancel{false};
  int pieces = 0;
  const auto t0 = SteadyClock::now();
  auto r = eng->stream_predict(greedy("Once upon a time", 100000), [&](std::string_view, engine::TokenId) {
    if (++pieces == 3) cancel = true;
    return true;
  }, &cancel);
  REQUIRE_MESSAGE(r.ok(), r.error().to_string());
  CHECK(r->finish_reason == engine::FinishReason::Cancelled);
  CHECK(pieces >= 3);
  CHECK(SteadyClock::now() - t0 < 60s);  // not the 100000 tokens
  // A sink that refuses ends the request the same way.
  auto r2 = eng->stream_predict(greedy("Once upon a time", 100000), [&](std::string_view, engine::TokenId) { return false; });
  REQUIRE(r2.ok());
  CHECK(r2->finish_reason == engine::FinishReason::Cancelled);
  // The upstream saw both hang-ups: its metrics count them as cancelled, nothing runs.
  std::string m;
  for (int i = 0; i < 100; ++i) {
    m = get_metrics(l.port->load());
    if (m.find("cyllm_running_sequences 0") != std::string::npos &&
        m.find("cyllm_requests_total{outcome=\"success\",code=\"cancelled\"} 2") != std::string::npos)
      break;
    std::this_thread::sleep_for(50ms);
  }
  CHECK(m.find("cyllm_requests_total{outcome=\"success\",code=\"cancelled\"} 2") != std::string::npos);
  CHECK(m.find("cyllm_running_sequences 0") != std::string::npos);
  auto next = eng->stream_predict(greedy("Hello", 4), nullptr);
  REQUIRE(next.ok());
  CHECK(next->usage.completion_tokens == 4);
  eng->unload_model();
  check_no_children_left();
}

TEST_CASE("process engine: kill -9 mid-stream -> engine.unavailable with the log tail, then a clean restart") {
  test::TempDir dir;
  const std::string model = test::write_slow_model(dir);
  test::RecordingLogger log;
  ServeLauncher l;
  auto opts = serve_options(dir, l);
  opts.restart_backoff = 30s;
  auto eng = external::make_process_engine(opts, log);
  require_loaded(*eng, model);
  REQUIRE(children().size() == 1);
  const pid_t first = children()[0].first;

  std::atomic<bool> started{false};
  Result<engine::Completion> r = Error(Errc::EngineInternal, "not run");
  std::thread t([&] {
    r = eng->stream_predict(greedy("Once upon a time", 100000), [&](std::string_view, engine::TokenId) {
      started = true;
      return true;
    });
  });
  for (int i = 0; i < 2000 && !started; ++i) std::this_thread::sleep_for(5ms);
  REQUIRE(started.load());
  REQUIRE(::kill(first, SIGKILL) == 0);
  t.join();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::EngineUnavailable);
  const std::string msg = r.error().message();
  CHECK(msg.find("killed by signal 9") != std::string::npos);
  CHECK(msg.find("during the request") != std::string::npos);
  CHECK(msg.find("last lines of") != std::string::npos);
  CHECK(msg.find("listening") != std::string::npos);  // the child's own stdout, from its log

  // The first crash restarts at once, on the next request.
  auto again = eng->stream_predict(greedy("Hello", 4), nullptr);
  REQUIRE_MESSAGE(again.ok(), again.error().to_string());
  CHECK(again->usage.completion_tokens == 4);
  CHECK(l.launches->load() == 2);
  auto kids = children();
  REQUIRE(kids.size() == 1);
  CHECK(kids[0].first != first);
  CHECK(kids[0].second != 'Z');

  // Died while idle: also restarted by the next request.
  REQUIRE(::kill(kids[0].first, SIGKILL) == 0);
  std::this_thread::sleep_for(200ms);
  auto third = eng->stream_predict(greedy("Hello", 4), nullptr);
  REQUIRE_MESSAGE(third.ok(), third.error().to_string());
  CHECK(l.launches->load() == 3);
  eng->unload_model();
  check_no_children_left();
}

TEST_CASE("process engine: a restart that fails backs off, and requests say when it retries") {
  test::TempDir dir;
  const std::string model = test::write_slow_model(dir);
  test::RecordingLogger log;
  ServeLauncher good;
  auto launches = std::make_shared<int>(0);
  auto opts = serve_options(dir, good);
  opts.restart_backoff = 30s;
  opts.ready_timeout = 20s;
  auto inner = good.launcher();
  opts.launcher = [inner, launches](const std::string& m, const engine::EngineConfig& c, std::uint16_t p,
                                    const std::string& w) -> Result<external::LaunchSpec> {
    if (++*launches == 1) return inner(m, c, p, w);
    external::LaunchSpec s;  // every restart: a server that dies at once
    s.argv = {"/bin/sh", "-c", "echo 'fatal: weights moved' >&2; exit 3"};
    return s;
  };
  auto eng = external::make_process_engine(opts, log);
  auto loaded = eng->load_model(model, {});
  REQUIRE_MESSAGE(loaded.ok(), loaded.error().to_string());
  REQUIRE(children().size() == 1);
  REQUIRE(::kill(children()[0].first, SIGKILL) == 0);
  std::this_thread::sleep_for(200ms);
  auto r1 = eng->stream_predict(greedy("Hello", 4), nullptr);  // restart now; it fails
  REQUIRE_FALSE(r1.ok());
  CHECK(r1.error().code() == Errc::EngineUnavailable);
  CHECK(r1.error().message().find("restarting the cy-llm-serve engine failed") != std::string::npos);
  CHECK(r1.error().message().find("exit status 3") != std::string::npos);
  CHECK(r1.error().message().find("fatal: weights moved") != std::string::npos);
  auto r2 = eng->stream_predict(greedy("Hello", 4), nullptr);  // within the back-off: no new start
  REQUIRE_FALSE(r2.ok());
  CHECK(r2.error().message().find("restarting it in") != std::string::npos);
  CHECK(*launches == 2);
  eng->unload_model();
  check_no_children_left();
}

TEST_CASE("process engine: a server that never becomes ready times out, quoting its log; its group is killed") {
  test::TempDir dir;
  test::RecordingLogger log;
  external::ProcessEngineOptions o;
  o.name = "slowpoke";
  o.work_dir = (dir.path() / "engine").string();
  o.ready_timeout = 1500ms;
  o.poll_interval = 50ms;
  o.stop_grace = 500ms;
  o.launcher = [](const std::string&, const engine::EngineConfig&, std::uint16_t, const std::string&)
      -> Result<external::LaunchSpec> {
    external::LaunchSpec s;
    // A worker in the background (like an engine's GPU worker), and a leader ignoring SIGTERM.
    s.argv = {"/bin/sh", "-c", "trap '' TERM; sleep 600 & echo worker $!; echo loading shards 1/4; echo still loading; wait"};
    return s;
  };
  auto eng = external::make_process_engine(o, log);
  const auto t0 = SteadyClock::now();
  auto r = eng->load_model("m", {});
  REQUIRE_FALSE(r.ok());
  CHECK(SteadyClock::now() - t0 < 20s);
  CHECK(r.error().code() == Errc::ModelLoadFailed);
  const std::string msg = r.error().message();
  CHECK(msg.find("was not ready within 1.5 s") != std::string::npos);
  CHECK(msg.find("still loading") != std::string::npos);
  CHECK_FALSE(eng->loaded());
  const auto w = msg.find("worker ");
  REQUIRE(w != std::string::npos);
  const pid_t worker = static_cast<pid_t>(std::atol(msg.c_str() + w + 7));
  REQUIRE(worker > 0);
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {  // reparented to init, which reaps it
    std::ifstream stat("/proc/" + std::to_string(worker) + "/stat");
    std::string line;
    gone = !std::getline(stat, line) || line.find(") Z ") != std::string::npos;
    if (!gone) std::this_thread::sleep_for(10ms);
  }
  CHECK(gone);
  check_no_children_left();
}

TEST_CASE("process engine: death before ready with an OOM line is engine.out_of_memory; a missing program is named") {
  test::TempDir dir;
  test::RecordingLogger log;
  external::ProcessEngineOptions o;
  o.name = "vllm";
  o.work_dir = (dir.path() / "engine").string();
  o.poll_interval = 50ms;
  o.launcher = [](const std::string&, const engine::EngineConfig&, std::uint16_t, const std::string&)
      -> Result<external::LaunchSpec> {
    external::LaunchSpec s;
    s.argv = {"/bin/sh", "-c",
              "echo 'INFO loading model'; echo 'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB' >&2; exit 1"};
    s.oom_patterns = {"CUDA out of memory"};
    return s;
  };
  auto eng = external::make_process_engine(o, log);
  auto r = eng->load_model("m", {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::OutOfMemory);
  CHECK(r.error().message().find("exited before it was ready (exit status 1)") != std::string::npos);
  CHECK(r.error().message().find("Tried to allocate 2.00 GiB") != std::string::npos);
  check_no_children_left();

  o.launcher = [](const std::string&, const engine::EngineConfig&, std::uint16_t, const std::string&)
      -> Result<external::LaunchSpec> {
    external::LaunchSpec s;
    s.argv = {"cy-llm-no-such-engine-server", "serve"};
    return s;
  };
  auto missing = external::make_process_engine(o, log);
  auto m = missing->load_model("m", {});
  REQUIRE_FALSE(m.ok());
  CHECK(m.error().code() == Errc::ModelLoadFailed);
  CHECK(m.error().message().find("cannot start \"cy-llm-no-such-engine-server\"") != std::string::npos);
}

TEST_CASE("cy-llm-serve --engine openai --upstream: a second cy-llm-serve proxied end to end") {
  test::TempDir dir;
  const std::string model = test::write_slow_model(dir);
  test::ServerProcess upstream({"-m", model, "--uds", (dir.path() / "a.sock").string(), "--http-port", "0",
                                "--api-key", "k-upstream", "-t", "1"},
                               dir.path() / "a.err");
  auto up_ready = upstream.wait_event("ready");
  REQUIRE_MESSAGE(!up_ready.is_null(), test::read_text(dir.path() / "a.err"));
  const int up_port = up_ready["http_port"].get<int>();
  const std::string up_url = "http://127.0.0.1:" + std::to_string(up_port) + "/v1";

  test::ServerProcess proxy({"--engine", "openai", "--upstream", up_url, "--upstream-key", "k-upstream", "--uds",
                             (dir.path() / "b.sock").string(), "--http-port", "0"},
                            dir.path() / "b.err");
  auto px_ready = proxy.wait_event("ready");
  REQUIRE_MESSAGE(!px_ready.is_null(), test::read_text(dir.path() / "b.err"));
  CHECK(px_ready["model"] == "slow");  // the upstream's model, under its name
  const int px_port = px_ready["http_port"].get<int>();

  const std::string body = R"({"model":"slow","prompt":"Hello world","max_tokens":12,"temperature":0})";
  http::HttpClient direct("127.0.0.1", static_cast<std::uint16_t>(up_port));
  auto a = direct.request("POST", "/v1/completions", body, {{"Authorization", "Bearer k-upstream"}});
  REQUIRE(a.ok());
  REQUIRE(a->status == 200);
  http::HttpClient via("127.0.0.1", static_cast<std::uint16_t>(px_port));
  auto b = via.request("POST", "/v1/completions", body);
  REQUIRE(b.ok());
  REQUIRE_MESSAGE(b->status == 200, b->body);
  const auto ja = nlohmann::json::parse(a->body), jb = nlohmann::json::parse(b->body);
  CHECK(jb["choices"][0]["text"] == ja["choices"][0]["text"]);
  CHECK(jb["usage"]["completion_tokens"] == 12);
  CHECK(jb["model"] == "slow");

  // Streaming chat through the proxy: the pieces add up to the upstream's answer.
  const std::string chat = R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":8,"temperature":0)";
  auto ca = direct.request("POST", "/v1/chat/completions", chat + "}", {{"Authorization", "Bearer k-upstream"}});
  REQUIRE(ca.ok());
  std::string joined;
  http::SseReader sse;
  bool done = false;
  auto cb = via.request("POST", "/v1/chat/completions", chat + R"(,"stream":true})", {}, [&](std::string_view bytes) {
    sse.feed(bytes, [&](std::string_view data) {
      if (data == "[DONE]") {
        done = true;
        return;
      }
      auto j = nlohmann::json::parse(data);
      if (j["choices"][0]["delta"].contains("content")) joined += j["choices"][0]["delta"]["content"].get<std::string>();
    });
    return true;
  });
  REQUIRE(cb.ok());
  CHECK(cb->status == 200);
  CHECK(done);
  CHECK(joined == nlohmann::json::parse(ca->body)["choices"][0]["message"]["content"].get<std::string>());

  auto models = via.request("GET", "/v1/models");
  REQUIRE(models.ok());
  CHECK(nlohmann::json::parse(models->body)["data"][0]["id"] == "slow");
  auto metrics = via.request("GET", "/metrics");
  REQUIRE(metrics.ok());
  CHECK(metrics->body.find("cyllm_requests_total{outcome=\"success\",code=\"length\"} 2") != std::string::npos);

  // A wrong key for the upstream: the proxy refuses to start and says why.
  test::ServerProcess bad({"--engine", "openai", "--upstream", up_url, "--upstream-key", "wrong", "--uds",
                           (dir.path() / "c.sock").string()},
                          dir.path() / "c.err");
  CHECK(bad.wait_exit() == 1);
  const std::string err = test::read_text(dir.path() / "c.err");
  CHECK(err.find("401") != std::string::npos);
  CHECK(err.find("check the API key") != std::string::npos);

  // SIGTERM drains the proxy like any cy-llm-serve.
  proxy.signal(SIGTERM);
  auto stopped = proxy.wait_event("stopped");
  REQUIRE_FALSE(stopped.is_null());
  CHECK(stopped["drained"] == true);
  CHECK(proxy.wait_exit() == 0);
}

TEST_CASE("cy-llm-serve --engine vllm --venv: the registry's launch starts the venv's vllm and serves through it") {
  // The venv's bin/vllm is a stand-in that serves with cy-llm-serve (tests/fixtures/fake_engines).
  test::TempDir dir;
  const std::string model = test::write_slow_model(dir);
  const auto want = native_greedy(model, "Hello world", 10);

  const std::string serve_bin = (test::tools_dir() / "cy-llm-serve").string();
  ::setenv("CYLLM_SERVE", serve_bin.c_str(), 1);
  const std::string venv = (test::fixtures_dir() / "fake_engines").string();
  const std::string work = (dir.path() / "vllm-work").string();
  test::ServerProcess server({"--engine", "vllm", "--engine-version", "0.9.2", "--venv", venv, "-m", model, "-c", "512",
                              "--work-dir", work, "--uds", (dir.path() / "s.sock").string(), "--http-port", "0",
                              "--log-format", "json", "-v"},
                             dir.path() / "err.log");
  auto ready = server.wait_event("ready");
  ::unsetenv("CYLLM_SERVE");
  REQUIRE_MESSAGE(!ready.is_null(), test::read_text(dir.path() / "err.log") << test::read_text(work + "/engine.log"));
  const std::string engine_log = test::read_text(work + "/engine.log");
  // vLLM 0.9.2's launch from the registry: `vllm serve MODEL`, loopback, the context from -c,
  // and --disable-log-requests (request logging was on by default before 0.10.1).
  CHECK(engine_log.find("fake vllm: serve " + model + " --host 127.0.0.1 --port ") != std::string::npos);
  CHECK(engine_log.find("--max-model-len 512") != std::string::npos);
  CHECK(engine_log.find("--disable-log-requests") != std::string::npos);

  http::HttpClient c("127.0.0.1", static_cast<std::uint16_t>(ready["http_port"].get<int>()));
  auto r = c.request("POST", "/v1/completions", R"({"prompt":"Hello world","max_tokens":10,"temperature":0})");
  REQUIRE(r.ok());
  REQUIRE_MESSAGE(r->status == 200, r->body);
  CHECK(nlohmann::json::parse(r->body)["choices"][0]["text"] == want.text);

  // The engine's pid, from cy-llm-serve's log; SIGTERM stops the engine with the server.
  const std::string err = test::read_text(dir.path() / "err.log");
  const auto at = err.find("\"pid\":\"");
  REQUIRE(at != std::string::npos);
  const pid_t engine_pid = static_cast<pid_t>(std::atol(err.c_str() + at + 7));
  REQUIRE(engine_pid > 0);
  CHECK(::kill(engine_pid, 0) == 0);
  server.signal(SIGTERM);
  CHECK(server.wait_exit() == 0);
  CHECK(::kill(engine_pid, 0) == -1);
}

TEST_CASE("cy-llm-run --engine vllm --venv: one prompt through the engine's server, which is stopped afterwards") {
  test::TempDir dir;
  const std::string model = test::write_slow_model(dir);
  const auto want = native_greedy(model, "Hello world", 10);

  const std::string venv = (test::fixtures_dir() / "fake_engines").string();
  const std::string work = (dir.path() / "work").string();
  auto run = test::run_tool("cy-llm-run",
                            {"--engine", "vllm", "--venv", venv, "-m", model, "-p", "Hello world", "-n", "10", "--temp",
                             "0", "--work-dir", work, "-v", "--log-format", "json"},
                            "", {"CYLLM_SERVE=" + (test::tools_dir() / "cy-llm-serve").string()});
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(run.out == want.text + "\n");
  // The server it started is gone.
  const auto at = run.err.find("\"pid\":\"");
  REQUIRE(at != std::string::npos);
  const pid_t pid = static_cast<pid_t>(std::atol(run.err.c_str() + at + 7));
  REQUIRE(pid > 0);
  CHECK(::kill(pid, 0) == -1);
  CHECK(test::read_text(work + "/engine.log").find("fake vllm: serve " + model) != std::string::npos);

  // The same through --engine openai against a running cy-llm-serve.
  test::ServerProcess upstream({"-m", model, "--uds", (dir.path() / "u.sock").string(), "--http-port", "0", "-t", "1"},
                               dir.path() / "u.err");
  auto ready = upstream.wait_event("ready");
  REQUIRE(!ready.is_null());
  auto via = test::run_tool("cy-llm-run", {"--engine", "openai", "--upstream",
                                           "http://127.0.0.1:" + std::to_string(ready["http_port"].get<int>()),
                                           "-p", "Hello world", "-n", "10", "--temp", "0"});
  INFO(via.err);
  CHECK(via.exit_code == 0);
  CHECK(via.out == want.text + "\n");
}
