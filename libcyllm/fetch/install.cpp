// Installing locked environments: plan environments -> venv directories, and
// `python -m venv` + `pip install --no-index --require-hashes` run through the Context's
// CommandRunner (so tests can fake it and nothing here spawns processes by itself).
#include <filesystem>

#include "cyllm/resolve.h"
#include "cyllm/wheelhouse.h"
#include "util/strings.h"

namespace cyllm::wheelhouse {
namespace {

namespace fs = std::filesystem;

// The last `max_lines` non-empty lines of `text` (pip's error is at the end).
std::string tail_lines(std::string_view text, std::size_t max_lines = 20, std::size_t max_bytes = 4000) {
  auto lines = util::split_lines(text);
  std::vector<std::string_view> kept;
  for (auto it = lines.rbegin(); it != lines.rend() && kept.size() < max_lines; ++it)
    if (!util::trim(*it).empty()) kept.push_back(*it);
  std::string out;
  for (auto it = kept.rbegin(); it != kept.rend(); ++it) out += std::string(*it) + "\n";
  if (out.size() > max_bytes) out = "..." + out.substr(out.size() - max_bytes);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string join(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

Result<void> run_step(const Context& ctx, const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                      const std::string& what) {
  if (ctx.cancelled()) return Error(Errc::Cancelled, "cancelled before " + what);
  ctx.log.log(LogLevel::Info, what, {{"command", join(argv)}});
  auto r = ctx.runner.run(argv, timeout);
  if (!r.ok()) return Error(r.error()).with_context(what);
  if (r->exit_code != 0) {
    std::string tail = tail_lines(r->err);
    if (tail.empty()) tail = tail_lines(r->out);
    return Error(Errc::InstallFailed, what + " failed (exit " + std::to_string(r->exit_code) + "): \"" +
                                          join(argv) + "\"" + (tail.empty() ? "" : ":\n" + tail));
  }
  return {};
}

}  // namespace

Result<wheel::TargetEnvironment> target_from_plan(const nlohmann::json& plan) {
  wheel::TargetEnvironment t;
  if (!plan.is_object() || !plan.contains("target") || !plan["target"].is_object())
    return Error(Errc::Parse, "the plan has no \"target\" object");
  const auto& j = plan["target"];
  if (!j.contains("python") || !j["python"].is_string())
    return Error(Errc::Parse, "the plan's target has no \"python\" string");
  auto py = util::split(j["python"].get_ref<const std::string&>(), '.');
  auto major = py.size() == 2 ? util::parse_u64(py[0]) : std::nullopt;
  auto minor = py.size() == 2 ? util::parse_u64(py[1]) : std::nullopt;
  if (!major || !minor || *major > 99 || *minor > 999)
    return Error(Errc::Parse, "the plan's target.python " + util::quote(j["python"].dump()) + " is not \"3.X\"");
  t.python_major = static_cast<int>(*major);
  t.python_minor = static_cast<int>(*minor);
  if (j.contains("architecture")) {
    if (!j["architecture"].is_string() || j["architecture"].get_ref<const std::string&>().empty())
      return Error(Errc::Parse, "the plan's target.architecture is not a string");
    t.architecture = j["architecture"].get<std::string>();
  }
  t.glibc_minor = 99;  // null: not known, every manylinux accepted (as cy-llm-resolve does)
  if (j.contains("glibc") && !j["glibc"].is_null()) {
    if (!j["glibc"].is_string()) return Error(Errc::Parse, "the plan's target.glibc is not a string or null");
    auto g = util::split(j["glibc"].get_ref<const std::string&>(), '.');
    auto gmaj = g.size() == 2 ? util::parse_u64(g[0]) : std::nullopt;
    auto gmin = g.size() == 2 ? util::parse_u64(g[1]) : std::nullopt;
    if (!gmaj || !gmin || *gmaj != 2 || *gmin > 99)
      return Error(Errc::Parse, "the plan's target.glibc " + util::quote(j["glibc"].dump()) + " is not \"2.N\"");
    t.glibc_minor = static_cast<int>(*gmin);
  }
  return t;
}

Result<std::vector<EnvironmentInstall>> plan_installs(const nlohmann::json& plan, const std::string& venv_base,
                                                      const std::string& lock_path) {
  if (!plan.is_object() || !plan.contains("environments") || !plan["environments"].is_array())
    return Error(Errc::Parse, "the plan has no \"environments\" array");
  // resolve::lock_path_for looks only at the environments' names and count.
  resolve::Plan names;
  for (const auto& e : plan["environments"]) {
    if (!e.is_object() || !e.contains("name") || !e["name"].is_string())
      return Error(Errc::Parse, "a plan environment has no \"name\" string");
    const auto& n = e["name"].get_ref<const std::string&>();
    if (n.empty() || n == "." || n == ".." || n.find('/') != std::string::npos || n.find('\\') != std::string::npos)
      return Error(Errc::Parse, "plan environment name " + util::quote(n) + " cannot name a directory");
    resolve::Environment env;
    env.name = n;
    names.environments.push_back(std::move(env));
  }
  if (names.environments.empty()) return Error(Errc::Parse, "the plan has no environments");
  std::vector<EnvironmentInstall> out;
  for (const auto& env : names.environments) {
    EnvironmentInstall i;
    i.name = env.name;
    i.venv_dir = names.environments.size() == 1 ? venv_base : (fs::path(venv_base) / env.name).string();
    i.lock_path = resolve::lock_path_for(lock_path, names, env);
    out.push_back(std::move(i));
  }
  return out;
}

Result<void> install_venv(const Context& ctx, const std::string& venv_dir, const std::string& wheelhouse_dir,
                          const std::string& lock_path, const InstallOptions& options) {
  const std::string venv_python = (fs::path(venv_dir) / "bin" / "python").string();
  std::error_code ec;
  if (!fs::is_directory(wheelhouse_dir, ec))
    return Error(Errc::NotFound, "wheelhouse " + util::quote(wheelhouse_dir) + " is not a directory");
  if (!fs::is_regular_file(lock_path, ec))
    return Error(Errc::NotFound, "lock " + util::quote(lock_path) + " does not exist");
  if (!fs::exists(venv_python, ec)) {
    // The runner spawns without a PATH search; a bare name goes through env(1).
    std::vector<std::string> argv;
    if (options.python.find('/') == std::string::npos) argv = {"/usr/bin/env", options.python};
    else argv = {options.python};
    argv.insert(argv.end(), {"-m", "venv", venv_dir});
    CYLLM_TRY_VOID(run_step(ctx, argv, options.venv_timeout, "creating the venv " + venv_dir));
    if (!fs::exists(venv_python, ec))
      return Error(Errc::InstallFailed, "\"" + join(argv) + "\" succeeded but " + util::quote(venv_python) +
                                            " does not exist");
  }
  std::vector<std::string> pip = {venv_python, "-m", "pip", "install", "--no-index", "--find-links",
                                  wheelhouse_dir, "--require-hashes", "--disable-pip-version-check",
                                  "--no-input", "-r", lock_path};
  return run_step(ctx, pip, options.pip_timeout, "installing " + lock_path + " into " + venv_dir);
}

}  // namespace cyllm::wheelhouse
