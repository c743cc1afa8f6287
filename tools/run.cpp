// cy-llm-run: one prompt through the native C++ engine, tokens streamed to stdout.
#include "common/cli.h"
#include "not_implemented.h"

using namespace cyllm;

int main(int argc, char** argv) {
  cli::ToolEnv env("cy-llm-run");
  return cli::guarded_main(env, [&]() -> int {
    CLI::App app{
        "Run one prompt through the native C++ engine on a GGUF model and stream the generated\n"
        "text to stdout; --format json prints one final document with timings instead.",
        "cy-llm-run"};
    cli::CommonOptions common;
    std::string model, prompt, prompt_file;
    int n_predict = 128, ctx_size = 0, threads = 0;
    double temp = 0.8;
    bool inspect = false;
    cli::add_common_flags(app, common, "cy-llm-run");
    app.add_option("-m,--model", model, "GGUF model file")->option_text("FILE");
    app.add_option("-p,--prompt", prompt, "Prompt text");
    app.add_option("-f,--file", prompt_file, "Read the prompt from FILE (- for stdin)")->option_text("FILE");
    app.add_option("-n,--n-predict", n_predict, "Maximum tokens to generate");
    app.add_option("-c,--ctx-size", ctx_size, "Context length (default: from the model)");
    app.add_option("-t,--threads", threads, "Threads (default: effective CPUs)");
    app.add_option("--temp", temp, "Sampling temperature (0 = greedy)");
    app.add_flag("--inspect", inspect, "Print the model's metadata and tensor table as JSON");
    app.footer("Exit status: 0 ok, 1 input/environment, 2 usage, 3 internal, 130 interrupted.\nSee cy-llm-run(1).");
    if (auto rc = cli::parse_or_exit(app, argc, argv)) return *rc;
    env.configure(common);
    return cli::not_implemented(env, "the native engine (cy-llm-run)", 5);
  });
}
