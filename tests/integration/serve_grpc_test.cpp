// cy-llm-serve end to end: the real binary on a temporary Unix socket (and loopback TCP)
// with generated models, driven by a gRPC client: streaming, 64 concurrent clients with
// outputs identical to single-request greedy runs, overflow, client cancel, deadlines,
// SIGTERM drain, API-key auth, TLS with a test CA, socket mode 0600, stale sockets, and
// precise INVALID_ARGUMENT for malformed bodies and out-of-range fields.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "../unit/model/tiny_model.h"
#include "cyllm/engine.h"
#include "cyllm/http_client.h"
#include "health.grpc.pb.h"
#include "inference.grpc.pb.h"
#include "test_support.h"
#include "../unit/serve/slow_model.h"
#include "serve_process.h"

using namespace cyllm;
using namespace std::chrono_literals;
namespace pb = cyllm::inference::v1;

// grpc's DNS resolver (c-ares) keeps a few bytes until exit; not ours to fix.
extern "C" const char* __lsan_default_suppressions() { return "leak:libcares.so\n"; }

namespace {

using test::ServerProcess;

using SteadyClock = std::chrono::steady_clock;

struct Outcome {
  grpc::Status status;
  std::string text;
  std::vector<int> tokens;
  std::optional<pb::Final> final;
  std::optional<pb::ErrorInfo> error;
  int pieces = 0;
};

pb::Request greedy(const std::string& prompt, std::uint32_t n) {
  pb::Request r;
  r.set_prompt(prompt);
  r.set_max_tokens(n);
  r.mutable_sampling()->set_temperature(0);
  return r;
}

Outcome call(pb::InferenceService::Stub& stub, const pb::Request& req, grpc::ClientContext& ctx,
             const std::function<bool(const Outcome&)>& on_piece = nullptr) {
  Outcome o;
  auto reader = stub.StreamPredict(&ctx, req);
  pb::Response r;
  while (reader->Read(&r)) {
    if (r.has_piece()) {
      o.text += r.piece().text();
      for (int t : r.piece().token_ids()) o.tokens.push_back(t);
      ++o.pieces;
      if (on_piece && !on_piece(o)) ctx.TryCancel();
    } else if (r.has_final()) {
      o.final = r.final();
    } else if (r.has_error()) {
      o.error = r.error();
    }
  }
  o.status = reader->Finish();
  return o;
}

Outcome call(pb::InferenceService::Stub& stub, const pb::Request& req) {
  grpc::ClientContext ctx;
  return call(stub, req, ctx);
}

std::shared_ptr<grpc::Channel> uds_channel(const std::string& path) {
  return grpc::CreateChannel("unix:" + path, grpc::InsecureChannelCredentials());
}

using test::write_slow_model;

struct Demo {
  test::TempDir dir;
  std::string model = (dir.path() / "demo.gguf").string();
  std::string sock = (dir.path() / "s.sock").string();
  Demo() { REQUIRE(engine::write_demo_model(model, 7).ok()); }
};

}  // namespace

