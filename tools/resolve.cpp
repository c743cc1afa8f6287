// cy-llm-resolve: which engine and exact package versions run on a HardwareProfile.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>

#include "common/cli.h"
#include "cyllm/atomic_file.h"
#include "cyllm/detect.h"
#include "cyllm/registry.h"
#include "cyllm/resolve.h"

using namespace cyllm;

namespace {

Result<std::string> read_input(const std::string& path) {
  if (path == "-") {
    std::string s((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    return s;
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) return Error(Errc::NotFound, "cannot read the profile \"" + path + "\"");
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}


// Numbered choices on the terminal, recommended first. Returns the candidate index.
std::optional<std::size_t> prompt_engine(const std::vector<resolve::Candidate>& cands) {
  std::vector<std::size_t> choices;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < cands.size(); ++i)
    if (cands[i].viable && seen.insert(cands[i].engine).second) choices.push_back(i);
  if (choices.size() < 2) return std::nullopt;
  std::fprintf(stderr, "Several engines run on this host:\n");
  for (std::size_t k = 0; k < choices.size(); ++k) {
    const auto& c = cands[choices[k]];
    std::fprintf(stderr, "  %zu) %s %s%s  - %s%s\n", k + 1, c.engine.c_str(), c.version.c_str(),
                 c.variant.empty() ? "" : (" (" + c.variant + ")").c_str(), c.tradeoff.c_str(),
                 k == 0 ? "  [recommended]" : "");
  }
  for (;;) {
    std::fprintf(stderr, "Choose 1-%zu [1]: ", choices.size());
    std::string line;
    if (!std::getline(std::cin, line)) return choices[0];
    if (line.empty()) return choices[0];
    try {
      std::size_t n = std::stoul(line);
      if (n >= 1 && n <= choices.size()) return choices[n - 1];
    } catch (...) {
    }
    std::fprintf(stderr, "\"%s\" is not one of the choices.\n", line.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  cli::ToolEnv env("cy-llm-resolve");
  return cli::guarded_main(env, [&]() -> int {
    CLI::App app{
        "Read a HardwareProfile (cy-llm-detect output) and choose the inference engine and the\n"
        "exact package versions that run on it, from the shipped dependency registry; explain\n"
        "conflicts; print a plan (schema cy-llm.plan/v1) and optionally write a\n"
        "requirements.lock per environment. Without PROFILE and with stdin on a terminal, the\n"
        "host running the command is detected.",
        "cy-llm-resolve"};
    cli::CommonOptions common;
    std::string profile_path, registry_path, lock;
    resolve::ResolveOptions o;
    bool yes = false, do_explain = false;
    int glibc_minor = 0;
    double params = 0;
    cli::add_common_flags(app, common, "cy-llm-resolve");
    app.add_option("profile", profile_path, "HardwareProfile JSON file, or - for stdin")
        ->option_text("PROFILE");
    app.add_option("--registry", registry_path,
                   "Registry file or directory instead of the built-in one (also $CYLLM_REGISTRY)")
        ->option_text("FILE|DIR");
    app.add_option("--engine", o.engine, "Only consider this engine (vllm, tensorrt_llm, vllm-ascend, cy-llm, ...)");
    app.add_option("--engine-version", o.engine_version, "Pin the engine version (needs --engine)");
    app.add_option("--constraint", o.constraints, "Extra PEP 508 constraint, e.g. 'protobuf<6' (repeatable)");
    app.add_option("--python", o.python, "Target Python version of the environments (default 3.12)")
        ->option_text("3.X");
    app.add_option("--glibc", glibc_minor, "Target glibc 2.N, for manylinux wheel checks (default: the profile's)")
        ->option_text("N")
        ->check(CLI::Range(5, 98));
    app.add_option("--model-params", params, "Model size in billions of parameters, to pick the preset")
        ->option_text("B")
        ->check(CLI::PositiveNumber);
    app.add_flag("--isolate", o.isolate, "Always install the worker and the engine in separate environments");
    app.add_flag("--single-env", o.single_env, "Never split environments: a clash is an error (exit 1)");
    app.add_option("--lock", lock,
                   "Write a pip requirements.lock here, atomically (a second environment goes to "
                   "FILE with .base before the extension)")
        ->option_text("FILE");
    app.add_flag("-y,--yes", yes, "Never prompt; take the recommended choice");
    app.add_flag("--explain", do_explain, "Print the full table of candidates and reasons (stderr with JSON output)");
    app.footer(
        "Exit status: 0 ok (also when the base and engine stacks clash and were split into two\n"
        "environments), 1 no engine runs / unresolvable conflict / bad profile or registry,\n"
        "2 usage, 3 internal, 130 interrupted. See cy-llm-resolve(1).");
    if (auto rc = cli::parse_or_exit(app, argc, argv)) return *rc;
    env.configure(common);
    if (o.isolate && o.single_env)
      return env.fail(Error(Errc::Usage, "--isolate and --single-env contradict each other"));
    if (glibc_minor) o.glibc_minor = glibc_minor;
    if (params > 0) o.model_params_billion = params;

    detect::HardwareProfile host;
    const bool stdin_tty = ::isatty(0) != 0;
    if (profile_path.empty() && stdin_tty) {
      RootedFilesystem fs("/");
      PosixCommandRunner runner;
      SystemClock clock;
      Context ctx{fs, runner, clock, env.logger(), env.cancel_flag()};
      detect::DetectOptions d;
      d.cuda_visible_devices = cli::getenv_str("CUDA_VISIBLE_DEVICES");
      d.path = cli::path_entries();
      host = detect::detect_hardware(ctx, d);
    } else {
      auto text = read_input(profile_path.empty() ? "-" : profile_path);
      if (!text) return env.fail(text.error());
      auto doc = nlohmann::json::parse(*text, nullptr, false);
      if (doc.is_discarded())
        return env.fail(Error(Errc::BadInputSchema, "the profile is not JSON (expected cy-llm-detect output)"));
      auto p = detect::profile_from_json(doc);
      if (!p) return env.fail(p.error());
      host = std::move(*p);
    }

    auto reg = cli::load_registry_for_tool(registry_path);
    if (!reg) return env.fail(reg.error());
    auto cands = resolve::list_candidates(*reg, host, o);
    if (!cands) return env.fail(cands.error());
    std::optional<std::size_t> pick;
    for (std::size_t i = 0; i < cands->size() && !pick; ++i)
      if ((*cands)[i].viable) pick = i;
    if (!pick) {
      auto r = resolve::resolve(*reg, host, o);  // builds the NoCandidate explanation
      return env.fail(r.ok() ? Error(Errc::Internal, "no candidate") : r.error());
    }
    if (o.engine.empty() && !yes && stdin_tty && ::isatty(2))
      if (auto chosen = prompt_engine(*cands)) pick = chosen;
    auto plan = resolve::make_plan(*reg, host, o, std::move(*cands), *pick);
    if (!plan) return env.fail(plan.error());
    for (const auto& w : plan->warnings) env.logger().log(LogLevel::Warn, w.message, {{"code", w.code}});
    for (const auto& k : plan->conflicts) env.logger().log(LogLevel::Warn, k.explanation, {{"code", "resolve.conflict"}});

    if (!lock.empty()) {
      std::string command = "cy-llm-detect | cy-llm-resolve --engine " + plan->candidates[*plan->chosen].engine +
                            " --engine-version " + plan->candidates[*plan->chosen].version + " --lock " + lock;
      for (const auto& e : plan->environments) {
        std::string path = resolve::lock_path_for(lock, *plan, e);
        if (auto w = write_file_atomic(path, resolve::to_lock(*plan, e, command)); !w.ok())
          return env.fail(w.error());
        env.logger().log(LogLevel::Info, "wrote " + path + " (environment " + e.name + ")");
      }
    }
    if (do_explain) {
      std::string t = resolve::explain(*plan);
      std::fwrite(t.data(), 1, t.size(), common.format == cli::OutputFormat::Text ? stdout : stderr);
    }
    if (common.format == cli::OutputFormat::Text) {
      if (!do_explain) {
        std::string t = resolve::explain(*plan);
        std::fwrite(t.data(), 1, t.size(), stdout);
      }
      return std::fflush(stdout) == 0 ? 0 : 1;
    }
    if (!cli::print_json(resolve::to_json(*plan))) return env.fail(Error(Errc::Io, "cannot write to stdout"));
    return 0;
  });
}
