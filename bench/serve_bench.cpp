// serve_bench: a load generator for the OpenAI-compatible HTTP API (cy-llm-serve, or any
// server that speaks it, e.g. llama.cpp's llama-server), and for cy-llm-serve's gRPC
// StreamPredict over its Unix socket.
//   build/bench/serve_bench --url http://127.0.0.1:8000 -n 64 -c 16 [--rate 8] [--json]
//   build/bench/serve_bench --uds /run/cy-llm/inference.sock -n 64 -c 16   (gRPC)
//   build/bench/serve_bench --serve-model model.gguf -c 4     (an in-process server: the
//       HTTP API straight on a native engine, no scheduler; to measure the HTTP layer)
// Options: --url URL | --serve-model PATH (--threads N)   -n N (requests, default 64)
//   -c N (concurrency, default 4)   --rate R (requests/s, Poisson; default unbounded)
//   --prompt TEXT (repeatable) | --prompt-file FILE (one prompt per line)
//   --max-tokens N (64)  --temperature T (0)  --chat  --no-stream  --api-key KEY
//   --model NAME  --json (the report as JSON on stdout)  --seed N
// Exit status: 0 when every request succeeded, 1 when some failed, 2 on usage errors.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cyllm/engine.h"
#include "cyllm/http_client.h"
#include "cyllm/http_server.h"
#include "serve_load.h"

#ifdef CYLLM_BENCH_GRPC
#include <grpcpp/grpcpp.h>

#include "inference.grpc.pb.h"
#endif

using namespace cyllm;
using namespace cyllm::bench;
using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

// The code of an OpenAI-shaped error object: a string ("serve.overloaded"), or a number as
// llama-server sends (500), or the type when there is no code. Never throws: the body is
// whatever the server sent.
std::string error_code_of(const json& error) {
  if (!error.is_object()) return "error";
  if (error.contains("code") && error["code"].is_string()) return error["code"].get<std::string>();
  if (error.contains("code") && error["code"].is_number_integer()) return std::to_string(error["code"].get<long long>());
  if (error.contains("type") && error["type"].is_string()) return error["type"].get<std::string>();
  return "error";
}

std::uint32_t count_of(const json& usage, const char* key) {
  return usage.contains(key) && usage[key].is_number_unsigned() ? usage[key].get<std::uint32_t>() : 0;
}

struct HttpTarget {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;
  std::string api_key;
  std::string model;
};

class HttpSession final : public Session {
 public:
  // A long wait for bytes: under heavy load a queued request may take minutes.
  explicit HttpSession(const HttpTarget& t)
      : t_(t), client_(t.host, t.port, http::ClientOptions{std::chrono::seconds(5), std::chrono::seconds(600)}) {}

  Outcome send(const BenchRequest& req) override {
    json body;
    if (!t_.model.empty()) body["model"] = t_.model;
    if (req.chat) body["messages"] = json::array({{{"role", "user"}, {"content", req.prompt}}});
    else body["prompt"] = req.prompt;
    body["max_tokens"] = req.max_tokens;
    body["temperature"] = req.temperature;
    body["seed"] = req.seed;
    body["stream"] = req.stream;
    if (req.stream) body["stream_options"] = {{"include_usage", true}};
    std::vector<std::pair<std::string, std::string>> headers;
    if (!t_.api_key.empty()) headers.emplace_back("Authorization", "Bearer " + t_.api_key);

    Outcome o;
    const auto t0 = SteadyClock::now();
    auto since = [&] { return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count(); };
    http::SseReader sse;
    std::string raw;
    bool done = false, usage = false;
    std::string stream_error;
    int status_seen = 0;
    auto on_event = [&](std::string_view data) {
      if (data == "[DONE]") {
        done = true;
        return;
      }
      json j = json::parse(data, nullptr, false);
      if (j.is_discarded()) return;
      if (j.contains("error")) {
        stream_error = error_code_of(j["error"]);
        return;
      }
      if (j.contains("usage") && j["usage"].is_object()) {
        o.prompt_tokens = count_of(j["usage"], "prompt_tokens");
        o.completion_tokens = count_of(j["usage"], "completion_tokens");
        usage = true;
      }
      if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return;
      const json& ch = j["choices"][0];
      std::string piece;
      if (ch.contains("text") && ch["text"].is_string()) piece = ch["text"].get<std::string>();
      if (ch.contains("delta") && ch["delta"].contains("content") && ch["delta"]["content"].is_string())
        piece = ch["delta"]["content"].get<std::string>();
      if (piece.empty()) return;
      const double t = since();
      if (o.piece_ms.empty()) o.ttft_ms = t;
      o.piece_ms.push_back(t);
      o.text += piece;
    };
    auto r = client_.request("POST", req.chat ? "/v1/chat/completions" : "/v1/completions", body.dump(), headers,
                             [&](std::string_view bytes) {
                               if (status_seen == 0) status_seen = 1;
                               if (req.stream) sse.feed(bytes, on_event);
                               else raw.append(bytes.data(), bytes.size());
                               return true;
                             });
    o.e2e_ms = since();
    if (!r.ok()) {
      o.error_code = "network";
      return o;
    }
    if (r->status != 200) {
      // The error object's code when there is one, else the status.
      json e = json::parse(req.stream ? std::string() : raw, nullptr, false);
      o.error_code = "http_" + std::to_string(r->status);
      if (!e.is_discarded() && e.contains("error") && e["error"].is_object()) o.error_code += ":" + error_code_of(e["error"]);
      return o;
    }
    if (!req.stream) {
      json j = json::parse(raw, nullptr, false);
      if (j.is_discarded() || !j.contains("choices")) {
        o.error_code = "bad_response";
        return o;
      }
      const json& ch = j["choices"].is_array() && !j["choices"].empty() ? j["choices"][0] : json::object();
      if (ch.contains("text") && ch["text"].is_string()) o.text = ch["text"].get<std::string>();
      else if (ch.contains("message") && ch["message"].is_object() && ch["message"].contains("content") &&
               ch["message"]["content"].is_string())
        o.text = ch["message"]["content"].get<std::string>();
      if (j.contains("usage") && j["usage"].is_object()) {
        o.prompt_tokens = count_of(j["usage"], "prompt_tokens");
        o.completion_tokens = count_of(j["usage"], "completion_tokens");
      }
      o.ttft_ms = o.e2e_ms;
      o.ok = true;
      return o;
    }
    if (!stream_error.empty()) {
      o.error_code = "stream:" + stream_error;
      return o;
    }
    if (!done) {
      o.error_code = "stream_incomplete";
      return o;
    }
    if (!usage) o.completion_tokens = static_cast<std::uint32_t>(o.piece_ms.size());
    o.ok = true;
    return o;
  }

