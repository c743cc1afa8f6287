// The OpenAI-compatible HTTP API end to end: the server on an ephemeral 127.0.0.1 port,
// real sockets, and the native engine on the demo model (random weights) as `predict`.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cyllm/engine.h"
#include "cyllm/http_client.h"
#include "cyllm/http_server.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::engine;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

class LockedLogger final : public Logger {
 public:
  void log(LogLevel, std::string_view message, const std::vector<std::pair<std::string, std::string>>& fields) override {
    std::lock_guard lk(mu_);
    std::string line(message);
    for (const auto& f : fields) line += " " + f.first + "=" + f.second;
    lines_.push_back(line);
  }
  std::vector<std::string> lines() {
    std::lock_guard lk(mu_);
    return lines_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

// The demo model on a native engine, wrapped as the server's predict callback with hooks
// the tests use: "overload" as a prompt makes predict answer serve.overloaded, a per-token
// delay makes generations long enough to interrupt, and each call's outcome is recorded.
struct Harness {
  test::TempDir dir;
  NullLogger engine_log;
  LockedLogger log;
  std::unique_ptr<BaseEngine> engine;
  std::atomic<int> token_delay_ms{0};
  std::atomic<int> calls{0};
  std::atomic<int> returned{0};
  std::atomic<int> cancel_seen{0};
  std::mutex mu;
  std::vector<FinishReason> finishes;
  std::unique_ptr<http::HttpServer> server;

  Harness() {
    const std::string path = (dir.path() / "demo.gguf").string();
    REQUIRE(write_demo_model(path, 7).ok());
    EngineConfig cfg;
    cfg.n_threads = 1;
    auto e = EngineFactory().create(cfg, engine_log);
    REQUIRE(e.ok());
    engine = std::move(*e);
    auto r = engine->load_model(path, cfg);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().to_string()));
  }

  http::PredictFn predict() {
    return [this](const Request& r, const TokenSink& sink, const std::atomic<bool>* cancel) -> Result<Completion> {
      ++calls;
      if (r.prompt == "overload") {
        ++returned;
        return Error(Errc::Overloaded, "the queue is full (8 waiting)");
      }
      const TokenSink slow = [&](std::string_view t, TokenId id) {
        if (int d = token_delay_ms.load()) std::this_thread::sleep_for(std::chrono::milliseconds(d));
        return sink(t, id);
      };
      auto c = engine->stream_predict(r, slow, cancel);
      if (cancel != nullptr && cancel->load()) ++cancel_seen;
      {
        std::lock_guard lk(mu);
        if (c.ok()) finishes.push_back(c->finish_reason);
      }
      ++returned;
      return c;
    };
  }

  std::uint16_t start(http::HttpServerConfig cfg = {}, std::function<bool()> ready = {}) {
    cfg.model_id = "demo";
    http::HttpServerCallbacks cb;
    cb.predict = predict();
    cb.metrics_text = [] { return std::string("cyllm_scheduler_queue_size 0\n"); };
    cb.ready = std::move(ready);
    auto s = http::HttpServer::start(cfg, cb, log);
    REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().to_string()));
    server = std::move(*s);
    return server->port();
  }

  // The engine's own answer for a greedy completion, to compare the server's with.
  std::string direct(const std::string& prompt, std::uint32_t n, bool chat = false) {
    Request r;
    if (chat) r.messages = {{"user", prompt}};
    else r.prompt = prompt;
    r.max_tokens = n;
    r.sampling.temperature = 0;
    auto c = engine->stream_predict(r, {});
    REQUIRE(c.ok());
    return c->text;
  }
};

