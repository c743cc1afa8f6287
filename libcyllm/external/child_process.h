// A long-running child process (an engine's server) in its own process group, its stdout
// and stderr appended to a log file whose last lines errors can quote.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cyllm/error.h"

namespace cyllm::external {

class ChildProcess {
 public:
  // Starts argv with `env` added to this process's environment (PATH from `env` is used to
  // find argv[0] when it has no '/'), stdin from /dev/null, stdout+stderr appended to
  // log_path. The child leads a new process group. Errors: util.spawn_failed naming the
  // program and why.
  static Result<ChildProcess> spawn(const std::vector<std::string>& argv,
                                    const std::map<std::string, std::string>& env,
                                    const std::string& log_path);
  ChildProcess() = default;
  ChildProcess(ChildProcess&& o) noexcept;
  ChildProcess& operator=(ChildProcess&& o) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // Stops the group (SIGTERM, then SIGKILL after 2 s) and reaps it.
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  bool started() const { return pid_ > 0; }
  // Reaps without blocking; false once the child has exited (its status is then kept).
  bool running();
  // "exit status 1", "killed by signal 9 (Killed)", "" while running.
  std::string exit_description() const;
  // SIGTERM to the whole group, SIGKILL to it after `grace`, then waits for the leader.
  // Idempotent. Returns true when it stopped within the grace period.
  bool stop(std::chrono::milliseconds grace);
  // Resident memory of every process still in the group, in bytes (from /proc).
  std::uint64_t group_rss_bytes() const;
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;  // waitpid status once reaped
  std::string log_path_;
};

// Fields of /proc/<pid>/stat that cy-llm uses; nullopt when the process is gone.
struct ProcStat {
  char state = '?';  // R, S, Z, ...
  pid_t ppid = 0;
  pid_t pgrp = 0;
};
std::optional<ProcStat> read_proc_stat(pid_t pid);

// The last `n` lines of a text file (at most 64 KiB read from its end), "" when unreadable.
std::string tail_lines(const std::string& path, std::size_t n);

// A free TCP port on 127.0.0.1 (bound with port 0, then released), 0 when none.
std::uint16_t pick_free_port();

}  // namespace cyllm::external
