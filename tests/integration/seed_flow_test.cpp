// The seed's setup flow end to end, offline: cy-llm-detect on a fixture root | cy-llm-resolve
// against a registry of toy wheels | (fetch: here the wheelhouse is built locally by
// make_wheel.py; each wheel verified against the plan's target and its hash recorded the
// way cy-llm-fetch does) | the locks filled with those hashes | one venv per plan
// environment installed with pip --no-index --require-hashes | an import in each.
//
// The registry reproduces the base/engine clash (toyproto<6 vs 6.x), so the plan has two
// environments and two locks; one wheel has no sha256 in the registry, so its hash is
// "first seen" by fetch and marked in the lock.
//
// Once cy-llm-fetch exists, the same test should serve the wheelhouse from a loopback
// server and replace the middle step with `cy-llm-fetch --dest W --lock L --install V`.
#include <doctest/doctest.h>

#include "cyllm/wheelhouse.h"
#include "make_wheel.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace cyllm;
using namespace cyllm::wheelhouse;
using namespace std::chrono_literals;
using nlohmann::json;

TEST_CASE("detect | resolve | (wheelhouse) | fill locks | install each environment | import") {
  test::TempDir tmp;
  const fs::path wheels = tmp.path() / "wheelhouse";
  auto engine = test::make_wheel(wheels, "toyengine", "1.2.0", {}, {"toyproto>=6"});
  auto proto5 = test::make_wheel(wheels, "toyproto", "5.29.3");
  auto proto6 = test::make_wheel(wheels, "toyproto", "6.31.1");
  auto worker = test::make_wheel(wheels, "toyworker", "0.3.0");
  // A wheel that no lock asks for, built for another platform: verified against the
  // target, it is refused (fetch would not put it in the wheelhouse).
  auto foreign = test::make_wheel(tmp.path() / "foreign", "toyengine", "1.2.0", {"--tag", "cp312-cp312-win_amd64"});

  PosixCommandRunner runner;
  auto pyver = runner.run({"/usr/bin/env", "python3", "-c",
                           "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"},
                          60s);
  REQUIRE(pyver.ok());
  const std::string python = pyver->out.substr(0, pyver->out.find('\n'));

  // Registry URLs are never contacted here (the wheelhouse is local); toyworker has no
  // sha256, as a registry row written before its wheel was ever downloaded.
  auto entry = [](const std::string& key, const test::BuiltWheel& b, bool with_hash) {
    return "  " + key + ":\n    url: http://127.0.0.1:9/wheels/" + b.filename() + "\n" +
           (with_hash ? "    sha256: " + b.sha256 + "\n" : "");
  };
  test::write_file(tmp.path() / "registry.yaml",
                   "schema_version: 1\n"
                   "hardware_profiles:\n"
                   "  any_cpu:\n    architectures: [x86_64, aarch64]\n"
                   "engines:\n"
                   "  toyengine:\n    kind: python\n    tradeoff: test engine\n    versions: [\"1.2.0\"]\n"
                   "    default_version: \"1.2.0\"\n"
                   "wheels:\n" +
                       entry("toyengine-1.2.0", engine, true) + entry("toyproto-5", proto5, true) +
                       entry("toyproto-6", proto6, true) + entry("toyworker-0.3.0", worker, false) +
                       "compatibility_matrix:\n"
                       "  - hardware: any_cpu\n    engine: toyengine\n    engine_versions: \"==1.2.0\"\n"
                       "    requirements: [{wheel: toyengine-1.2.0}, {wheel: toyproto-6}]\n"
                       "    verified: true\n"
                       "base_environment:\n"
                       "  requirements: [{wheel: toyworker-0.3.0}, {wheel: toyproto-5}]\n");

  // detect | resolve
  auto detect = test::run_tool("cy-llm-detect", {"--root", (test::fixtures_dir() / "roots/cpu-cgroup2").string()});
  REQUIRE_MESSAGE(detect.exit_code == 0, detect.err);
  const std::string lock = (tmp.path() / "requirements.lock").string();
  auto resolve = test::run_tool(
      "cy-llm-resolve",
      {"--registry", (tmp.path() / "registry.yaml").string(), "--python", python, "--lock", lock, "--yes"},
      detect.out);
  REQUIRE_MESSAGE(resolve.exit_code == 0, resolve.err);
  json plan = json::parse(resolve.out);
  REQUIRE(plan["schema"] == "cy-llm.plan/v1");

  // (fetch) every wheel verified against the plan's target; name, version and file hash
  // are what cy-llm-fetch hands to fill_lock.
  auto target = target_from_plan(plan);
  REQUIRE_MESSAGE(target.ok(), target.error().to_string());
  std::vector<FetchedFile> fetched;
  for (const auto& w : {engine, proto5, proto6, worker}) {
    auto info = verify_wheel(w.path.string(), *target);
    REQUIRE_MESSAGE(info.ok(), info.error().to_string());
    fetched.push_back({info->name, info->version, w.sha256, w.filename()});
  }
  auto refused = verify_wheel(foreign.path.string(), *target);
  REQUIRE(!refused.ok());
  CHECK(refused.error().code() == Errc::WheelTagMismatch);

  // One venv per environment, each from its own filled lock.
  auto installs = plan_installs(plan, (tmp.path() / "venvs").string(), lock);
  REQUIRE_MESSAGE(installs.ok(), installs.error().to_string());
  REQUIRE(installs->size() == 2);
  test::HostContext host;
  std::map<std::string, std::string> checks = {
      {"engine", "import toyengine, toyproto; assert toyproto.__version__ == '6.31.1', toyproto.__version__"},
      {"base", "import toyworker, toyproto; assert toyproto.__version__ == '5.29.3', toyproto.__version__"},
  };
  for (const auto& env : *installs) {
    CAPTURE(env.name);
    REQUIRE(checks.count(env.name));
    auto parsed = parse_lock(test::read_text(env.lock_path));
    REQUIRE_MESSAGE(parsed.ok(), parsed.error().to_string());
    auto filled = fill_lock(*parsed, fetched);
    REQUIRE_MESSAGE(filled.ok(), filled.error().to_string());
    REQUIRE(write_lock(env.lock_path, *filled).ok());
    // Pins on the fetched versions, never the registry URLs (pip would download them).
    CHECK(filled->find("http://127.0.0.1:9/") == std::string::npos);
    if (env.name == "base")
      CHECK(filled->find("# sha256 first seen by cy-llm-fetch (the registry had none): toyworker\n"
                         "toyworker==0.3.0 \\\n    --hash=sha256:" + worker.sha256) != std::string::npos);
    else
      CHECK(filled->find("first seen") == std::string::npos);

    auto r = install_venv(host.ctx(), env.venv_dir, wheels.string(), env.lock_path);
    REQUIRE_MESSAGE(r.ok(), r.error().to_string());
    auto imp = runner.run({env.venv_dir + "/bin/python", "-c", checks[env.name]}, 60s);
    REQUIRE(imp.ok());
    CHECK_MESSAGE(imp->exit_code == 0, imp->err);
  }
}
