// The seams through which libcyllm touches the world: a rooted filesystem, a command
// runner, a clock and a logger, bundled in a Context together with a cancel flag.
//
// There is no global state: tools build a Context from real implementations; tests build
// one from fakes or from a fixture root (tests/fixtures/roots/<host>), so that detection
// runs against a captured /proc, /sys and vendor tools.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cyllm/error.h"

namespace cyllm {

// Read-only access to a filesystem tree. Paths are absolute as seen on the target host
// ("/proc/meminfo"); a RootedFilesystem maps them under its root directory.
class Filesystem {
 public:
  virtual ~Filesystem() = default;
  // Whole file; NotFound if it does not exist, Io on other failures. Files over
  // max_bytes are refused with Io (procfs and sysfs files are small; a huge one is a sign
  // of a wrong path).
  virtual Result<std::string> read_file(std::string_view path,
                                        std::size_t max_bytes = 1 << 20) const = 0;
  virtual bool exists(std::string_view path) const = 0;
  virtual bool is_directory(std::string_view path) const = 0;
  // Entry names (not paths) sorted by name, without "." and "..".
  virtual Result<std::vector<std::string>> list_dir(std::string_view path) const = 0;
  // The path on the machine running this process ("/fixtures/a100/proc/meminfo").
  virtual std::string host_path(std::string_view path) const = 0;
  // True when this filesystem is the real root of the running host.
  virtual bool is_host_root() const = 0;
};

// A Filesystem rooted at a directory of the running host; "/" is the host itself.
// Thread-safe (stateless after construction).
class RootedFilesystem final : public Filesystem {
 public:
  explicit RootedFilesystem(std::string root);
  Result<std::string> read_file(std::string_view path,
                                std::size_t max_bytes = 1 << 20) const override;
  bool exists(std::string_view path) const override;
  bool is_directory(std::string_view path) const override;
  Result<std::vector<std::string>> list_dir(std::string_view path) const override;
  std::string host_path(std::string_view path) const override;
  bool is_host_root() const override { return root_.empty(); }

 private:
  std::string root_;  // without trailing slash; empty for "/"
};

struct CommandOutput {
  int exit_code = -1;          // -1 when killed by a signal or timed out
  std::string out;             // stdout, truncated to the runner's output cap
  std::string err;             // stderr, likewise
};

// Runs external programs. run() never throws and never hangs past `timeout`: the child
// (and its process group) is killed and Errc::ToolTimeout returned. A non-zero exit is
// NOT an error at this level; callers look at exit_code.
class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  virtual Result<CommandOutput> run(const std::vector<std::string>& argv,
                                    std::chrono::milliseconds timeout) const = 0;
};

// fork/exec with pipes and poll; no shell is involved. Thread-safe.
class PosixCommandRunner final : public CommandRunner {
 public:
  explicit PosixCommandRunner(std::size_t output_cap_bytes = 4 << 20)
      : cap_(output_cap_bytes) {}
  Result<CommandOutput> run(const std::vector<std::string>& argv,
                            std::chrono::milliseconds timeout) const override;

 private:
  std::size_t cap_;
};

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::steady_clock::time_point now() const = 0;
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::now();
  }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::now();
  }
};

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3, Off = 4 };

// Structured logging. Fields are key/value strings; the sink decides the format.
class Logger {
 public:
  virtual ~Logger() = default;
  virtual void log(LogLevel level, std::string_view message,
                   const std::vector<std::pair<std::string, std::string>>& fields = {}) = 0;
};

// Discards everything; the default for library callers who pass no logger.
class NullLogger final : public Logger {
 public:
  void log(LogLevel, std::string_view, const std::vector<std::pair<std::string, std::string>>&)
      override {}
};

// Everything a library call may touch. All references must outlive the call.
struct Context {
  const Filesystem& fs;
  const CommandRunner& runner;
  const Clock& clock;
  Logger& log;
  const std::atomic<bool>* cancel = nullptr;  // raised by SIGINT in tools

  bool cancelled() const { return cancel != nullptr && cancel->load(std::memory_order_relaxed); }
};

}  // namespace cyllm
