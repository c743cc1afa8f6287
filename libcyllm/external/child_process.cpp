// ChildProcess: posix_spawn into a new process group, output to a log file, group-wide
// SIGTERM -> SIGKILL stop, and the group's RSS from /proc.
#include "external/child_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "util/strings.h"

extern char** environ;

namespace cyllm::external {
namespace {

using Clock = std::chrono::steady_clock;

std::string find_program(const std::string& name, const std::string& path_var) {
  if (name.find('/') != std::string::npos) return name;
  for (const auto& dir : util::split(path_var, ':')) {
    if (dir.empty()) continue;
    std::string cand = std::string(dir) + "/" + name;
    if (::access(cand.c_str(), X_OK) == 0) return cand;
  }
  return name;  // posix_spawn then fails with ENOENT, which names it
}

}  // namespace

Result<ChildProcess> ChildProcess::spawn(const std::vector<std::string>& argv,
                                         const std::map<std::string, std::string>& env,
                                         const std::string& log_path) {
  if (argv.empty()) return Error(Errc::InvalidArgument, "empty command line");
  // The child's environment: ours with `env` on top.
  std::map<std::string, std::string> merged;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    merged[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& [k, v] : env) merged[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : merged) env_strings.push_back(k + "=" + v);
  std::vector<char*> cenv;
  for (auto& s : env_strings) cenv.push_back(s.data());
  cenv.push_back(nullptr);

  const std::string program = find_program(argv[0], merged.count("PATH") ? merged["PATH"] : "/usr/bin:/bin");
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0)
    return Error(Errc::Io, "cannot open the engine log \"" + log_path + "\": " + std::strerror(errno));

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, log_fd, 1);
  posix_spawn_file_actions_adddup2(&fa, log_fd, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t def;
  sigemptyset(&def);
  for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&def, s);
  posix_spawnattr_setsigdefault(&attr, &def);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv[0] = const_cast<char*>(program.c_str());
  cargv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, program.c_str(), &fa, &attr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(log_fd);
  if (rc != 0)
    return Error(Errc::SpawnFailed, "cannot start \"" + argv[0] + "\": " + std::strerror(rc) +
                                        (rc == ENOENT ? " (is the engine installed in the venv? see cy-llm-fetch --install)" : ""));
  ChildProcess c;
  c.pid_ = pid;
  c.log_path_ = log_path;
  return c;
}

ChildProcess::ChildProcess(ChildProcess&& o) noexcept
    : pid_(o.pid_), status_(o.status_), log_path_(std::move(o.log_path_)) {
  o.pid_ = -1;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0) stop(std::chrono::seconds(2));
    pid_ = o.pid_;
    status_ = o.status_;
    log_path_ = std::move(o.log_path_);
    o.pid_ = -1;
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) stop(std::chrono::seconds(2));
}

bool ChildProcess::running() {
  if (pid_ <= 0 || status_) return false;
  int st = 0;
  const pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    return false;
  }
  return r == 0;
}

std::string ChildProcess::exit_description() const {
  if (!status_) return "";
  if (WIFEXITED(*status_)) return "exit status " + std::to_string(WEXITSTATUS(*status_));
  if (WIFSIGNALED(*status_)) {
    const int sig = WTERMSIG(*status_);
    const char* name = ::strsignal(sig);
    return "killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : "");
  }
  return "stopped";
}

bool ChildProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return true;
  // The group outlives its leader when a worker process lingers: signal it either way.
  ::kill(-pid_, SIGTERM);
  const auto until = Clock::now() + grace;
  bool clean = true;
  while (running()) {
    if (Clock::now() >= until) {
      clean = false;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(-pid_, SIGKILL);
  if (!status_) {
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    status_ = st;
  }
  pid_ = -1;  // status_ keeps how it ended
  return clean;
}

std::uint64_t ChildProcess::group_rss_bytes() const {
  if (pid_ <= 0) return 0;
  std::uint64_t total = 0;
  const long page = ::sysconf(_SC_PAGESIZE);
  DIR* d = ::opendir("/proc");
  if (!d) return 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const auto st = read_proc_stat(static_cast<pid_t>(std::atol(e->d_name)));
    if (!st || st->pgrp != pid_) continue;
    std::ifstream statm(std::string("/proc/") + e->d_name + "/statm");
    std::uint64_t size = 0, resident = 0;
    if (statm >> size >> resident) total += resident * static_cast<std::uint64_t>(page);
  }
  ::closedir(d);
  return total;
}

std::optional<ProcStat> read_proc_stat(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return std::nullopt;
  // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so parse after
  // the last ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  ProcStat st;
  long ppid = 0, pgrp = 0;
  if (!(rest >> st.state >> ppid >> pgrp)) return std::nullopt;
  st.ppid = static_cast<pid_t>(ppid);
  st.pgrp = static_cast<pid_t>(pgrp);
  return st;
}

std::string tail_lines(const std::string& path, std::size_t n) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  const std::streamoff from = size > 65536 ? size - 65536 : 0;
  f.seekg(from);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto lines = util::split_lines(text);
  if (from > 0 && !lines.empty()) lines.erase(lines.begin());  // cut mid-line
  std::string out;
  for (std::size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) {
    if (!out.empty()) out += '\n';
    out += lines[i];
  }
  return out;
}

std::uint16_t pick_free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  std::uint16_t port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

}  // namespace cyllm::external
