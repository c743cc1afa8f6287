// cy-llm-resolve: which engine and exact package versions run on a HardwareProfile.
#include "common/cli.h"
#include "not_implemented.h"

using namespace cyllm;

int main(int argc, char** argv) {
  cli::ToolEnv env("cy-llm-resolve");
  return cli::guarded_main(env, [&]() -> int {
    CLI::App app{
        "Read a HardwareProfile (cy-llm-detect output) and choose the inference engine and the\n"
        "exact package versions that run on it, from the shipped dependency registry; explain\n"
        "conflicts; print a plan (schema cy-llm.plan/v1) and optionally write a hash-pinned\n"
        "requirements.lock.",
        "cy-llm-resolve"};
    cli::CommonOptions common;
    std::string profile = "-", registry, engine, engine_version, lock;
    std::vector<std::string> constraints;
    bool yes = false, explain = false;
    cli::add_common_flags(app, common, "cy-llm-resolve");
    app.add_option("profile", profile, "HardwareProfile JSON file, or - for stdin (default)")
        ->option_text("PROFILE");
    app.add_option("--registry", registry, "Registry file or directory instead of the built-in one")
        ->option_text("FILE|DIR");
    app.add_option("--engine", engine, "Only consider this engine (vllm, tensorrt_llm, mindie, cy-llm, ...)");
    app.add_option("--engine-version", engine_version, "Pin the engine version");
    app.add_option("--constraint", constraints, "Extra PEP 508 constraint, e.g. 'protobuf<6' (repeatable)");
    app.add_option("--lock", lock, "Write a pip requirements.lock here (atomically)")->option_text("FILE");
    app.add_flag("-y,--yes", yes, "Never prompt; take the recommended choice");
    app.add_flag("--explain", explain, "Print the full table of candidates and reasons");
    app.footer("Exit status: 0 ok, 1 input/environment, 2 usage, 3 internal, 130 interrupted.\nSee cy-llm-resolve(1).");
    if (auto rc = cli::parse_or_exit(app, argc, argv)) return *rc;
    env.configure(common);
    return cli::not_implemented(env, "dependency resolution (cy-llm-resolve)", 3);
  });
}