 private:
  const HttpTarget& t_;
  http::HttpClient client_;
};

class HttpTransport final : public Transport {
 public:
  explicit HttpTransport(HttpTarget t) : t_(std::move(t)) {}
  std::string name() const override { return "http"; }
  std::unique_ptr<Session> open() override { return std::make_unique<HttpSession>(t_); }

 private:
  HttpTarget t_;
};

#ifdef CYLLM_BENCH_GRPC
namespace pb = cyllm::inference::v1;

// gRPC StreamPredict: one channel per session (worker), each piece timed as it arrives.
class GrpcSession final : public Session {
 public:
  explicit GrpcSession(const std::string& target)
      : stub_(pb::InferenceService::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()))) {}

  Outcome send(const BenchRequest& b) override {
    pb::Request req;
    if (b.chat) {
      auto* m = req.mutable_chat()->add_messages();
      m->set_role("user");
      m->set_content(b.prompt);
    } else {
      req.set_prompt(b.prompt);
    }
    req.set_max_tokens(b.max_tokens);
    req.mutable_sampling()->set_temperature(b.temperature);
    req.mutable_sampling()->set_seed(b.seed);
    Outcome o;
    grpc::ClientContext ctx;
    const auto t0 = SteadyClock::now();
    auto ms = [&] { return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count(); };
    auto reader = stub_->StreamPredict(&ctx, req);
    pb::Response r;
    std::uint32_t pieces = 0;
    while (reader->Read(&r)) {
      if (r.has_piece() && !r.piece().text().empty()) {
        const double t = ms();
        if (o.piece_ms.empty()) o.ttft_ms = t;
        o.piece_ms.push_back(t);
        o.text += r.piece().text();
        pieces += static_cast<std::uint32_t>(r.piece().token_ids_size());
      } else if (r.has_final()) {
        o.prompt_tokens = r.final().usage().prompt_tokens();
        o.completion_tokens = r.final().usage().completion_tokens();
        o.ok = true;
      } else if (r.has_error()) {
        o.error_code = r.error().id().empty() ? "grpc_error" : r.error().id();
      }
    }
    const grpc::Status st = reader->Finish();
    o.e2e_ms = ms();
    if (!st.ok()) {
      o.ok = false;
      if (o.error_code.empty()) o.error_code = "grpc_" + std::to_string(static_cast<int>(st.error_code()));
    }
    if (o.ok && o.completion_tokens == 0) o.completion_tokens = pieces;
    return o;
  }

 private:
  std::unique_ptr<pb::InferenceService::Stub> stub_;
};

class GrpcTransport final : public Transport {
 public:
  explicit GrpcTransport(std::string target) : target_(std::move(target)) {}
  std::string name() const override { return "grpc"; }
  std::unique_ptr<Session> open() override { return std::make_unique<GrpcSession>(target_); }

 private:
  std::string target_;
};
#endif

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "serve_bench: %s\nusage: serve_bench (--url http://HOST:PORT | --uds PATH | --serve-model PATH) [-n N] [-c N] "
                       "[--rate R] [--prompt TEXT]... [--prompt-file FILE] [--max-tokens N] [--temperature T] [--chat] "
                       "[--no-stream] [--api-key KEY] [--model NAME] [--threads N] [--seed N] [--json]\n",
               why);
  std::exit(2);
}