json completion_body(const std::string& prompt, int max_tokens, bool stream = false) {
  return {{"model", "demo"}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", stream}};
}

json chat_body(const std::string& content, int max_tokens, bool stream = false) {
  return {{"messages", json::array({{{"role", "user"}, {"content", content}}})},
          {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", stream}};
}

http::ClientResponse post(http::HttpClient& c, const std::string& path, const json& body,
                          const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  auto r = c.request("POST", path, body.dump(), headers);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().to_string()));
  return *r;
}

struct Streamed {
  int status = 0;
  std::string content_type;
  std::vector<json> chunks;
  bool done = false;
  std::string text;  // the concatenated pieces
};

Streamed stream(http::HttpClient& c, const std::string& path, const json& body) {
  Streamed s;
  http::SseReader sse;
  auto r = c.request("POST", path, body.dump(), {}, [&](std::string_view bytes) {
    sse.feed(bytes, [&](std::string_view data) {
      if (data == "[DONE]") {
        s.done = true;
        return;
      }
      json j = json::parse(data);
      if (!j["choices"].empty()) {
        const json& ch = j["choices"][0];
        if (ch.contains("text")) s.text += ch["text"].get<std::string>();
        if (ch.contains("delta") && ch["delta"].contains("content")) s.text += ch["delta"]["content"].get<std::string>();
      }
      s.chunks.push_back(std::move(j));
    });
    return true;
  });
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().to_string()));
  s.status = r->status;
  if (const std::string* t = r->header("content-type")) s.content_type = *t;
  return s;
}

// A raw socket, for clients that misbehave.
int raw_connect(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

std::string metrics(std::uint16_t port) {
  http::HttpClient c("127.0.0.1", port);
  auto r = c.request("GET", "/metrics");
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  return r->body;
}

}  // namespace

TEST_CASE("non-streaming completions and chat answer what the engine answers") {
  Harness h;
  const std::uint16_t port = h.start();
  http::HttpClient c("127.0.0.1", port);
  auto r = post(c, "/v1/completions", completion_body("Hello world", 12));
  REQUIRE(r.status == 200);
  json j = json::parse(r.body);
  CHECK(j["object"] == "text_completion");
  CHECK(j["model"] == "demo");
  CHECK(j["id"].get<std::string>().rfind("cmpl-", 0) == 0);
  CHECK(j["choices"][0]["text"] == h.direct("Hello world", 12));
  CHECK(j["usage"]["completion_tokens"].get<int>() <= 12);
  CHECK(j["usage"]["total_tokens"] == j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());
  REQUIRE(r.header("x-request-id") != nullptr);

  // The same connection serves the next request (keep-alive).
  auto chat = post(c, "/v1/chat/completions", chat_body("Hi there", 10), {{"X-Request-Id", "abc-123"}});
  REQUIRE(chat.status == 200);
  json cj = json::parse(chat.body);
  CHECK(cj["object"] == "chat.completion");
  CHECK(cj["id"] == "chatcmpl-abc-123");
  CHECK(cj["choices"][0]["message"]["role"] == "assistant");
  CHECK(cj["choices"][0]["message"]["content"] == h.direct("Hi there", 10, true));
  // The request's log line (written once the answer is out) carries its id.
  bool logged = false;
  for (int i = 0; i < 200 && !logged; ++i) {
    for (const auto& l : h.log.lines()) logged |= l.find("request_id=abc-123 method=POST path=/v1/chat/completions status=200") != std::string::npos;
    if (!logged) std::this_thread::sleep_for(10ms);
  }
  CHECK(logged);
}

TEST_CASE("SSE streaming for both endpoints ends with [DONE] and matches the non-streamed text") {
  Harness h;
  const std::uint16_t port = h.start();
  http::HttpClient c("127.0.0.1", port);
  Streamed s = stream(c, "/v1/completions", completion_body("Once upon", 16, true));
  CHECK(s.status == 200);
  CHECK(s.content_type == "text/event-stream");
  CHECK(s.done);
  CHECK(s.text == h.direct("Once upon", 16));
  REQUIRE(s.chunks.size() >= 2);
  CHECK(s.chunks.back()["choices"][0]["finish_reason"].is_string());
  for (std::size_t i = 0; i + 1 < s.chunks.size(); ++i) CHECK(s.chunks[i]["choices"][0]["finish_reason"].is_null());

  json body = chat_body("Tell me", 16, true);
  body["stream_options"] = {{"include_usage", true}};
  Streamed chat = stream(c, "/v1/chat/completions", body);
  CHECK(chat.status == 200);
  CHECK(chat.done);
  CHECK(chat.text == h.direct("Tell me", 16, true));
  REQUIRE(chat.chunks.size() >= 3);
  CHECK(chat.chunks.front()["choices"][0]["delta"]["role"] == "assistant");
  const json& usage = chat.chunks.back();
  CHECK(usage["choices"].empty());
  CHECK(usage["usage"]["completion_tokens"].get<int>() >= 1);
  const json& fin = chat.chunks[chat.chunks.size() - 2];
  CHECK(fin["choices"][0]["finish_reason"].is_string());
  CHECK(fin["usage"].is_null());
}

