// HttpServer: the OpenAI routes, auth, health and metrics on top of http::Server.
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>

#include "cyllm/http_server.h"
#include "cyllm/openai.h"
#include "http/server.h"
#include "util/strings.h"

namespace cyllm::http {
namespace {

using openai::ApiError;
using openai::Endpoint;

struct Route {
  std::string_view path;
  std::string_view method;
  bool authed;
};

constexpr Route kRoutes[] = {
    {"/v1/completions", "POST", true},   {"/v1/chat/completions", "POST", true},
    {"/v1/models", "GET", true},         {"/health/live", "GET", false},
    {"/health/ready", "GET", false},     {"/metrics", "GET", false},
    {"/health", "GET", false},  // what vLLM and TensorRT-LLM answer: probes written for them work
};

// Compares without an early exit, so the time taken does not reveal the key's prefix.
bool equal_constant_time(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

bool valid_request_id(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
          c == '_' || c == '.'))
      return false;
  return true;
}

std::string json_error_body(int status, const std::string& message) {
  ApiError e;
  e.status = status;
  e.message = message;
  e.type = status >= 500 ? "server_error" : "invalid_request_error";
  switch (status) {
    case 404: e.code = "not_found"; break;
    case 405: e.code = "method_not_allowed"; break;
    case 408: e.code = "request_timeout"; break;
    case 411: e.code = "length_required"; break;
    case 413: e.code = "serve.payload_too_large"; break;
    case 431: e.code = "headers_too_large"; break;
    case 503: e.code = "serve.overloaded"; break;
    default: break;
  }
  return openai::error_body(e);
}

}  // namespace

struct HttpServer::Impl {
  HttpServerConfig cfg;
  HttpServerCallbacks cb;
  Logger& log;
  std::unique_ptr<Server> server;
  // What handlers read: workers answer requests as soon as Server::start binds, before
  // `server` is assigned (a health probe polling the port hit that window and crashed).
  std::atomic<Server*> live{nullptr};
  std::uint64_t id_prefix = 0;
  std::atomic<std::uint64_t> next_request{1};
  std::int64_t started_unix = 0;

  std::mutex metrics_mu;
  std::map<std::pair<std::string, int>, std::uint64_t> answered;  // (route, status)
  std::map<int, std::uint64_t> protocol_errors;                    // answered by the I/O thread
  std::uint64_t disconnects = 0;

  Impl(HttpServerConfig c, HttpServerCallbacks b, Logger& l) : cfg(std::move(c)), cb(std::move(b)), log(l) {}

