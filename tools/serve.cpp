// cy-llm-serve: the inference server (gRPC over a Unix socket, OpenAI-compatible HTTP).
#include "common/cli.h"
#include "not_implemented.h"

using namespace cyllm;

int main(int argc, char** argv) {
  cli::ToolEnv env("cy-llm-serve");
  return cli::guarded_main(env, [&]() -> int {
    CLI::App app{
        "Serve a model: gRPC InferenceService.StreamPredict over a Unix socket (and optionally\n"
        "TCP), an OpenAI-compatible HTTP API, health endpoints and Prometheus metrics.",
        "cy-llm-serve"};
    cli::CommonOptions common;
    std::string model, uds = "/run/cy-llm/inference.sock", api_key;
    int http_port = 0, grpc_port = 0;
    cli::add_common_flags(app, common, "cy-llm-serve");
    app.add_option("-m,--model", model, "GGUF model file")->option_text("FILE");
    app.add_option("--uds", uds, "Unix socket path for gRPC")->option_text("PATH");
    app.add_option("--http-port", http_port, "Serve the OpenAI-compatible HTTP API on this loopback port");
    app.add_option("--grpc-port", grpc_port, "Also serve gRPC on TCP (needs --api-key or TLS)");
    app.add_option("--api-key", api_key, "Require this bearer key on TCP and HTTP");
    app.footer("Exit status: 0 ok, 1 input/environment, 2 usage, 3 internal, 130 interrupted.\nSee cy-llm-serve(1).");
    if (auto rc = cli::parse_or_exit(app, argc, argv)) return *rc;
    env.configure(common);
    return cli::not_implemented(env, "the inference server (cy-llm-serve)", 7);
  });
}