TEST_CASE("StreamPredict over the Unix socket: 0600, health, streaming, 64 identical concurrent clients") {
  Demo d;
  ServerProcess server({"-m", d.model, "--uds", d.sock, "--max-running", "16", "--max-queue", "128",
                        "-t", "1", "--log-format", "json"},
                       d.dir.path() / "err.log");
  auto ready = server.wait_event("ready");
  REQUIRE_MESSAGE(!ready.is_null(), test::read_text(d.dir.path() / "err.log"));
  CHECK(ready["model"] == "demo");

  struct stat st {};
  REQUIRE(::stat(d.sock.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 0777) == 0600);

  auto channel = uds_channel(d.sock);
  {
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest hreq;
    grpc::health::v1::HealthCheckResponse hresp;
    REQUIRE(health->Check(&ctx, hreq, &hresp).ok());
    CHECK(hresp.status() == grpc::health::v1::HealthCheckResponse::SERVING);
  }

  // References: the engine alone, one request at a time.
  NullLogger log;
  engine::EngineConfig cfg;
  cfg.n_threads = 1;
  auto engine = engine::make_native_engine(cfg, log);
  REQUIRE(engine->load_model(d.model, cfg).ok());
  constexpr int kClients = 64;
  std::vector<engine::Completion> want;
  for (int i = 0; i < kClients; ++i) {
    engine::Request r;
    r.prompt = "client " + std::to_string(i) + " asks";
    r.max_tokens = 6 + i % 11;
    r.sampling.temperature = 0;
    want.push_back(engine->stream_predict(r, nullptr).value());
  }

  auto stub = pb::InferenceService::NewStub(channel);
  SUBCASE("one stream: pieces with token ids, then the final message") {
    pb::Request req = greedy("client 3 asks", 6 + 3);
    req.set_request_id("r-3");
    auto o = call(*stub, req);
    REQUIRE_MESSAGE(o.status.ok(), o.status.error_message());
    CHECK(o.text == want[3].text);
    CHECK(o.pieces > 0);
    REQUIRE(o.final);
    CHECK(o.final->request_id() == "r-3");
    CHECK(o.final->usage().prompt_tokens() == want[3].usage.prompt_tokens);
    CHECK(o.final->usage().completion_tokens() == want[3].usage.completion_tokens);
    CHECK(o.final->timings().ttft_ms() > 0);
    CHECK(o.final->timings().queue_ms() >= 0);
  }
  SUBCASE("64 concurrent clients") {
    std::vector<Outcome> got(kClients);
    std::vector<std::thread> ts;
    for (int i = 0; i < kClients; ++i)
      ts.emplace_back([&, i] { got[i] = call(*stub, greedy("client " + std::to_string(i) + " asks", 6 + i % 11)); });
    for (auto& t : ts) t.join();
    for (int i = 0; i < kClients; ++i) {
      CAPTURE(i);
      REQUIRE_MESSAGE(got[i].status.ok(), got[i].status.error_message());
      CHECK(got[i].text == want[i].text);
      REQUIRE(got[i].final);
      CHECK(static_cast<int>(got[i].final->finish_reason()) ==
            (want[i].finish_reason == engine::FinishReason::Stop ? pb::FINISH_REASON_STOP : pb::FINISH_REASON_LENGTH));
      CHECK(got[i].final->usage().completion_tokens() == want[i].usage.completion_tokens);
    }
  }
  SUBCASE("malformed protobuf and out-of-range fields: INVALID_ARGUMENT naming the problem") {
    grpc::GenericStub generic(channel);
    grpc::ClientContext ctx;
    const std::string junk = "\xff\xff\xff\xff";
    grpc::Slice slice(junk);
    grpc::ByteBuffer req(&slice, 1), resp;
    const auto status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
        channel.get(),
        grpc::internal::RpcMethod("/cyllm.inference.v1.InferenceService/StreamPredict",
                                  grpc::internal::RpcMethod::NORMAL_RPC),
        &ctx, req, &resp);
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(status.error_message().find("not a valid cyllm.inference.v1.Request") != std::string::npos);

    pb::Request bad = greedy("x", 4);
    bad.mutable_sampling()->set_top_p(1.5f);
    auto o = call(*stub, bad);
    CHECK(o.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(o.status.error_message() == "engine.invalid_request: sampling.top_p must be in (0, 1], got 1.5");
    REQUIRE(o.error);
    CHECK(o.error->code() == pb::ERROR_CODE_INVALID_ARGUMENT);
    CHECK(o.error->field() == "sampling.top_p");

    pb::Request zero = greedy("x", 4);
    zero.set_max_tokens(0);
    o = call(*stub, zero);
    CHECK(o.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(o.status.error_message().find("max_tokens must be in [1, 65536], got 0") != std::string::npos);

    pb::Request none;
    o = call(*stub, none);
    CHECK(o.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(o.status.error_message().find("input neither prompt nor chat is set") != std::string::npos);

    pb::Request role;
    auto* m = role.mutable_chat()->add_messages();
    m->set_role("robot");
    m->set_content("hi");
    o = call(*stub, role);
    CHECK(o.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(o.error->field() == "chat.messages[0].role");
  }
  SUBCASE("a second server on the same socket is refused; the first keeps serving") {
    ServerProcess second({"-m", d.model, "--uds", d.sock, "--no-warmup"}, d.dir.path() / "err2.log");
    CHECK(second.wait_exit() == 1);
    CHECK(test::read_text(d.dir.path() / "err2.log").find("serve.bind_failed") != std::string::npos);
    CHECK(call(*stub, greedy("still here", 3)).status.ok());
  }
  server.signal(SIGTERM);
  CHECK(server.wait_exit() == 0);
  CHECK_FALSE(std::filesystem::exists(d.sock));
}

TEST_CASE("overflow, client cancel, deadlines and the SIGTERM drain on a slow model") {
  test::TempDir dir;
  const std::string model = write_slow_model(dir);
  const std::string sock = (dir.path() / "s.sock").string();
  // A stale socket file (nothing listening) is replaced.
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, sock.c_str(), sock.size());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    ::close(fd);
    REQUIRE(std::filesystem::exists(sock));
  }
  ServerProcess server({"-m", model, "--uds", sock, "--max-running", "1", "--max-queue", "1",
                        "--drain-timeout", "20"},
                       dir.path() / "err.log");
  REQUIRE_MESSAGE(!server.wait_event("ready").is_null(), test::read_text(dir.path() / "err.log"));
  auto stub = pb::InferenceService::NewStub(uds_channel(sock));

  // A: a long generation holding the only slot; cancelled by the client later.
  grpc::ClientContext ctx_a;
  std::atomic<int> a_pieces{0};
  std::atomic<bool> a_stop{false};
  Outcome a;
  std::thread ta([&] {
    a = call(*stub, greedy("a long one", 8000), ctx_a, [&](const Outcome& o) {
      a_pieces = o.pieces;
      return !a_stop.load();
    });
  });
  const auto until = SteadyClock::now() + 30s;
  while (a_pieces.load() == 0 && SteadyClock::now() < until) std::this_thread::sleep_for(5ms);
  REQUIRE(a_pieces.load() > 0);
  // B waits in the queue; C finds the queue full.
  Outcome b;
  std::thread tb([&] { b = call(*stub, greedy("second", 4)); });
  std::this_thread::sleep_for(1s);  // B reaches the queue (A holds the only slot)
  auto c = call(*stub, greedy("third", 4));
  CHECK(c.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  REQUIRE(c.error);
  CHECK(c.error->code() == pb::ERROR_CODE_OVERLOADED);
  CHECK(c.error->id() == "serve.overloaded");
  // A's client goes away: its slot goes to B.
  a_stop = true;
  ta.join();
  tb.join();
  CHECK(a.status.error_code() == grpc::StatusCode::CANCELLED);
  REQUIRE_MESSAGE(b.status.ok(), b.status.error_message());
  REQUIRE(b.final);
  CHECK(b.final->timings().queue_ms() > 100);

  // A deadline cuts a long generation: partial output, finish reason deadline.
  // The deadline leaves room for a few tokens however fast this build is (sanitizers).
  const auto t0 = SteadyClock::now();
  REQUIRE(call(*stub, greedy("deadline", 1)).status.ok());
  const auto first = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t0);
  pb::Request d = greedy("deadline", 8000);
  d.set_deadline_ms(static_cast<std::uint32_t>(4 * first.count() + 400));
  auto o = call(*stub, d);
  REQUIRE_MESSAGE(o.status.ok(), o.status.error_message());
  REQUIRE(o.final);
  CHECK(o.final->finish_reason() == pb::FINISH_REASON_DEADLINE);
  CHECK(o.final->usage().completion_tokens() > 0);
  CHECK(o.final->usage().completion_tokens() < 8000);
  CHECK(!o.text.empty());

  // SIGTERM while a request runs: it finishes, then the server exits 0.
  Outcome e;
  std::atomic<int> e_pieces{0};
  grpc::ClientContext ctx_e;
  std::thread te([&] {
    e = call(*stub, greedy("drain me", 60), ctx_e, [&](const Outcome& x) {
      e_pieces = x.pieces;
      return true;
    });
  });
  while (e_pieces.load() == 0 && SteadyClock::now() < until + 30s) std::this_thread::sleep_for(2ms);
  server.signal(SIGTERM);
  te.join();
  REQUIRE_MESSAGE(e.status.ok(), e.status.error_message());
  REQUIRE(e.final);
  CHECK(e.final->usage().completion_tokens() > 0);
  auto stopped = server.wait_event("stopped");
  REQUIRE(!stopped.is_null());
  CHECK(stopped["drained"] == true);
  CHECK(server.wait_exit() == 0);
}

TEST_CASE("gRPC on TCP: refused without a key or TLS; the API key is checked") {
  Demo d;
  {
    ServerProcess open({"-m", d.model, "--uds", d.sock, "--grpc-port", "0", "--no-warmup"}, d.dir.path() / "e0.log");
    CHECK(open.wait_exit() == 1);
    CHECK(test::read_text(d.dir.path() / "e0.log").find("needs --api-key or TLS") != std::string::npos);
  }
  const auto log_path = d.dir.path() / "serve.log";
  ServerProcess server({"-m", d.model, "--uds", d.sock, "--grpc-port", "0", "--api-key", "sekret", "--no-warmup",
                        "--log-file", log_path.string()},
                       d.dir.path() / "err.log");
  auto ready = server.wait_event("ready");
  REQUIRE_MESSAGE(!ready.is_null(), test::read_text(d.dir.path() / "err.log"));
  const int port = ready["grpc_port"].get<int>();
  REQUIRE(port > 0);
  auto stub = pb::InferenceService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  auto with_key = [&](const char* key) {
    grpc::ClientContext ctx;
    if (key) ctx.AddMetadata("authorization", key);
    return call(*stub, greedy("hi", 3), ctx);
  };
  auto none = with_key(nullptr);
  CHECK(none.status.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(none.status.error_message().find("missing") != std::string::npos);
  CHECK(with_key("Bearer wrong").status.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(with_key("sekret").status.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  auto ok = with_key("Bearer sekret");
  CHECK_MESSAGE(ok.status.ok(), ok.status.error_message());
  // The Unix socket needs no key (its 0600 mode is the access control).
  auto uds = pb::InferenceService::NewStub(uds_channel(d.sock));
  pb::Request before = greedy("hi", 3);
  before.set_request_id("before-rotation");
  CHECK(call(*uds, before).status.ok());

  // JSON log lines carry the request id; SIGHUP reopens the log file after rotation.
  std::filesystem::rename(log_path, d.dir.path() / "serve.log.1");
  server.signal(SIGHUP);
  const auto until = SteadyClock::now() + 10s;
  while (!std::filesystem::exists(log_path) && SteadyClock::now() < until) std::this_thread::sleep_for(5ms);
  REQUIRE(std::filesystem::exists(log_path));
  pb::Request after = greedy("hi", 3);
  after.set_request_id("after-rotation");
  CHECK(call(*uds, after).status.ok());
  const std::string rotated = test::read_text(d.dir.path() / "serve.log.1");
  CHECK(rotated.find("\"request_id\":\"before-rotation\"") != std::string::npos);
  CHECK(rotated.find("after-rotation") == std::string::npos);
  const std::string fresh = test::read_text(log_path);
  CHECK(fresh.find("\"request_id\":\"after-rotation\"") != std::string::npos);
  CHECK(fresh.find("\"msg\":\"request finished\"") != std::string::npos);
  CHECK(nlohmann::json::parse(fresh.substr(0, fresh.find('\n'))).contains("ts"));
  server.signal(SIGTERM);
  CHECK(server.wait_exit() == 0);
}

TEST_CASE("gRPC over TLS with a test CA, and client certificates when asked for") {
  Demo d;
  const auto p = [&](const char* f) { return (d.dir.path() / f).string(); };
  const std::string script =
      "set -e; cd '" + d.dir.path().string() + "'; "
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca 2>/dev/null; "
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext; "
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null; "
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null; "
      "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=client 2>/dev/null; "
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 2>/dev/null";
  REQUIRE(std::system(script.c_str()) == 0);
  ServerProcess server({"-m", d.model, "--uds", d.sock, "--grpc-port", "0", "--tls-cert", p("server.pem"),
                        "--tls-key", p("server.key"), "--tls-client-ca", p("ca.pem"), "--no-warmup"},
                       d.dir.path() / "err.log");
  auto ready = server.wait_event("ready");
  REQUIRE_MESSAGE(!ready.is_null(), test::read_text(d.dir.path() / "err.log"));
  const std::string target = "localhost:" + std::to_string(ready["grpc_port"].get<int>());
  grpc::SslCredentialsOptions with_cert;
  with_cert.pem_root_certs = test::read_text(p("ca.pem"));
  with_cert.pem_private_key = test::read_text(p("client.key"));
  with_cert.pem_cert_chain = test::read_text(p("client.pem"));
  auto ok = call(*pb::InferenceService::NewStub(grpc::CreateChannel(target, grpc::SslCredentials(with_cert))),
                 greedy("hi", 3));
  CHECK_MESSAGE(ok.status.ok(), ok.status.error_message());
  grpc::SslCredentialsOptions no_cert;
  no_cert.pem_root_certs = with_cert.pem_root_certs;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  auto refused = call(*pb::InferenceService::NewStub(grpc::CreateChannel(target, grpc::SslCredentials(no_cert))),
                      greedy("hi", 3), ctx);
  CHECK_FALSE(refused.status.ok());
  auto plain = call(*pb::InferenceService::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials())),
                    greedy("hi", 3));
  CHECK_FALSE(plain.status.ok());
  server.signal(SIGTERM);
  CHECK(server.wait_exit() == 0);
}

TEST_CASE("--http-port: the OpenAI API of the same server, answered like gRPC; /metrics; auth; drain") {
  Demo d;
  ServerProcess server({"-m", d.model, "--uds", d.sock, "--http-port", "0", "--api-key", "k3y", "-t", "1",
                        "--max-running", "4"},
                       d.dir.path() / "err.log");
  auto listening = server.wait_event("listening");
  REQUIRE_MESSAGE(!listening.is_null(), test::read_text(d.dir.path() / "err.log"));
  REQUIRE(listening["http_port"].is_number_integer());
  const auto port = listening["http_port"].get<std::uint16_t>();
  CHECK(port > 0);
  auto ready = server.wait_event("ready");
  REQUIRE(!ready.is_null());
  CHECK(ready["http_port"] == port);

  http::HttpClient client("127.0.0.1", port);
  const std::vector<std::pair<std::string, std::string>> auth = {{"authorization", "Bearer k3y"},
                                                                 {"content-type", "application/json"}};
  auto live = client.request("GET", "/health/ready");
  REQUIRE(live.ok());
  CHECK(live->status == 200);
  auto denied = client.request("POST", "/v1/completions", R"({"prompt":"hi","max_tokens":4})",
                               {{"content-type", "application/json"}});
  REQUIRE(denied.ok());
  CHECK(denied->status == 401);

  // Successful requests so far (the warm-up counts), from the Prometheus text.
  auto successes = [&] {
    auto m = client.request("GET", "/metrics", {}, auth);
    REQUIRE(m.ok());
    REQUIRE(m->status == 200);
    const std::string key = "cyllm_requests_total{outcome=\"success\",";
    double sum = 0;
    for (auto at = m->body.find(key); at != std::string::npos; at = m->body.find(key, at + 1))
      sum += std::stod(m->body.substr(m->body.find("} ", at) + 2));
    return sum;
  };
  const double before = successes();

  // The same request over HTTP and over gRPC gives the same greedy text.
  auto r = client.request("POST", "/v1/completions", R"({"prompt":"client 3 asks","max_tokens":9,"temperature":0})", auth);
  REQUIRE(r.ok());
  REQUIRE_MESSAGE(r->status == 200, r->body);
  auto body = nlohmann::json::parse(r->body);
  CHECK(body["model"] == "demo");
  auto stub = pb::InferenceService::NewStub(uds_channel(d.sock));
  auto g = call(*stub, greedy("client 3 asks", 9));
  REQUIRE(g.status.ok());
  CHECK(body["choices"][0]["text"] == g.text);
  REQUIRE(g.final);
  CHECK(body["usage"]["completion_tokens"] == g.final->usage().completion_tokens());

  // Bad parameters name themselves.
  auto bad = client.request("POST", "/v1/completions", R"({"prompt":"x","temperature":-3})", auth);
  REQUIRE(bad.ok());
  CHECK(bad->status == 400);
  CHECK(nlohmann::json::parse(bad->body)["error"]["param"] == "temperature");

  // Both transports' requests are counted by the one scheduler.
  CHECK(successes() == before + 2);
  auto metrics = client.request("GET", "/metrics", {}, auth);
  REQUIRE(metrics.ok());
  CHECK(metrics->body.find("cyllm_running_sequences 0") != std::string::npos);

  server.signal(SIGTERM);
  CHECK(server.wait_exit() == 0);
}