  std::string new_request_id() {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08llx%08llx", static_cast<unsigned long long>(id_prefix & 0xffffffffu),
                  static_cast<unsigned long long>(next_request.fetch_add(1)));
    return buf;
  }

  static std::int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  void send_api_error(ResponseWriter& w, const ApiError& e, const std::string& request_id) {
    std::vector<Header> extra = {{"X-Request-Id", request_id}};
    if (e.retry_after_s > 0) extra.push_back({"Retry-After", std::to_string(e.retry_after_s)});
    if (e.status == 401) extra.push_back({"WWW-Authenticate", "Bearer"});
    w.send(e.status, "application/json", openai::error_body(e), extra);
  }

  std::string metrics() {
    std::string out;
    out += "# HELP cyllm_http_requests_total HTTP requests answered, by route and status code.\n";
    out += "# TYPE cyllm_http_requests_total counter\n";
    {
      std::lock_guard lk(metrics_mu);
      for (const auto& [key, n] : answered)
        out += "cyllm_http_requests_total{route=\"" + key.first + "\",code=\"" + std::to_string(key.second) +
               "\"} " + std::to_string(n) + "\n";
      out += "# HELP cyllm_http_protocol_errors_total Requests refused before routing (malformed, too large, timed out).\n";
      out += "# TYPE cyllm_http_protocol_errors_total counter\n";
      for (const auto& [code, n] : protocol_errors)
        out += "cyllm_http_protocol_errors_total{code=\"" + std::to_string(code) + "\"} " + std::to_string(n) + "\n";
      out += "# HELP cyllm_http_client_disconnects_total Generations whose client hung up before the end.\n";
      out += "# TYPE cyllm_http_client_disconnects_total counter\n";
      out += "cyllm_http_client_disconnects_total " + std::to_string(disconnects) + "\n";
    }
    out += "# HELP cyllm_http_open_connections Open HTTP connections.\n";
    out += "# TYPE cyllm_http_open_connections gauge\n";
    Server* s = live.load();
    out += "cyllm_http_open_connections " + std::to_string(s ? s->open_connections() : 0) + "\n";
    out += "# HELP cyllm_http_requests_in_flight HTTP requests being answered.\n";
    out += "# TYPE cyllm_http_requests_in_flight gauge\n";
    out += "cyllm_http_requests_in_flight " + std::to_string(s ? s->requests_in_flight() : 1) + "\n";
    if (cb.metrics_text) out += cb.metrics_text();
    return out;
  }

  void generate(Endpoint ep, const HttpRequest& req, ResponseWriter& w, const std::string& request_id) {
    openai::ParseOptions po;
    po.model_id = cfg.model_id;
    po.default_max_tokens = cfg.default_max_tokens;
    po.max_tokens_limit = cfg.max_tokens_limit;
    auto parsed = openai::parse_request(ep, req.body, po);
    if (auto* e = std::get_if<ApiError>(&parsed)) return send_api_error(w, *e, request_id);
    const openai::ParsedRequest& pr = std::get<openai::ParsedRequest>(parsed);
    openai::ResponseMeta meta;
    meta.id = (ep == Endpoint::Completions ? "cmpl-" : "chatcmpl-") + request_id;
    meta.created = unix_now();
    meta.model = cfg.model_id;
    const std::vector<Header> id_header = {{"X-Request-Id", request_id}};

    if (!pr.stream) {
      const engine::TokenSink sink = [&](std::string_view, engine::TokenId) { return !w.client_gone(); };
      auto r = cb.predict(pr.request, sink, w.cancel_flag());
      if (w.client_gone()) {
        std::lock_guard lk(metrics_mu);
        ++disconnects;
      }
      if (!r.ok()) return send_api_error(w, openai::error_from(r.error(), ep, cfg.retry_after_s), request_id);
      w.send(200, "application/json", openai::dump(openai::completion_response(ep, meta, *r)), id_header);
      return;
    }

    // Streaming: the status line waits for the first piece, so that a request refused
    // before producing anything (overloaded, bad prompt) still gets its proper status.
    openai::StreamEncoder enc(pr, meta);
    bool started = false;
    auto start = [&] {
      if (started) return;
      started = true;
      std::vector<Header> h = id_header;
      h.push_back({"Cache-Control", "no-cache"});
      h.push_back({"X-Accel-Buffering", "no"});
      w.begin_stream(200, "text/event-stream", h);
      w.write(enc.begin());
    };
    const engine::TokenSink sink = [&](std::string_view text, engine::TokenId) {
      start();
      return w.write(enc.piece(text)) && !w.client_gone();
    };
    auto r = cb.predict(pr.request, sink, w.cancel_flag());
    if (w.client_gone()) {
      std::lock_guard lk(metrics_mu);
      ++disconnects;
    }
    if (!r.ok()) {
      ApiError e = openai::error_from(r.error(), ep, cfg.retry_after_s);
      if (!started) return send_api_error(w, e, request_id);
      w.write(enc.error(e));
      w.end();
      return;
    }
    start();
    w.write(enc.finish(*r));
    w.end();
  }

  void handle(const HttpRequest& req, ResponseWriter& w) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string* rid = req.header("x-request-id");
    const std::string request_id = rid && valid_request_id(*rid) ? *rid : new_request_id();
    std::string route_label = "other";
    w.on_respond([&](int status) {
      std::lock_guard lk(metrics_mu);
      ++answered[{route_label, status}];
    });
    route(req, w, request_id, route_label);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    char msbuf[32];
    std::snprintf(msbuf, sizeof msbuf, "%.1f", ms);
    log.log(LogLevel::Info, "http request",
            {{"request_id", request_id}, {"method", req.method}, {"path", req.path},
             {"status", std::to_string(w.status())}, {"ms", msbuf},
             {"client_gone", w.client_gone() ? "true" : "false"}});
  }

  void route(const HttpRequest& req, ResponseWriter& w, const std::string& request_id, std::string& label) {
    const Route* found = nullptr;
    for (const Route& r : kRoutes)
      if (r.path == req.path) found = &r;
    if (found == nullptr) {
      ApiError e;
      e.status = 404;
      e.message = "no route " + util::quote(req.path) + " (try /v1/completions, /v1/chat/completions, /v1/models)";
      e.code = "not_found";
      return send_api_error(w, e, request_id);
    }
    label = std::string(found->path);
    if (req.method != found->method) {
      ApiError e;
      e.status = 405;
      e.message = "method " + req.method + " is not allowed on " + label + "; use " + std::string(found->method);
      e.code = "method_not_allowed";
      std::vector<Header> extra = {{"Allow", std::string(found->method)}, {"X-Request-Id", request_id}};
      w.send(405, "application/json", openai::error_body(e), extra);
      return;
    }
    if (found->authed && !cfg.api_key.empty()) {
      const std::string* auth = req.header("authorization");
      std::string_view given;
      if (auth != nullptr && auth->size() > 7 && util::to_lower(auth->substr(0, 7)) == "bearer ")
        given = util::trim(std::string_view(*auth).substr(7));
      if (!equal_constant_time(given, cfg.api_key)) {
        ApiError e;
        e.status = 401;
        e.type = "authentication_error";
        e.code = "invalid_api_key";
        e.message = auth == nullptr ? "missing API key: send \"Authorization: Bearer <key>\""
                                    : "invalid API key";
        return send_api_error(w, e, request_id);
      }
    }
    if (label == "/v1/completions") return generate(Endpoint::Completions, req, w, request_id);
    if (label == "/v1/chat/completions") return generate(Endpoint::ChatCompletions, req, w, request_id);
    if (label == "/v1/models") {
      w.send(200, "application/json", openai::dump(openai::models_response(cfg.model_id, started_unix)));
      return;
    }
    if (label == "/health/live") {
      w.send(200, "application/json", "{\"status\":\"ok\"}");
      return;
    }
    if (label == "/health/ready" || label == "/health") {
      Server* s = live.load();
      const bool draining = s && s->draining();
      const bool ready = !draining && (!cb.ready || cb.ready());
      w.send(ready ? 200 : 503, "application/json",
             ready ? "{\"status\":\"ready\"}" : (draining ? "{\"status\":\"draining\"}" : "{\"status\":\"loading\"}"));
      return;
    }
    w.send(200, "text/plain; version=0.0.4; charset=utf-8", metrics());
  }
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  if (impl_ && impl_->server) impl_->server->stop(std::chrono::milliseconds(0));
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(HttpServerConfig config, HttpServerCallbacks callbacks,
                                                      Logger& log) {
  if (!callbacks.predict) return Error(Errc::InvalidArgument, "the HTTP server needs a predict callback");
  auto impl = std::make_unique<Impl>(std::move(config), std::move(callbacks), log);
  impl->id_prefix = std::random_device{}();
  impl->started_unix = Impl::unix_now();
  ServerOptions so;
  so.host = impl->cfg.host;
  so.port = impl->cfg.port;
  so.limits.max_body_bytes = impl->cfg.max_body_bytes;
  so.limits.max_header_bytes = impl->cfg.max_header_bytes;
  so.limits.max_headers = impl->cfg.max_headers;
  so.header_timeout = impl->cfg.header_timeout;
  so.body_timeout = impl->cfg.body_timeout;
  so.idle_timeout = impl->cfg.idle_timeout;
  so.write_timeout = impl->cfg.write_timeout;
  so.n_workers = impl->cfg.n_workers;
  so.max_pending = impl->cfg.max_pending;
  so.max_connections = impl->cfg.max_connections;
  Impl* p = impl.get();
  auto server = Server::start(
      so, [p](const HttpRequest& req, ResponseWriter& w) { p->handle(req, w); },
      [p](int status, const std::string& message) {
        {
          std::lock_guard lk(p->metrics_mu);
          ++p->protocol_errors[status];
        }
        return std::make_pair(std::string("application/json"), json_error_body(status, message));
      },
      log);
  if (!server.ok()) return std::move(server).error();
  impl->server = std::move(*server);
  impl->live.store(impl->server.get());
  log.log(LogLevel::Info, "HTTP API listening",
          {{"host", impl->cfg.host}, {"port", std::to_string(impl->server->port())}});
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

std::uint16_t HttpServer::port() const { return impl_->server->port(); }
void HttpServer::begin_drain() { impl_->server->begin_drain(); }
void HttpServer::stop(std::chrono::milliseconds drain_timeout) { impl_->server->stop(drain_timeout); }
std::size_t HttpServer::requests_in_flight() const { return impl_->server->requests_in_flight(); }
std::size_t HttpServer::open_connections() const { return impl_->server->open_connections(); }

}  // namespace cyllm::http
