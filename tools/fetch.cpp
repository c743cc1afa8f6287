// cy-llm-fetch: downloads the artifacts of a plan or lock, verified, cached, resumable.
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <fstream>
#include <iostream>
#include <iterator>

#include "common/cli.h"
#include "cyllm/fetch.h"
#include "cyllm/wheelhouse.h"

using namespace cyllm;

namespace {

Result<std::string> read_input(const std::string& path, const char* what) {
  if (path == "-") return std::string((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  std::ifstream f(path, std::ios::binary);
  if (!f) return Error(Errc::NotFound, std::string("cannot read the ") + what + " \"" + path + "\"");
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string env_either(const char* lower, const char* upper) {
  if (auto v = cli::getenv_str(lower); v && !v->empty()) return *v;
  return cli::getenv_str(upper).value_or("");
}

struct PlanTarget {
  std::string python = "3.12", arch = "x86_64";
  int glibc_minor = 0;
};

// Plan environments -> lock files (indexes + pinned requirements with their hashes).
Result<std::vector<std::pair<std::string, fetch::LockFile>>> locks_from_plan(const std::string& text, PlanTarget& t) {
  auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || doc.value("schema", "") != "cy-llm.plan/v1")
    return Error(Errc::BadInputSchema, "the plan is not cy-llm-resolve output (expected \"schema\": \"cy-llm.plan/v1\")");
  try {
    const auto& target = doc.at("target");
    t.python = target.at("python").get<std::string>();
    t.arch = target.at("architecture").get<std::string>();
    if (target.at("glibc").is_string()) {
      std::string g = target.at("glibc").get<std::string>();
      if (auto dot = g.find('.'); dot != std::string::npos) t.glibc_minor = std::stoi(g.substr(dot + 1));
    }
    std::vector<std::pair<std::string, fetch::LockFile>> out;
    for (const auto& e : doc.at("environments")) {
      std::string text;
      bool first = true;
      for (const auto& i : e.at("indexes")) {
        text += (first ? "--index-url " : "--extra-index-url ") + i.at("url").get<std::string>() + "\n";
        first = false;
      }
      for (const auto& r : e.at("requirements")) {
        text += r.at("requirement").get<std::string>();
        if (r.at("sha256").is_string()) text += " --hash=sha256:" + r.at("sha256").get<std::string>();
        text += "\n";
      }
      auto lock = fetch::parse_lock(text);
      if (!lock) return std::move(lock).error().with_context("in plan environment " + e.at("name").get<std::string>());
      out.emplace_back(e.at("name").get<std::string>(), std::move(*lock));
    }
    return out;
  } catch (const std::exception& ex) {
    return Error(Errc::BadInputSchema, std::string("the plan does not follow cy-llm.plan/v1: ") + ex.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
#if defined(__GLIBC__)
  // Large blocks come and go per file (libcurl's 256 KiB receive buffers, write buffers of
  // up to 1 MiB); with glibc's defaults that memory went back to the kernel every few files
  // and came back as fresh pages, a page fault per 4 KiB received (a third of the page
  // faults of a many-small-files run). Freed memory stays in the heap.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
  cli::ToolEnv env("cy-llm-fetch");
  return cli::guarded_main(env, [&]() -> int {
    CLI::App app{
        "Download exactly the wheels and model files of a plan (cy-llm-resolve output on stdin),\n"
        "a requirements.lock, or explicit sources (https://..., hf://ORG/REPO/FILE[@REVISION]),\n"
        "verify their SHA-256, keep them in a content-addressed cache, and resume interrupted\n"
        "transfers. Prints a manifest (schema cy-llm.fetch/v1).",
        "cy-llm-fetch"};
    cli::CommonOptions common;
    std::vector<std::string> sources, headers;
    std::string plan, lock, dest, cache_dir, install, progress = "auto", ca_bundle, gc, python = "3.12";
    int jobs = 4, retries = 6;
    double connect_timeout = 15, stall_timeout = 30;
    bool offline = false, fsync = false;
    cli::add_common_flags(app, common, "cy-llm-fetch");
    app.add_option("sources", sources, "URLs or hf:// references to fetch")->option_text("SOURCE...");
    app.add_option("--plan", plan, "Plan JSON file (cy-llm-resolve output), or - for stdin")->option_text("FILE");
    app.add_option("--lock", lock, "A requirements.lock: alone, the wheels to fetch; with --plan, the lock cy-llm-resolve wrote. Rewritten with every --hash filled in")->option_text("FILE");
    app.add_option("--python", python, "Target Python for --lock wheels (a plan names its own)")->option_text("3.X");
    app.add_option("--dest", dest, "Put (hard links to) the fetched files in this directory")->option_text("DIR");
    app.add_option("--cache-dir", cache_dir, "Cache directory (default $XDG_CACHE_HOME/cy-llm)")->option_text("DIR");
    app.add_option("-j,--jobs", jobs, "Parallel downloads (default 4)")->check(CLI::Range(1, 64));
    app.add_flag("--offline", offline, "Use only the cache; never touch the network");
    app.add_flag("--fsync", fsync, "Flush each file to disk before it enters the cache (survives power loss; slower)");
    app.add_option("--ca-bundle", ca_bundle, "Also trust the CAs in this PEM file (verification stays on)")->option_text("FILE");
    app.add_option("-H,--header", headers, "Extra request header 'Name: value' (repeatable; never sent to a redirect's other host)");
    app.add_option("--connect-timeout", connect_timeout, "Seconds to wait for a connection (default 15)")->check(CLI::PositiveNumber);
    app.add_option("--stall-timeout", stall_timeout, "Seconds without data before a transfer is retried (default 30)")->check(CLI::PositiveNumber);
    app.add_option("--retries", retries, "Attempts per file on connection errors, 429 and 5xx (default 6)")->check(CLI::Range(1, 100));
    app.add_option("--gc", gc, "Trim the cache to at most SIZE (e.g. 20G), least recently used first, then exit")->option_text("SIZE");
    app.add_option("--install", install, "Create this venv (one per plan environment: VENV/<name>) and pip install the lock from --dest, hash-checked")->option_text("VENV");
    app.add_option("--progress", progress, "Progress on stderr: auto (bars on a terminal), tty, json or none")
        ->check(CLI::IsMember({"auto", "tty", "json", "none"}));
    app.footer("Environment: HF_TOKEN, HF_ENDPOINT, XDG_CACHE_HOME, http_proxy/HTTP_PROXY, https_proxy/HTTPS_PROXY,\n"
               "no_proxy/NO_PROXY. Exit status: 0 ok, 1 a download failed (input/environment), 2 usage,\n"
               "3 internal, 130 interrupted (partial files are kept). See cy-llm-fetch(1).");
    if (auto rc = cli::parse_or_exit(app, argc, argv)) return *rc;
    env.configure(common);
    env.install_signal_handlers();

    if (cache_dir.empty()) {
      if (auto x = cli::getenv_str("XDG_CACHE_HOME"); x && !x->empty()) cache_dir = *x + "/cy-llm";
      else if (auto h = cli::getenv_str("HOME"); h && !h->empty()) cache_dir = *h + "/.cache/cy-llm";
      else return env.fail(Error(Errc::Usage, "no cache directory: set XDG_CACHE_HOME or HOME, or give --cache-dir"));
    }
    fetch::Cache cache(cache_dir);
    if (!gc.empty()) {
      auto size = fetch::parse_size(gc);
      if (!size) return env.fail(Error(Errc::Usage, size.error().message()));
      auto freed = cache.gc(*size);
      if (!freed) return env.fail(freed.error());
      env.logger().log(LogLevel::Info, "freed " + std::to_string(*freed) + " bytes from " + cache_dir);
      if (sources.empty() && plan.empty() && lock.empty()) return 0;
    }
    if (sources.empty() && plan.empty() && lock.empty())
      return env.fail(Error(Errc::Usage, "nothing to fetch: give SOURCEs, --plan FILE|- or --lock FILE"));
    if (!install.empty() && (lock.empty() || dest.empty()))
      return env.fail(Error(Errc::Usage, "--install needs --dest (the wheelhouse) and --lock (what to install)"));

    fetch::DownloadOptions o;
    o.dest_dir = dest;
    o.offline = offline;
    o.fsync = fsync;
    o.jobs = static_cast<std::size_t>(jobs);
    o.extra_headers = headers;
    o.hf_token = cli::getenv_str("HF_TOKEN").value_or("");
    if (auto ep = cli::getenv_str("HF_ENDPOINT"); ep && !ep->empty()) o.hf_endpoint = *ep;
    o.retry.max_attempts = retries;
    for (const auto& h : headers)
      if (h.find(':') == std::string::npos || h.front() == ':')
        return env.fail(Error(Errc::Usage, "--header \"" + h + "\" is not 'Name: value'"));

    fetch::HttpOptions ho;
    ho.ca_bundle = ca_bundle;
    ho.connect_timeout = std::chrono::milliseconds(static_cast<long long>(connect_timeout * 1000));
    ho.stall_timeout = std::chrono::milliseconds(static_cast<long long>(stall_timeout * 1000));
    ho.max_parallel = static_cast<std::size_t>(jobs);
    ho.http_proxy = env_either("http_proxy", "HTTP_PROXY");
    ho.https_proxy = env_either("https_proxy", "HTTPS_PROXY");
    if (ho.https_proxy.empty()) ho.https_proxy = env_either("all_proxy", "ALL_PROXY");
    if (ho.http_proxy.empty()) ho.http_proxy = env_either("all_proxy", "ALL_PROXY");
    ho.no_proxy = env_either("no_proxy", "NO_PROXY");
    auto http = fetch::make_curl_client(ho);

    RootedFilesystem fs("/");
    PosixCommandRunner runner;
    SystemClock clock;
    Context ctx{fs, runner, clock, env.logger(), env.cancel_flag()};
    if (auto r = cache.ensure_layout(); !r.ok()) return env.fail(r.error());

    std::vector<fetch::Artifact> artifacts;
    for (const auto& s : sources) {
      auto a = fetch::parse_source(s, o.hf_endpoint);
      if (!a) return env.fail(a.error());
      artifacts.push_back(std::move(*a));
    }
    auto add_lock = [&](const fetch::LockFile& l, const std::string& envname, const PlanTarget& t) -> Result<void> {
      auto found = fetch::locate_wheels(ctx, *http, cache, l, o, t.python, t.arch, t.glibc_minor);
      if (!found) return std::move(found).error();
      for (auto& a : *found) {
        a.environment = envname;
        artifacts.push_back(std::move(a));
      }
      return {};
    };
    nlohmann::json plan_doc;
    std::optional<wheel::TargetEnvironment> target;
    if (!lock.empty() && plan.empty()) {
      auto text = read_input(lock, "lock");
      if (!text) return env.fail(text.error());
      auto l = fetch::parse_lock(*text);
      if (!l) return env.fail(std::move(l).error().with_context("reading " + lock));
      PlanTarget t;
      t.python = python;
      if (auto r = add_lock(*l, "", t); !r.ok()) return env.fail(r.error());
      wheel::TargetEnvironment te;
      if (auto dot = python.find('.'); dot != std::string::npos) {
        te.python_major = std::atoi(python.substr(0, dot).c_str());
        te.python_minor = std::atoi(python.substr(dot + 1).c_str());
      }
      te.glibc_minor = 99;  // unknown: any manylinux
      target = te;
    }
    if (!plan.empty()) {
      auto text = read_input(plan, "plan");
      if (!text) return env.fail(text.error());
      PlanTarget t;
      auto locks = locks_from_plan(*text, t);
      if (!locks) return env.fail(locks.error());
      plan_doc = nlohmann::json::parse(*text);
      auto te = wheelhouse::target_from_plan(plan_doc);
      if (!te) return env.fail(te.error());
      target = *te;
      for (const auto& [name, l] : *locks)
        if (auto r = add_lock(l, name, t); !r.ok()) return env.fail(r.error());
    }

    std::unique_ptr<fetch::Progress> bar;
    const bool tty = ::isatty(2) != 0;
    if (progress == "json") bar = fetch::make_json_progress(stderr, clock);
    else if (progress == "tty" || (progress == "auto" && tty && !common.quiet)) bar = fetch::make_tty_progress(stderr, clock);
    auto report = fetch::download_all(ctx, *http, cache, artifacts, o, bar.get());
    bar.reset();  // final redraw before the manifest and errors
    if (!report) return env.fail(report.error());

    // Every wheel opened and checked (RECORD hashes, safe paths, METADATA, tags against the
    // target); a refused wheel leaves the wheelhouse.
    std::vector<wheelhouse::FetchedFile> fetched;
    for (auto& a : report->artifacts) {
      if (a.error || !a.artifact.filename.ends_with(".whl")) continue;
      auto info = wheelhouse::verify_wheel(a.path, target);
      if (!info) {
        if (!dest.empty()) std::remove(a.path.c_str());
        a.error = std::move(info).error().with_context("verifying " + a.artifact.filename);
        continue;
      }
      fetched.push_back({info->name, info->version, a.sha256, a.artifact.filename});
    }
    bool all_ok = !report->cancelled;
    for (const auto& a : report->artifacts) all_ok = all_ok && !a.error;
    cli::print_json(fetch::manifest_json(*report, dest, cache_dir));
    if (report->cancelled) return static_cast<int>(ExitCode::Interrupted);

    // The locks, every --hash filled in (first-seen hashes marked), then the venvs.
    if (all_ok && !lock.empty()) {
      std::vector<wheelhouse::EnvironmentInstall> envs;
      if (!plan.empty()) {
        auto p = wheelhouse::plan_installs(plan_doc, install.empty() ? std::string("venv") : install, lock);
        if (!p) return env.fail(p.error());
        envs = std::move(*p);
      } else {
        envs.push_back({"default", install, lock});
      }
      for (const auto& e : envs) {
        auto text = read_input(e.lock_path, "lock");
        if (!text) return env.fail(text.error());
        auto parsed = wheelhouse::parse_lock(*text);
        if (!parsed) return env.fail(parsed.error());
        auto filled = wheelhouse::fill_lock(*parsed, fetched);
        if (!filled) return env.fail(std::move(filled).error().with_context("filling " + e.lock_path));
        if (auto w = wheelhouse::write_lock(e.lock_path, *filled); !w.ok()) return env.fail(w.error());
        if (install.empty()) continue;
        env.logger().log(LogLevel::Info, "installing environment " + e.name + " into " + e.venv_dir);
        if (auto r = wheelhouse::install_venv(ctx, e.venv_dir, dest, e.lock_path); !r.ok()) return env.fail(r.error());
      }
    }
    int rc = 0;
    for (const auto& a : report->artifacts)
      if (a.error) {
        int code = env.fail(*a.error);
        if (rc == 0) rc = code;
      }
    return rc;
  });
}
