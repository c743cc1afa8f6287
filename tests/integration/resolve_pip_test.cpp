// End to end, on loopback only: build real wheels, serve them from a local HTTP server,
// resolve against a registry that points there, and let pip install each environment's
// lock with --no-index --require-hashes into a fresh venv; then import from it.
//
// The registry reproduces the classic conflict with toy packages: the worker's base stack
// needs toyproto<6, the engine row needs toyproto 6.x, so the plan has two environments
// and each venv gets its own toyproto.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "cyllm/context.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace cyllm;
using namespace std::chrono_literals;

extern char** environ;

namespace {

struct Built {
  std::string sha256;
  std::string file;
};

Built make_wheel(const fs::path& out, const std::string& name, const std::string& version) {
  PosixCommandRunner r;
  auto script = (test::source_root() / "tests/support/make_wheel.py").string();
  auto res = r.run({"/usr/bin/env", "python3", script, out.string(), name, version}, 60s);
  REQUIRE(res.ok());
  REQUIRE_MESSAGE(res->exit_code == 0, res->err);
  std::istringstream in(res->out);
  Built b;
  std::string size, path;
  in >> b.sha256 >> size >> path;
  b.file = fs::path(path).filename().string();
  return b;
}

// python3 -m http.server on 127.0.0.1 with an ephemeral port; stopped on destruction.
class LoopbackServer {
 public:
  explicit LoopbackServer(const fs::path& dir) {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    std::string d = dir.string();
    const char* argv[] = {"/usr/bin/env", "python3", "-u", "-m", "http.server", "--bind", "127.0.0.1",
                          "--directory", d.c_str(), "0", nullptr};
    REQUIRE(posix_spawn(&pid_, argv[0], &fa, nullptr, const_cast<char**>(argv), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
    std::string line;
    char c;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(out[0]);
    auto p = line.find(" port ");
    REQUIRE_MESSAGE(p != std::string::npos, "http.server said: " << line);
    port_ = std::stoi(line.substr(p + 6));
  }
  ~LoopbackServer() {
    ::kill(pid_, SIGTERM);
    int st;
    ::waitpid(pid_, &st, 0);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};


}  // namespace

TEST_CASE("resolve -> lock -> pip install --no-index --require-hashes in fresh venvs") {
  test::TempDir tmp;
  const fs::path wheels = tmp.path() / "wheels";
  Built engine = make_wheel(wheels, "toyengine", "1.2.0");
  Built proto5 = make_wheel(wheels, "toyproto", "5.29.3");
  Built proto6 = make_wheel(wheels, "toyproto", "6.31.1");
  Built worker = make_wheel(wheels, "toyworker", "0.3.0");
  LoopbackServer server(wheels);

  PosixCommandRunner r;
  auto pyver = r.run({"/usr/bin/env", "python3", "-c",
                      "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"}, 30s);
  REQUIRE(pyver.ok());
  std::string python = pyver->out.substr(0, pyver->out.find('\n'));

  auto wheel_entry = [&](const std::string& key, const Built& b) {
    return "  " + key + ":\n    url: " + server.url() + "/" + b.file + "\n    sha256: " + b.sha256 + "\n";
  };
  std::string registry =
      "schema_version: 1\n"
      "hardware_profiles:\n"
      "  any_cpu:\n    architectures: [x86_64, aarch64]\n"
      "engines:\n"
      "  toyengine:\n    kind: python\n    tradeoff: test engine\n    versions: [\"1.2.0\"]\n"
      "    default_version: \"1.2.0\"\n"
      "wheels:\n" +
      wheel_entry("toyengine-1.2.0", engine) + wheel_entry("toyproto-5", proto5) +
      wheel_entry("toyproto-6", proto6) + wheel_entry("toyworker-0.3.0", worker) +
      "compatibility_matrix:\n"
      "  - hardware: any_cpu\n    engine: toyengine\n    engine_versions: \"==1.2.0\"\n"
      "    requirements: [{wheel: toyengine-1.2.0}, {wheel: toyproto-6}]\n"
      "    verified: true\n"
      "base_environment:\n"
      "  requirements: [{wheel: toyworker-0.3.0}, {wheel: toyproto-5}]\n";
  test::write_file(tmp.path() / "registry.yaml", registry);

  const std::string lock = (tmp.path() / "requirements.lock").string();
  auto run = test::run_tool("cy-llm-resolve",
                            {"--registry", (tmp.path() / "registry.yaml").string(), "--python", python,
                             "--lock", lock, "--yes"},
                            test::read_text(test::source_root() / "tests/cli/detect/cpu-cgroup2/expected.stdout.json"));
  REQUIRE_MESSAGE(run.exit_code == 0, run.err);
  CHECK(run.err.find("toyproto") != std::string::npos);  // the clash is explained
  REQUIRE(fs::exists(lock));
  REQUIRE(fs::exists(tmp.path() / "requirements.base.lock"));
  CHECK(test::read_text(lock).find("--hash=sha256:" + proto6.sha256) != std::string::npos);

  struct Env {
    std::string lock;
    std::string check;
  };
  const Env envs[] = {
      {lock, "import toyengine, toyproto; assert toyproto.__version__ == '6.31.1', toyproto.__version__"},
      {(tmp.path() / "requirements.base.lock").string(),
       "import toyworker, toyproto; assert toyproto.__version__ == '5.29.3', toyproto.__version__"},
  };
  int i = 0;
  for (const auto& e : envs) {
    CAPTURE(e.lock);
    fs::path venv = tmp.path() / ("venv" + std::to_string(i++));
    auto mk = r.run({"/usr/bin/env", "python3", "-m", "venv", venv.string()}, 120s);
    REQUIRE(mk.ok());
    REQUIRE_MESSAGE(mk->exit_code == 0, mk->err);
    auto pip = r.run({(venv / "bin/python").string(), "-m", "pip", "install", "--no-index",
                      "--require-hashes", "--disable-pip-version-check", "-q", "-r", e.lock},
                     180s);
    REQUIRE(pip.ok());
    CHECK_MESSAGE(pip->exit_code == 0, pip->out << pip->err);
    auto imp = r.run({(venv / "bin/python").string(), "-c", e.check}, 60s);
    REQUIRE(imp.ok());
    CHECK_MESSAGE(imp->exit_code == 0, imp->err);
  }

  // A tampered hash in the lock makes pip refuse: the hashes are really checked.
  std::string text = test::read_text(lock);
  auto p = text.find(proto6.sha256);
  REQUIRE(p != std::string::npos);
  text[p] = text[p] == '0' ? '1' : '0';
  test::write_file(tmp.path() / "tampered.lock", text);
  fs::path venv = tmp.path() / "venv-bad";
  REQUIRE(r.run({"/usr/bin/env", "python3", "-m", "venv", venv.string()}, 120s)->exit_code == 0);
  auto bad = r.run({(venv / "bin/python").string(), "-m", "pip", "install", "--no-index", "--require-hashes",
                    "--disable-pip-version-check", "-q", "-r", (tmp.path() / "tampered.lock").string()},
                   180s);
  REQUIRE(bad.ok());
  CHECK(bad->exit_code != 0);
  CHECK(bad->err.find("HASH") != std::string::npos);
}