TEST_CASE("64 concurrent clients get exactly their single-request greedy outputs") {
  Harness h;
  const std::uint16_t port = h.start();
  constexpr int kClients = 64;
  std::vector<std::string> prompts, expected;
  for (int i = 0; i < 8; ++i) {
    prompts.push_back("prompt number " + std::to_string(i) + " says");
    expected.push_back(h.direct(prompts.back(), 12));
  }
  std::vector<std::string> got(kClients);
  std::vector<int> status(kClients, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      http::HttpClient c("127.0.0.1", port);
      const std::string& p = prompts[i % 8];
      if (i % 2 == 0) {
        auto r = c.request("POST", "/v1/completions", completion_body(p, 12).dump());
        if (!r.ok()) return;
        status[i] = r->status;
        if (r->status == 200) got[i] = json::parse(r->body)["choices"][0]["text"].get<std::string>();
      } else {
        std::string text;
        bool done = false;
        http::SseReader sse;
        auto r = c.request("POST", "/v1/completions", completion_body(p, 12, true).dump(), {}, [&](std::string_view b) {
          sse.feed(b, [&](std::string_view d) {
            if (d == "[DONE]") done = true;
            else text += json::parse(d)["choices"][0]["text"].get<std::string>();
          });
          return true;
        });
        if (!r.ok()) return;
        status[i] = done ? r->status : -1;
        got[i] = text;
      }
    });
  }
  for (auto& t : threads) t.join();
  int same = 0;
  for (int i = 0; i < kClients; ++i) {
    CAPTURE(i);
    CHECK(status[i] == 200);
    CHECK(got[i] == expected[i % 8]);
    same += got[i] == expected[i % 8];
  }
  CHECK(same == kClients);
  CHECK(h.calls.load() == kClients);
}

