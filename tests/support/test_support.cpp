#include "test_support.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

extern char** environ;

namespace cyllm::test {
namespace fs = std::filesystem;

namespace {
fs::path env_path(const char* var, const fs::path& fallback) {
  const char* v = std::getenv(var);
  return (v && *v) ? fs::path(v) : fallback;
}
}  // namespace

fs::path source_root() {
  return env_path("CYLLM_SOURCE_ROOT", fs::path(__FILE__).parent_path().parent_path().parent_path());
}

fs::path fixtures_dir() {
  fs::path p = env_path("CYLLM_FIXTURES", source_root() / "tests" / "fixtures");
  REQUIRE_MESSAGE(fs::is_directory(p), "fixtures directory missing: " << p);
  return p;
}

fs::path testdata_dir() {
  fs::path p = env_path("CYLLM_TESTDATA", source_root() / ".." / "shared" / "testdata");
  REQUIRE_MESSAGE(fs::is_directory(p),
                  "test data missing at " << p
                                          << " (set CYLLM_TESTDATA or put shared/ beside the checkout)");
  return p;
}

fs::path tools_dir() {
  fs::path p = env_path("CYLLM_TOOLS_DIR", fs::path());
  REQUIRE_MESSAGE(!p.empty(), "CYLLM_TOOLS_DIR is not set (run the tests through meson)");
  return p;
}

fs::path fake_nvml_path() {
  fs::path p = env_path("CYLLM_FAKE_NVML", fs::path());
  REQUIRE_MESSAGE(fs::exists(p), "fake NVML library missing: " << p);
  return p;
}

TempDir::TempDir() {
  std::random_device rd;
  fs::path base = fs::temp_directory_path();
  for (int i = 0; i < 100; ++i) {
    fs::path p = base / ("cyllm-test-" + std::to_string(rd()));
    std::error_code ec;
    if (fs::create_directory(p, ec)) {
      path_ = p;
      return;
    }
  }
  FAIL("cannot create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void copy_tree(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::copy_symlinks |
                         fs::copy_options::overwrite_existing);
}

void write_file(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  REQUIRE(f.good());
}

std::string read_text(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void RecordingLogger::log(LogLevel level, std::string_view message,
                          const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string line = std::to_string(static_cast<int>(level)) + " " + std::string(message);
  for (const auto& [k, v] : fields) line += " " + k + "=" + v;
  lines.push_back(std::move(line));
}

FixtureContext::FixtureContext(const fs::path& root)
    : fs_(root.string()), ctx_{fs_, runner_, clock_, log_, nullptr} {}

Result<CommandOutput> FakeCommandRunner::run(const std::vector<std::string>& argv,
                                             std::chrono::milliseconds timeout) const {
  std::string joined;
  for (const auto& a : argv) joined += (joined.empty() ? "" : " ") + a;
  calls.push_back(joined);
  auto it = canned_.find(joined);
  if (it == canned_.end())
    return Error(Errc::SpawnFailed, "cannot run \"" + argv[0] + "\": no canned result");
  if (it->second.timeout)
    return Error(Errc::ToolTimeout, "\"" + joined + "\" did not finish within " +
                                        std::to_string(timeout.count()) + " ms and was killed");
  CommandOutput o;
  o.exit_code = it->second.exit_code;
  o.out = it->second.out;
  o.err = it->second.err;
  return o;
}

ToolRun run_tool(const std::string& name, const std::vector<std::string>& args,
                 const std::string& input, const std::vector<std::string>& env,
                 std::chrono::milliseconds timeout) {
  ToolRun r;
  std::string exe = (tools_dir() / name).string();
  std::vector<std::string> envv;
  for (char** e = environ; *e; ++e) envv.emplace_back(*e);
  for (const auto& kv : env) {
    auto eq = kv.find('=');
    std::string key = kv.substr(0, eq);
    std::erase_if(envv, [&](const std::string& s) { return s.rfind(key + "=", 0) == 0; });
    if (eq != std::string::npos && eq + 1 < kv.size()) envv.push_back(kv);
  }
  std::vector<char*> cenv;
  for (auto& s : envv) cenv.push_back(s.data());
  cenv.push_back(nullptr);
  std::vector<std::string> argv_s{exe};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& s : argv_s) cargv.push_back(s.data());
  cargv.push_back(nullptr);

  int in[2], out[2], err[2];
  REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  pid_t pid;
  int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  REQUIRE_MESSAGE(rc == 0, "cannot start " << exe << ": " << std::strerror(rc));
  // Write stdin (small inputs) then close it.
  signal(SIGPIPE, SIG_IGN);
  std::size_t off = 0;
  while (off < input.size()) {
    ssize_t n = ::write(in[1], input.data() + off, input.size() - off);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  ::close(in[1]);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int open_fds = 2;
  char buf[8192];
  while (open_fds > 0 && std::chrono::steady_clock::now() < deadline) {
    if (::poll(fds, 2, 100) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int status = 0;
  if (open_fds > 0) ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  CHECK_MESSAGE(open_fds == 0, name << " did not finish within " << timeout.count() << " ms");
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

}  // namespace cyllm::test
