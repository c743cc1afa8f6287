// Shared CLI glue for the cy-llm-* tools: common flags, logging setup, the Ctrl-C flag,
// printing JSON, and mapping an Error to a stderr line plus the shared exit code.
// Environment variables are read here (and in the tools' mains), never in libcyllm.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cyllm/context.h"
#include "cyllm/error.h"
#include "cyllm/log.h"
#include "cyllm/registry.h"

namespace cyllm::cli {

enum class OutputFormat { Json, Text };

struct CommonOptions {
  OutputFormat format = OutputFormat::Json;
  std::optional<LogFormat> log_format;  // default: text on a TTY, JSON lines otherwise
  int verbose = 0;
  bool quiet = false;
};

// The process-wide pieces a tool needs; built once in main and passed down.
class ToolEnv {
 public:
  explicit ToolEnv(std::string tool_name);
  const std::string& name() const { return name_; }
  StreamLogger& logger() { return *logger_; }
  // Builds the logger from the parsed common flags; call after parsing.
  void configure(const CommonOptions& options);
  // Raised by SIGINT/SIGTERM once install_signal_handlers() ran.
  const std::atomic<bool>* cancel_flag() const;
  void install_signal_handlers();

  // Prints "<tool>: error: <id>: <message>" (or a JSON log line) and returns the exit code.
  int fail(const Error& error);

 private:
  std::string name_;
  std::unique_ptr<StreamLogger> logger_;
};

// Adds --format, --log-format, -q/--quiet, -v/--verbose and --version.
void add_common_flags(CLI::App& app, CommonOptions& options, const std::string& tool_name);

// "cy-llm-detect 0.1.0 (-cuda +onednn +nvml-dlopen +grpc +http)"
std::string version_line(const std::string& tool_name);

// Parses argv; on --help/--version prints and returns 0, on a usage error prints the
// message and returns 2; otherwise nullopt (go on).
std::optional<int> parse_or_exit(CLI::App& app, int argc, char** argv);

// Writes a JSON document to stdout followed by a newline; returns false if stdout failed
// (e.g. a closed pipe), so the tool can exit 1.
bool print_json(const nlohmann::ordered_json& doc);

std::optional<std::string> getenv_str(const char* name);

// The registry for a tool: --registry FILE|DIR (`flag`) or $CYLLM_REGISTRY replaces the
// built-in one; files in the overlay directory ($XDG_CONFIG_HOME/cy-llm/registry.d, else
// ~/.config/cy-llm/registry.d) are added to it.
Result<registry::Registry> load_registry_for_tool(const std::string& flag);
std::vector<std::string> path_entries();  // $PATH split on ':'

// Runs `body` and turns escaping exceptions into exit code 3 (a bug, never bad input).
int guarded_main(ToolEnv& env, const std::function<int()>& body);

}  // namespace cyllm::cli