bool parse_url(const std::string& url, HttpTarget& t) {
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  else if (rest.find("://") != std::string::npos) return false;
  if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) {
    t.host = rest;
    t.port = 80;
    return !rest.empty();
  }
  t.host = rest.substr(0, colon);
  const int port = std::atoi(rest.c_str() + colon + 1);
  if (port <= 0 || port > 65535) return false;
  t.port = static_cast<std::uint16_t>(port);
  return !t.host.empty();
}

}  // namespace

int main(int argc, char** argv) {
  HttpTarget target;
  LoadOptions load;
  BenchRequest proto;
  std::vector<std::string> prompts;
  std::string serve_model, url, uds;
  unsigned threads = 0;
  bool as_json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--url") url = value();
    else if (a == "--serve-model") serve_model = value();
    else if (a == "--uds") uds = value();
    else if (a == "-n" || a == "--requests") load.n_requests = std::atoi(value().c_str());
    else if (a == "-c" || a == "--concurrency") load.concurrency = std::atoi(value().c_str());
    else if (a == "--rate") load.rate_per_s = std::atof(value().c_str());
    else if (a == "--prompt") prompts.push_back(value());
    else if (a == "--prompt-file") {
      std::ifstream in(value());
      if (!in) usage("cannot read the prompt file");
      for (std::string line; std::getline(in, line);)
        if (!line.empty()) prompts.push_back(line);
    } else if (a == "--max-tokens") proto.max_tokens = static_cast<std::uint32_t>(std::atoi(value().c_str()));
    else if (a == "--temperature") proto.temperature = static_cast<float>(std::atof(value().c_str()));
    else if (a == "--chat") proto.chat = true;
    else if (a == "--no-stream") proto.stream = false;
    else if (a == "--api-key") target.api_key = value();
    else if (a == "--model") target.model = value();
    else if (a == "--threads") threads = static_cast<unsigned>(std::atoi(value().c_str()));
    else if (a == "--seed") load.seed = std::strtoull(value().c_str(), nullptr, 10);
    else if (a == "--json") as_json = true;
    else usage(("unknown option " + a).c_str());
  }
  if (int{!url.empty()} + int{!serve_model.empty()} + int{!uds.empty()} != 1)
    usage("give exactly one of --url, --uds and --serve-model");
#ifndef CYLLM_BENCH_GRPC
  if (!uds.empty()) usage("--uds needs a build with gRPC (libgrpc++-dev, protobuf-compiler-grpc)");
#endif
  if (load.n_requests <= 0 || load.concurrency <= 0) usage("-n and -c must be positive");
  if (prompts.empty())
    prompts = {"Explain what a KV cache is.", "Write a haiku about the sea.", "List three prime numbers and why.",
               "Summarise the plot of a detective story in two sentences."};
  std::vector<BenchRequest> requests;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    BenchRequest r = proto;
    r.prompt = prompts[i];
    r.seed = load.seed + i;
    requests.push_back(r);
  }

  // --serve-model: the HTTP API in this process, straight on a native engine.
  NullLogger quiet;
  std::unique_ptr<engine::BaseEngine> engine;
  std::unique_ptr<http::HttpServer> server;
  if (!serve_model.empty()) {
    engine::EngineConfig cfg;
    cfg.n_threads = threads;
    auto e = engine::EngineFactory().create(cfg, quiet);
    if (!e.ok()) return std::fprintf(stderr, "serve_bench: %s\n", e.error().to_string().c_str()), 1;
    engine = std::move(*e);
    if (auto r = engine->load_model(serve_model, cfg); !r.ok())
      return std::fprintf(stderr, "serve_bench: %s\n", r.error().to_string().c_str()), 1;
    http::HttpServerCallbacks cb;
    engine::BaseEngine* eng = engine.get();
    cb.predict = [eng](const engine::Request& r, const engine::TokenSink& s, const std::atomic<bool>* c) {
      return eng->stream_predict(r, s, c);
    };
    auto s = http::HttpServer::start({}, cb, quiet);
    if (!s.ok()) return std::fprintf(stderr, "serve_bench: %s\n", s.error().to_string().c_str()), 1;
    server = std::move(*s);
    target.host = "127.0.0.1";
    target.port = server->port();
  } else if (!url.empty() && !parse_url(url, target)) {
    usage("--url must look like http://HOST:PORT");
  }

  std::unique_ptr<Transport> transport;
#ifdef CYLLM_BENCH_GRPC
  if (!uds.empty()) transport = std::make_unique<GrpcTransport>("unix:" + uds);
#endif
  if (!transport) transport = std::make_unique<HttpTransport>(target);
  Report report = run_load(*transport, requests, load);
  if (as_json) std::printf("%s\n", report_json(report).dump(2).c_str());
  else print_table(report, stdout);
  if (server) server->stop(std::chrono::seconds(5));
  return report.failed == 0 ? 0 : 1;
}
