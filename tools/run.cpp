// cy-llm-run: one prompt through an engine (native GGUF by default, or an external one),
// tokens streamed to stdout.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "common/cli.h"
#include "common/engine_flags.h"
#include "cyllm/engine.h"
#include "cyllm/external.h"
#include "cyllm/gguf.h"

using namespace cyllm;

namespace {

Result<std::string> read_prompt(const std::string& path) {
  if (path == "-")
    return std::string((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  std::ifstream f(path, std::ios::binary);
  if (!f) return Error(Errc::NotFound, "cannot read the prompt file \"" + path + "\"");
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// $XDG_CACHE_HOME, else $HOME/.cache.
Result<std::string> cache_dir() {
  if (auto x = cli::getenv_str("XDG_CACHE_HOME"); x && !x->empty()) return *x;
  if (auto h = cli::getenv_str("HOME"); h && !h->empty()) return *h + "/.cache";
  return Error(Errc::NotFound, "neither $XDG_CACHE_HOME nor $HOME is set; cannot place the demo model");
}

// Run-only options of external engines (the rest are cli::EngineFlags).
struct LaunchFlags {
  std::string ray_address;
  std::uint32_t nnodes = 1;
  std::uint16_t port = 8000;
  bool print = false;
};

// --print-launch: the command line, environment and config files that would start the
// engine (or the multi-node plan), on stdout.
int print_launch(cli::ToolEnv& env, const cli::EngineFlags& ef, const cli::EngineSetup& setup, const LaunchFlags& f,
                 const std::string& model, const engine::EngineConfig& cfg) {
  auto usage = [&](const std::string& msg) { return env.fail(Error(Errc::Usage, msg)); };
  if (ef.native() || ef.engine == "openai")
    return usage("--print-launch needs an external engine: --engine vllm|vllm-ascend|tensorrt_llm|mindie or --plan");
  if (model.empty()) return usage("no model: pass -m MODEL (a path or hub id the engine loads)");
  external::LaunchInputs in;
  in.engine = ef.engine;
  in.version = ef.engine_version;
  in.config = cfg;
  in.kv_cache_dtype = setup.settings.kv_cache_dtype;
  in.model = model;
  in.venv = cli::absolute(ef.venv);
  in.port = f.port;
  in.nnodes = f.nnodes;
  in.ray_address = f.ray_address;
  in.work_dir = cli::absolute(ef.work_dir);
  if (in.work_dir.empty()) {
    auto dir = cache_dir();
    if (!dir) return env.fail(dir.error());
    in.work_dir = cli::absolute(*dir) + "/cy-llm/launch";
  }
  std::string text;
  if (!f.ray_address.empty() || f.nnodes > 1) {
    auto plan = external::build_multinode_launch(setup.registry, in);
    if (!plan) return env.fail(plan.error());
    text = external::format_multinode_launch(*plan);
  } else {
    auto spec = external::build_launch(setup.registry, in);
    if (!spec) return env.fail(spec.error());
    text = external::format_launch(*spec);
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  cli::ToolEnv env("cy-llm-run");
  return cli::guarded_main(env, [&]() -> int {
    CLI::App app{
        "Run one prompt through an engine and stream the generated text to stdout; --format json\n"
        "prints one final document with timings instead. The engine is the native C++ engine on\n"
        "a GGUF model unless --engine (or --plan) names an external one (vLLM, TensorRT-LLM,\n"
        "MindIE: started from --venv, stopped after the prompt) or openai (a running server).",
        "cy-llm-run"};
    cli::CommonOptions common;
    common.format = cli::OutputFormat::Text;
    std::string model, prompt, prompt_file, system, chat_template;
    engine::Request req;
    engine::EngineConfig cfg;
    req.sampling.seed = 42;
    int n_predict = 128;
    bool inspect = false, chat = false, demo = false, prompt_given = false;
    cli::add_common_flags(app, common, "cy-llm-run");
    app.get_option("--format")->description("Output format on stdout: text (default; streamed as generated) or json");
    app.add_option("-m,--model", model, "GGUF model file")->option_text("FILE");
    app.add_option("-p,--prompt", prompt, "Prompt text")->option_text("TEXT");
    app.add_option("-f,--file", prompt_file, "Read the prompt from FILE (- for stdin)")->option_text("FILE");
    app.add_option("-n,--n-predict", n_predict, "Maximum tokens to generate (default 128)")->check(CLI::Range(0, 1 << 24));
    app.add_option("-c,--ctx-size", cfg.max_model_len, "Context length (default: the model's)");
    app.add_option("-t,--threads", cfg.n_threads, "Threads (default: all CPUs)");
    std::string kv_type;
    app.add_option("--kv-type", kv_type, "KV-cache element type: f32, f16 (default) or q8_0")
        ->check(CLI::IsMember({"f32", "f16", "q8_0"}))
        ->option_text("TYPE");
    app.add_option("--temp", req.sampling.temperature, "Sampling temperature (0 = greedy; default 0.8)");
    app.add_option("--top-k", req.sampling.top_k, "Keep the K most likely tokens (0 = off; default 40)");
    app.add_option("--top-p", req.sampling.top_p, "Keep the smallest set with probability mass P (1 = off; default 0.95)");
    app.add_option("--min-p", req.sampling.min_p, "Drop tokens below P times the top probability (0 = off; default 0.05)");
    app.add_option("--repeat-penalty", req.sampling.repeat_penalty, "Penalise recent tokens (1 = off; default 1)");
    app.add_option("--repeat-last-n", req.sampling.penalty_last_n, "Window of the penalties in tokens (default 64, -1 = all)");
    app.add_option("--presence-penalty", req.sampling.presence_penalty, "Subtract from recent tokens' logits (default 0)");
    app.add_option("--frequency-penalty", req.sampling.frequency_penalty, "Subtract per occurrence of recent tokens (default 0)");
    app.add_option("--seed", req.sampling.seed, "Random seed; the same seed gives the same text (default 42)");
    app.add_option("--stop", req.stop, "Stop when the text contains STR; STR is not printed (repeatable)")->option_text("STR");
    app.add_flag("--chat", chat, "Wrap the prompt in the model's chat template as a user message");
    app.add_option("--system", system, "System prompt for --chat")->option_text("TEXT");
    app.add_option("--chat-template", chat_template,
                   "Chat template: llama2, llama3, chatml, mistral, gemma, phi3 (default: from the model)")
        ->option_text("NAME");
    app.add_flag("--inspect", inspect, "Print the model's metadata and tensor table as JSON and exit");
    app.add_flag("--demo", demo, "Use a generated demo model with RANDOM weights (no download needed)");
    cli::EngineFlags ef;
    cli::add_engine_flags(app, ef);
    LaunchFlags lf;
    app.add_option("--ray-address", lf.ray_address, "Multi-node (--print-launch): the Ray head's HOST:PORT")
        ->option_text("HOST:PORT")
        ->group("Engine");
    app.add_option("--nnodes", lf.nnodes, "Multi-node (--print-launch): number of nodes (default 1)")
        ->option_text("N")
        ->group("Engine");
    app.add_option("--port", lf.port, "--print-launch: the server's port (default 8000; a run picks a free one)")
        ->option_text("N")
        ->group("Engine");
    app.add_flag("--print-launch", lf.print, "Print how the external engine would be started (command line, "
                 "environment, config files) and exit")
        ->group("Engine");
    app.footer("Exit status: 0 ok, 1 input/environment, 2 usage, 3 internal, 130 interrupted.\nSee cy-llm-run(1).");
    if (auto rc = cli::parse_or_exit(app, argc, argv)) return *rc;
    env.configure(common);
    prompt_given = app.count("--prompt") > 0;
    auto usage = [&](const std::string& msg) { return env.fail(Error(Errc::Usage, msg)); };

    cli::EngineSetup setup;
    if (auto r = cli::apply_engine_flags(ef, cfg, setup); !r) return env.fail(r.error());
    if (lf.print) return print_launch(env, ef, setup, lf, model, cfg);
    const bool native = ef.native();
    if (!native && (demo || inspect || !kv_type.empty()))
      return usage(std::string(demo ? "--demo" : inspect ? "--inspect" : "--kv-type") + " needs the native engine");
    if (native && (cfg.tensor_parallel_size != 1 || cfg.pipeline_parallel_size != 1 || !cfg.quantization.empty()))
      return usage("--tensor-parallel-size, --pipeline-parallel-size and --quantization apply to external engines; "
                   "the native engine runs the GGUF file as stored on the CPU");
    if (demo && !model.empty()) return usage("--demo and -m/--model exclude each other");
    if (demo) {
      auto dir = cache_dir();
      if (!dir) return env.fail(dir.error());
      auto path = engine::ensure_demo_model(*dir);
      if (!path) return env.fail(path.error());
      model = *path;
      std::fprintf(stderr,
                   "cy-llm-run: DEMO MODEL: %s has RANDOM weights; its output is meaningless "
                   "text. Use -m MODEL.gguf for a real model.\n", model.c_str());
    }
    if (model.empty() && ef.engine != "openai") return usage("no model: pass -m MODEL.gguf (or --demo)");
    if (inspect) {
      auto file = gguf::File::open(model);
      if (!file) return env.fail(std::move(file).error().with_context("inspecting " + model));
      return cli::print_json(gguf::inspect_json(*file)) ? 0 : 1;
    }
    if (prompt_given && !prompt_file.empty()) return usage("-p/--prompt and -f/--file exclude each other");
    if (!prompt_file.empty()) {
      auto text = read_prompt(prompt_file);
      if (!text) return env.fail(text.error());
      prompt = *text;
    } else if (!prompt_given) {
      return usage("no prompt: pass -p TEXT or -f FILE (- for stdin)");
    }
    if (!system.empty() && !chat) return usage("--system needs --chat");
    if (!chat_template.empty() && !chat) return usage("--chat-template needs --chat");
    if (chat) {
      if (!system.empty()) req.messages.push_back({"system", system});
      req.messages.push_back({"user", prompt});
      req.chat_template = chat_template;
    } else {
      req.prompt = prompt;
    }
    req.max_tokens = static_cast<std::uint32_t>(n_predict);

    auto eng = setup.factory.create(cfg, env.logger());
    if (!eng) return env.fail(eng.error());
    if (!kv_type.empty()) cfg.extra_config["kv_type"] = kv_type;
    if (auto r = (*eng)->load_model(model, cfg); !r) return env.fail(r.error());

    env.install_signal_handlers();  // Ctrl-C now stops generation, keeping what was printed
    const bool stream = common.format == cli::OutputFormat::Text;
    bool stdout_failed = false;
    auto sink = [&](std::string_view text, engine::TokenId) {
      if (!stream) return true;
      std::fwrite(text.data(), 1, text.size(), stdout);
      stdout_failed = std::fflush(stdout) != 0;  // a closed pipe stops generation
      return !stdout_failed;
    };
    auto done = (*eng)->stream_predict(req, sink, env.cancel_flag());
    if (!done) {
      if (stream && done.error().code() == Errc::EngineCancelled) std::fputc('\n', stdout);
      return env.fail(done.error());
    }
    const engine::Completion& c = *done;
    if (stdout_failed) return env.fail(Error(Errc::Io, "writing the generated text to stdout failed"));
    if (stream) {
      std::fputc('\n', stdout);
      std::fflush(stdout);
    } else if (!cli::print_json(engine::completion_json(c))) {
      return 1;
    }
    env.logger().log(LogLevel::Info, "generation finished",
                     {{"finish_reason", std::string(engine::finish_reason_name(c.finish_reason))},
                      {"prompt_tokens", std::to_string(c.usage.prompt_tokens)},
                      {"completion_tokens", std::to_string(c.usage.completion_tokens)},
                      {"ttft_ms", std::to_string(c.timings.ttft_ms)},
                      {"generation_tokens_per_s", std::to_string(c.timings.generation_tokens_per_s)}});
    return c.finish_reason == engine::FinishReason::Cancelled ? 130 : 0;
  });
}
