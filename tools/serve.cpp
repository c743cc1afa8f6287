// cy-llm-serve: the inference server. gRPC InferenceService.StreamPredict on a Unix socket
// (and optionally TCP), the OpenAI-compatible HTTP API (--http-port), health, Prometheus
// metrics, graceful drain on SIGTERM. Both transports call the same Service (scheduler).
//
// Signals: SIGTERM/SIGINT/SIGHUP are blocked before any thread starts and read from a
// signalfd by the main thread (no work in signal handlers). SIGTERM or SIGINT: stop
// accepting (health NOT_SERVING, new requests engine.unavailable), let in-flight requests
// finish within --drain-timeout, exit 0. SIGHUP: reopen --log-file.
// stdout: one JSON line per lifecycle event ("listening", "ready", "stopped"), schema
// cy-llm.serve/v1, so that a supervisor or a test can wait for readiness and learn the port.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <iterator>

#include <filesystem>

#include "common/cli.h"
#include "common/engine_flags.h"
#include "cyllm/external.h"
#include "cyllm/http_server.h"
#include "cyllm/serve.h"

using namespace cyllm;

namespace {

Result<std::string> read_pem(const std::string& path, const char* what) {
  if (path.empty()) return std::string();
  std::ifstream f(path, std::ios::binary);
  if (!f) return Error(Errc::NotFound, std::string("cannot read the ") + what + " \"" + path + "\"");
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// One compact JSON line per event, flushed at once (a supervisor waits on it).
void event(const nlohmann::ordered_json& doc) { std::cout << doc.dump() << std::endl; }

}  // namespace

int main(int argc, char** argv) {
  cli::ToolEnv env("cy-llm-serve");
  return cli::guarded_main(env, [&]() -> int {
    CLI::App app{
        "Serve a model: gRPC InferenceService.StreamPredict over a Unix socket (and optionally\n"
        "TCP), the grpc.health.v1 service and Prometheus metrics, with a continuous-batching\n"
        "scheduler in front of the native engine; or in front of an external engine's server\n"
        "(vLLM, TensorRT-LLM, MindIE) started from a venv, or of a running OpenAI-compatible\n"
        "server (--engine openai --upstream URL).",
        "cy-llm-serve"};
    cli::CommonOptions common;
    std::string model, log_file, tls_cert, tls_key, tls_ca, http_host = "127.0.0.1", served_name;
    serve::GrpcOptions grpc_opts;
    grpc_opts.uds_path = "/run/cy-llm/inference.sock";
    serve::ServiceConfig cfg;
    int http_port = -1, grpc_port = -1;
    std::size_t max_body_kib = 1024;
    double queue_timeout_s = 30, drain_timeout_s = 30;
    std::uint64_t kv_budget_mib = 0;
    bool no_warmup = false;
    cli::EngineFlags ef;
    cli::add_common_flags(app, common, "cy-llm-serve");
    app.add_option("-m,--model", model,
                   "GGUF model file (native); the model an external engine serves (path or hub id); "
                   "the model to request from the upstream (openai; default: its first)")
        ->option_text("FILE|NAME");
    cli::add_engine_flags(app, ef);
    app.add_option("--uds", grpc_opts.uds_path, "Unix socket path for gRPC (default /run/cy-llm/inference.sock; mode 0600)")
        ->option_text("PATH");
    app.add_option("--grpc-port", grpc_port, "Also serve gRPC on TCP (0: any free port; needs --api-key or TLS)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--grpc-host", grpc_opts.tcp_host, "Address for --grpc-port (default 127.0.0.1)");
    app.add_option("--http-port", http_port, "Serve the OpenAI-compatible HTTP API on this port (0: any free port)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--http-host", http_host, "Address for --http-port (default 127.0.0.1)");
    app.add_option("--served-model-name", served_name, "Model name of the HTTP API (default: the file name without .gguf)");
    app.add_option("--max-body-kib", max_body_kib, "Largest HTTP request body in KiB (default 1024; larger: 413)")
        ->check(CLI::Range(1, 1 << 20));
    app.add_option("--api-key", grpc_opts.api_key, "Require \"authorization: Bearer KEY\" on TCP gRPC and on HTTP /v1");
    app.add_option("--tls-cert", tls_cert, "TLS certificate (PEM) for --grpc-port")->option_text("FILE");
    app.add_option("--tls-key", tls_key, "TLS private key (PEM) for --grpc-port")->option_text("FILE");
    app.add_option("--tls-client-ca", tls_ca, "Require client certificates signed by this CA (PEM)")->option_text("FILE");
    app.add_flag("--insecure-tcp", grpc_opts.insecure_tcp, "Allow --grpc-port without --api-key and without TLS");
    app.add_option("--max-running", cfg.scheduler.max_running, "Sequences decoded together (default 16)")
        ->check(CLI::Range(1, 4096));
    app.add_option("--max-queue", cfg.scheduler.max_queue, "Waiting requests before refusing (default 64)")
        ->check(CLI::Range(0, 1 << 20));
    app.add_option("--queue-timeout", queue_timeout_s, "Seconds a request may wait in the queue (default 30)")
        ->check(CLI::PositiveNumber);
    app.add_option("--kv-budget-mib", kv_budget_mib, "KV cache MiB the running sequences may reserve (default: no limit)");
    app.add_option("-c,--ctx-size", cfg.scheduler.max_model_len, "Per-request context length (default: the model's)");
    app.add_option("-t,--threads", cfg.scheduler.n_threads, "Threads per step (default: all CPUs)");
    app.add_option("--drain-timeout", drain_timeout_s, "Seconds in-flight requests get after SIGTERM (default 30)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--log-file", log_file, "Append JSON log lines to FILE (reopened on SIGHUP)")->option_text("FILE");
    app.add_flag("--no-warmup", no_warmup, "Become ready right after loading, without a warm-up generation");
    app.footer("Exit status: 0 ok (also after a SIGTERM drain), 1 input/environment, 2 usage, 3 internal.\nSee cy-llm-serve(1).");
    if (auto rc = cli::parse_or_exit(app, argc, argv)) return *rc;
    env.configure(common);
    auto usage = [&](const std::string& msg) { return env.fail(Error(Errc::Usage, msg)); };
    ef.served_model_name = served_name;
    engine::EngineConfig ec;
    cli::EngineSetup setup;
    if (auto r = cli::apply_engine_flags(ef, ec, setup); !r.ok()) return env.fail(r.error());
    const bool native = ef.native();
    if (native && (ec.gpu_memory_utilization != engine::EngineConfig{}.gpu_memory_utilization ||
                   ec.tensor_parallel_size != 1 || ec.pipeline_parallel_size != 1 || !ec.quantization.empty()))
      return usage("--gpu-memory-utilization, --tensor-parallel-size, --pipeline-parallel-size and --quantization "
                   "apply to external engines; the native engine runs the GGUF file as stored on the CPU");
    if (model.empty() && ef.engine != "openai") return usage("no model: pass -m MODEL");
    if (native && cfg.scheduler.max_model_len == 0) cfg.scheduler.max_model_len = ec.max_model_len;  // the plan's
    if (model.empty()) {  // serve the upstream's first model under its own name
      auto ids = external::list_upstream_models(setup.settings.upstream);
      if (!ids.ok()) return env.fail(ids.error());
      if (ids->empty())
        return env.fail(Error(Errc::ModelLoadFailed, "the upstream " + ef.upstream + " lists no model; name one with -m"));
      model = ids->front();
    }
    if (native && ::access(model.c_str(), R_OK) != 0)
      return env.fail(Error(Errc::NotFound, "cannot read the model file \"" + model + "\""));

    // Signals first, before any thread exists, so every thread inherits the mask.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    const int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0) return env.fail(Error(Errc::Io, "signalfd failed"));

    std::unique_ptr<serve::FileLogger> file_log;
    Logger* log = &env.logger();
    if (!log_file.empty()) {
      auto f = serve::FileLogger::open(log_file, common.verbose > 1 ? LogLevel::Debug : LogLevel::Info, "cy-llm-serve");
      if (!f.ok()) return env.fail(f.error());
      file_log = std::move(*f);
      log = file_log.get();
    }
    auto cert = read_pem(tls_cert, "TLS certificate");
    auto key = read_pem(tls_key, "TLS key");
    auto ca = read_pem(tls_ca, "client CA");
    for (auto* r : {&cert, &key, &ca})
      if (!r->ok()) return env.fail(r->error());
    grpc_opts.tls_cert_pem = *cert;
    grpc_opts.tls_key_pem = *key;
    grpc_opts.tls_client_ca_pem = *ca;
    grpc_opts.tcp_port = grpc_port;
    cfg.scheduler.queue_timeout = std::chrono::milliseconds(static_cast<long long>(queue_timeout_s * 1000));
    cfg.scheduler.kv_budget_bytes = kv_budget_mib << 20;
    cfg.warm_up = !no_warmup;

    serve::Service service(*log);
    auto server = serve::GrpcServer::start(grpc_opts, service, *log);
    if (!server.ok()) return env.fail(server.error());
    // HTTP starts before the model loads, so that /health/live answers and /health/ready
    // says 503 while loading.
    std::unique_ptr<http::HttpServer> web;
    if (http_port >= 0) {
      http::HttpServerConfig hc;
      hc.host = http_host;
      hc.port = static_cast<std::uint16_t>(http_port);
      hc.model_id = !served_name.empty() ? served_name
                    : native      ? std::filesystem::path(model).stem().string()
                                  : model;
      hc.api_key = grpc_opts.api_key;
      hc.max_body_bytes = max_body_kib << 10;
      http::HttpServerCallbacks cb;
      cb.predict = [&service](const engine::Request& r, const engine::TokenSink& sink, const std::atomic<bool>* cancel) {
        return service.stream_predict(r, sink, cancel);
      };
      cb.metrics_text = [&service] { return service.metrics_text(); };
      cb.ready = [&service] { return service.ready(); };
      auto w = http::HttpServer::start(hc, std::move(cb), *log);
      if (!w.ok()) {
        (*server)->shutdown(std::chrono::system_clock::now());
        return env.fail(w.error());
      }
      web = std::move(*w);
    }
    const nlohmann::json http_port_json = web ? nlohmann::json(web->port()) : nlohmann::json(nullptr);
    event({{"schema", "cy-llm.serve/v1"}, {"event", "listening"}, {"uds", grpc_opts.uds_path},
           {"grpc_port", (*server)->tcp_port()}, {"http_port", http_port_json}});
    Result<void> loaded{};
    if (native) {
      loaded = service.load(model, cfg);
    } else {
      ec.model_id = served_name.empty() ? model : served_name;
      if (cfg.scheduler.max_model_len != 0) ec.max_model_len = cfg.scheduler.max_model_len;
      auto eng = setup.factory.create(ec, *log);
      if (!eng.ok()) {
        if (web) web->stop(std::chrono::milliseconds(0));
        (*server)->shutdown(std::chrono::system_clock::now());
        return env.fail(eng.error());
      }
      loaded = service.load_engine(std::move(*eng), model, ec, cfg);
    }
    if (auto& r = loaded; !r.ok()) {
      if (web) web->stop(std::chrono::milliseconds(0));
      (*server)->shutdown(std::chrono::system_clock::now());
      return env.fail(r.error());
    }
    (*server)->set_serving(true);
    event({{"schema", "cy-llm.serve/v1"}, {"event", "ready"}, {"model", service.model_id()},
           {"uds", grpc_opts.uds_path}, {"grpc_port", (*server)->tcp_port()}, {"http_port", http_port_json}});

    while (true) {
      signalfd_siginfo si{};
      const ssize_t n = ::read(sfd, &si, sizeof si);
      if (n != static_cast<ssize_t>(sizeof si)) continue;
      if (si.ssi_signo == SIGHUP) {
        if (file_log) {
          auto r = file_log->reopen();
          log->log(r.ok() ? LogLevel::Info : LogLevel::Warn, r.ok() ? "log file reopened" : r.error().to_string());
        }
        continue;
      }
      log->log(LogLevel::Info, "draining", {{"signal", std::to_string(si.ssi_signo)}});
      (*server)->set_serving(false);
      if (web) web->begin_drain();
      const bool drained = service.drain(std::chrono::milliseconds(static_cast<long long>(drain_timeout_s * 1000)));
      if (web) web->stop(std::chrono::seconds(1));
      (*server)->shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
      event({{"schema", "cy-llm.serve/v1"}, {"event", "stopped"}, {"drained", drained}});
      ::close(sfd);
      return 0;
    }
  });
}
