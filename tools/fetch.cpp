// cy-llm-fetch: downloads the artifacts of a plan or lock, verified, cached, resumable.
#include "common/cli.h"
#include "not_implemented.h"

using namespace cyllm;

int main(int argc, char** argv) {
  cli::ToolEnv env("cy-llm-fetch");
  return cli::guarded_main(env, [&]() -> int {
    CLI::App app{
        "Download exactly the wheels and model files of a plan (cy-llm-resolve output on stdin),\n"
        "a requirements.lock, or explicit sources (https://..., hf://ORG/REPO/FILE[@REVISION]),\n"
        "verify their SHA-256, keep them in a content-addressed cache, and resume interrupted\n"
        "transfers. Prints a manifest (schema cy-llm.fetch/v1).",
        "cy-llm-fetch"};
    cli::CommonOptions common;
    std::vector<std::string> sources;
    std::string plan, lock, dest, cache_dir, install, progress = "auto";
    int jobs = 4;
    bool offline = false;
    cli::add_common_flags(app, common, "cy-llm-fetch");
    app.add_option("sources", sources, "URLs or hf:// references to fetch")->option_text("SOURCE...");
    app.add_option("--plan", plan, "Plan JSON file, or - for stdin")->option_text("FILE");
    app.add_option("--lock", lock, "A requirements.lock to fetch (and fill in hashes)")->option_text("FILE");
    app.add_option("--dest", dest, "Wheelhouse / output directory")->option_text("DIR");
    app.add_option("--cache-dir", cache_dir, "Cache directory (default $XDG_CACHE_HOME/cy-llm)")->option_text("DIR");
    app.add_option("-j,--jobs", jobs, "Parallel downloads")->check(CLI::Range(1, 64));
    app.add_flag("--offline", offline, "Use only the cache; never touch the network");
    app.add_option("--install", install, "Create/update this venv from the fetched wheels")->option_text("VENV");
    app.add_option("--progress", progress, "Progress display")->check(CLI::IsMember({"auto", "tty", "json", "none"}));
    app.footer("Exit status: 0 ok, 1 input/environment, 2 usage, 3 internal, 130 interrupted.\nSee cy-llm-fetch(1).");
    if (auto rc = cli::parse_or_exit(app, argc, argv)) return *rc;
    env.configure(common);
    return cli::not_implemented(env, "artifact download (cy-llm-fetch)", 4);
  });
}
