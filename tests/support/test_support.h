// Helpers shared by the doctest suites: where fixtures live, temporary directories, a
// Context over a fixture root, and running the built tools.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "cyllm/context.h"

namespace cyllm::test {

// $CYLLM_FIXTURES (set by meson) or <source>/tests/fixtures. Fails the test if missing.
std::filesystem::path fixtures_dir();
// $CYLLM_TESTDATA or ../shared/testdata. FAILS (never skips) when missing.
std::filesystem::path testdata_dir();
// Directory holding the built cy-llm-* executables ($CYLLM_TOOLS_DIR).
std::filesystem::path tools_dir();
// Path of the fake libnvidia-ml built by the tests ($CYLLM_FAKE_NVML).
std::filesystem::path fake_nvml_path();
std::filesystem::path source_root();

// A fresh directory under $TMPDIR, removed with everything inside on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Copies a tree keeping permissions and symlinks.
void copy_tree(const std::filesystem::path& from, const std::filesystem::path& to);
void write_file(const std::filesystem::path& path, const std::string& content);
// Whole file as bytes; "" when it cannot be read.
std::string read_text(const std::filesystem::path& path);

// Records log lines; handy to assert that something was (not) logged.
class RecordingLogger final : public Logger {
 public:
  void log(LogLevel level, std::string_view message,
           const std::vector<std::pair<std::string, std::string>>& fields) override;
  std::vector<std::string> lines;
};

// A Context over a directory of this machine (a fixture root), with the real command
// runner and clock. Keeps its parts alive.
class FixtureContext {
 public:
  explicit FixtureContext(const std::filesystem::path& root);
  const Context& ctx() const { return ctx_; }
  const RootedFilesystem& fs() const { return fs_; }
  RecordingLogger& logger() { return log_; }

 private:
  RootedFilesystem fs_;
  PosixCommandRunner runner_;
  SystemClock clock_;
  RecordingLogger log_;
  Context ctx_;
};

// A Context over this machine's real root ("/"), for tests that probe the host itself.
class HostContext {
 public:
  HostContext() : fs_("/"), ctx_{fs_, runner_, clock_, log_, nullptr} {}
  const Context& ctx() const { return ctx_; }
  const RootedFilesystem& fs() const { return fs_; }

 private:
  RootedFilesystem fs_;
  PosixCommandRunner runner_;
  SystemClock clock_;
  NullLogger log_;
  Context ctx_;
};

// A CommandRunner that returns canned results by exact command line and records calls.
class FakeCommandRunner final : public CommandRunner {
 public:
  struct Canned {
    int exit_code = 0;
    std::string out;
    std::string err;
    bool timeout = false;
  };
  void on(const std::string& joined_argv, Canned result) { canned_[joined_argv] = result; }
  Result<CommandOutput> run(const std::vector<std::string>& argv,
                            std::chrono::milliseconds timeout) const override;
  mutable std::vector<std::string> calls;

 private:
  std::map<std::string, Canned> canned_;
};

struct ToolRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// Runs tools_dir()/name with args (no shell), stdin from `input`, with extra env entries
// ("K=V"; "K=" unsets K).
ToolRun run_tool(const std::string& name, const std::vector<std::string>& args,
                 const std::string& input = "", const std::vector<std::string>& env = {},
                 std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace cyllm::test