TEST_CASE("slow-loris clients do not block others and are cut at the header deadline") {
  Harness h;
  http::HttpServerConfig cfg;
  cfg.header_timeout = 4000ms;
  cfg.n_workers = 2;  // fewer workers than slow clients: they must not hold one
  const std::uint16_t port = h.start(cfg);
  std::vector<int> loris;
  for (int i = 0; i < 8; ++i) {
    loris.push_back(raw_connect(port));
    ::send(loris.back(), "POST /v1/completions HTTP/1.1\r\nHo", 33, MSG_NOSIGNAL);
  }
  std::atomic<bool> stop{false};
  std::thread dribble([&] {
    const std::string rest = "st: x\r\nContent-Length: 5\r\n";
    for (std::size_t k = 0; k < rest.size() && !stop; ++k) {  // 6 s in all
      for (int fd : loris) ::send(fd, &rest[k], 1, MSG_NOSIGNAL);
      std::this_thread::sleep_for(250ms);
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  http::HttpClient c("127.0.0.1", port);
  for (int i = 0; i < 5; ++i) {
    auto r = post(c, "/v1/completions", completion_body("quick", 4));
    CHECK(r.status == 200);
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  CHECK_MESSAGE(ms < 3000, "5 requests next to 8 slow-loris clients took " << ms << " ms");
  // Each slow client gets 408 once its header deadline passes, and the connection closes.
  for (int fd : loris) {
    timeval tv{8, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string answer = read_all(fd);
    CHECK(answer.rfind("HTTP/1.1 408 ", 0) == 0);
    ::close(fd);
  }
  stop = true;
  dribble.join();
  CHECK(metrics(port).find("cyllm_http_protocol_errors_total{code=\"408\"} 8") != std::string::npos);
}

TEST_CASE("bad requests: 413 oversized body, 400 malformed JSON and out-of-range values, 404, 405") {
  Harness h;
  http::HttpServerConfig cfg;
  cfg.max_body_bytes = 32 << 10;
  const std::uint16_t port = h.start(cfg);
  http::HttpClient c("127.0.0.1", port);

  auto big = c.request("POST", "/v1/completions", std::string(40 << 10, 'x'));
  REQUIRE(big.ok());
  CHECK(big->status == 413);
  CHECK(json::parse(big->body)["error"]["message"].get<std::string>().find("exceeds the limit of 32768") != std::string::npos);

  auto malformed = c.request("POST", "/v1/completions", R"({"prompt": "x",, })");
  REQUIRE(malformed.ok());
  CHECK(malformed->status == 400);
  json m = json::parse(malformed->body);
  CHECK(m["error"]["type"] == "invalid_request_error");
  CHECK(m["error"]["code"] == "invalid_json");
  CHECK(m["error"]["message"].get<std::string>().find("at byte") != std::string::npos);

  json hot = completion_body("x", 4);
  hot["temperature"] = 7;
  auto r = post(c, "/v1/completions", hot);
  CHECK(r.status == 400);
  CHECK(json::parse(r.body)["error"]["param"] == "temperature");
  json many = chat_body("x", 4);
  many["n"] = 3;
  r = post(c, "/v1/chat/completions", many);
  CHECK(r.status == 400);
  CHECK(json::parse(r.body)["error"]["param"] == "n");
  // Refused by the engine (the prompt does not fit the context): 400 naming the prompt.
  r = post(c, "/v1/completions", completion_body(std::string(3000, 'a'), 4));
  CHECK(r.status == 400);
  CHECK(json::parse(r.body)["error"]["param"] == "prompt");
  CHECK(h.calls.load() == 1);  // only the last one reached predict

  auto nf = c.request("GET", "/v2/nothing");
  REQUIRE(nf.ok());
  CHECK(nf->status == 404);
  auto wrong = c.request("GET", "/v1/completions");
  REQUIRE(wrong.ok());
  CHECK(wrong->status == 405);
  REQUIRE(wrong->header("allow") != nullptr);
  CHECK(*wrong->header("allow") == "POST");

  // A request the parser refuses gets its status from the I/O thread.
  int fd = raw_connect(port);
  const std::string chunked = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  ::send(fd, chunked.data(), chunked.size(), MSG_NOSIGNAL);
  CHECK(read_all(fd).rfind("HTTP/1.1 411 ", 0) == 0);
  ::close(fd);
}

TEST_CASE("Bearer auth guards /v1 but not health or metrics") {
  Harness h;
  http::HttpServerConfig cfg;
  cfg.api_key = "sekret-key";
  const std::uint16_t port = h.start(cfg);
  http::HttpClient c("127.0.0.1", port);
  auto none = post(c, "/v1/completions", completion_body("x", 2));
  CHECK(none.status == 401);
  CHECK(json::parse(none.body)["error"]["type"] == "authentication_error");
  REQUIRE(none.header("www-authenticate") != nullptr);
  CHECK(post(c, "/v1/completions", completion_body("x", 2), {{"Authorization", "Bearer wrong"}}).status == 401);
  CHECK(post(c, "/v1/completions", completion_body("x", 2), {{"Authorization", "Bearer sekret-key-longer"}}).status == 401);
  CHECK(post(c, "/v1/completions", completion_body("x", 2), {{"Authorization", "Bearer sekret-key"}}).status == 200);
  auto models = c.request("GET", "/v1/models");
  REQUIRE(models.ok());
  CHECK(models->status == 401);
  models = c.request("GET", "/v1/models", {}, {{"Authorization", "bearer sekret-key"}});
  REQUIRE(models.ok());
  CHECK(models->status == 200);
  CHECK(json::parse(models->body)["data"][0]["id"] == "demo");
  auto live = c.request("GET", "/health/live");
  REQUIRE(live.ok());
  CHECK(live->status == 200);
  CHECK(h.calls.load() == 1);
}

TEST_CASE("a client that disconnects mid-stream cancels its generation") {
  Harness h;
  h.token_delay_ms = 5;  // 2000 tokens would take 10 s
  const std::uint16_t port = h.start();
  {
    http::HttpClient c("127.0.0.1", port);
    int events = 0;
    http::SseReader sse;
    auto r = c.request("POST", "/v1/completions", completion_body("Go on", 2000, true).dump(), {},
                       [&](std::string_view b) {
                         sse.feed(b, [&](std::string_view) { ++events; });
                         return events < 3;  // hang up after three events
                       });
    REQUIRE(r.ok());
    CHECK(r->status == 200);
  }
  const auto t0 = std::chrono::steady_clock::now();
  while (h.returned.load() == 0 && std::chrono::steady_clock::now() - t0 < 5s) std::this_thread::sleep_for(10ms);
  REQUIRE(h.returned.load() == 1);
  CHECK(h.cancel_seen.load() == 1);
  {
    std::lock_guard lk(h.mu);
    REQUIRE(h.finishes.size() == 1);
    CHECK(h.finishes[0] == FinishReason::Cancelled);
  }
  CHECK(metrics(port).find("cyllm_http_client_disconnects_total 1") != std::string::npos);
}

TEST_CASE("Overloaded from predict is 429 with Retry-After, streaming or not") {
  Harness h;
  const std::uint16_t port = h.start();
  http::HttpClient c("127.0.0.1", port);
  auto r = post(c, "/v1/completions", completion_body("overload", 4));
  CHECK(r.status == 429);
  REQUIRE(r.header("retry-after") != nullptr);
  CHECK(*r.header("retry-after") == "1");
  json j = json::parse(r.body);
  CHECK(j["error"]["code"] == "serve.overloaded");
  CHECK(j["error"]["message"] == "the queue is full (8 waiting)");
  Streamed s = stream(c, "/v1/completions", completion_body("overload", 4, true));
  CHECK(s.status == 429);
  CHECK(s.chunks.empty());
  // Nothing else broke: the next request is served.
  CHECK(post(c, "/v1/completions", completion_body("fine", 4)).status == 200);
}

TEST_CASE("health, readiness, metrics; drain finishes in-flight requests") {
  Harness h;
  std::atomic<bool> ready{false};
  const std::uint16_t port = h.start({}, [&] { return ready.load(); });
  http::HttpClient c("127.0.0.1", port);
  auto r = c.request("GET", "/health/ready");
  REQUIRE(r.ok());
  CHECK(r->status == 503);
  r = c.request("GET", "/health");  // vLLM's probe path answers the same
  REQUIRE(r.ok());
  CHECK(r->status == 503);
  ready = true;
  r = c.request("GET", "/health/ready");
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  r = c.request("GET", "/health");
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(post(c, "/v1/completions", completion_body("x", 3)).status == 200);
  std::string m = metrics(port);
  CHECK(m.find("cyllm_http_requests_total{route=\"/v1/completions\",code=\"200\"} 1") != std::string::npos);
  CHECK(m.find("cyllm_scheduler_queue_size 0") != std::string::npos);  // the callback's text

  // A long request in flight when stop() begins still completes.
  h.token_delay_ms = 10;
  Streamed s;
  std::thread client([&] {
    http::HttpClient c2("127.0.0.1", port);
    s = stream(c2, "/v1/completions", completion_body("drain me", 40, true));
  });
  while (h.calls.load() < 2) std::this_thread::sleep_for(5ms);  // it reached predict
  h.server->stop(10s);
  client.join();
  CHECK(s.status == 200);
  CHECK(s.done);
  CHECK(s.text == h.direct("drain me", 40));
  // After stop nothing listens.
  http::HttpClient late("127.0.0.1", port, http::ClientOptions{1000ms, 1000ms});
  CHECK_FALSE(late.request("GET", "/health/live").ok());
}
