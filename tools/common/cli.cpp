#include "common/cli.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cyllm_config.h"
#include "util/strings.h"

namespace cyllm::cli {
namespace {

// Signal handlers cannot capture; this flag is the one piece of process state, owned by
// the tool layer, never by libcyllm.
std::atomic<bool> g_cancel{false};

extern "C" void on_signal(int) { g_cancel.store(true); }

}  // namespace

ToolEnv::ToolEnv(std::string tool_name) : name_(std::move(tool_name)) {
  logger_ = std::make_unique<StreamLogger>(stderr, LogLevel::Warn,
                                           ::isatty(2) ? LogFormat::Text : LogFormat::Json, name_,
                                           ::isatty(2) != 0);
}

void ToolEnv::configure(const CommonOptions& o) {
  LogLevel level = LogLevel::Warn;
  if (o.quiet) level = LogLevel::Error;
  if (o.verbose == 1) level = LogLevel::Info;
  if (o.verbose >= 2) level = LogLevel::Debug;
  const bool tty = ::isatty(2) != 0;
  LogFormat fmt = o.log_format.value_or(tty ? LogFormat::Text : LogFormat::Json);
  const bool color = tty && fmt == LogFormat::Text && !getenv_str("NO_COLOR");
  logger_ = std::make_unique<StreamLogger>(stderr, level, fmt, name_, color);
}

const std::atomic<bool>* ToolEnv::cancel_flag() const { return &g_cancel; }

void ToolEnv::install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

int ToolEnv::fail(const Error& error) {
  std::vector<std::pair<std::string, std::string>> fields{{"code", std::string(error.id())}};
  for (std::size_t i = 0; i < error.context().size(); ++i)
    fields.emplace_back("context" + (i ? std::to_string(i) : std::string()), error.context()[i]);
  // Errors are always shown, even with --quiet.
  logger_->set_level(LogLevel::Error);
  std::string msg = std::string(error.id()) + ": " + error.message();
  for (const auto& c : error.context()) msg += " (while " + c + ")";
  logger_->log(LogLevel::Error, msg, {{"code", std::string(error.id())}});
  return static_cast<int>(exit_code_for(error.code()));
}

std::string version_line(const std::string& tool_name) {
  return tool_name + " " + CYLLM_VERSION + " (" + CYLLM_FEATURES + ")";
}

void add_common_flags(CLI::App& app, CommonOptions& o, const std::string& tool_name) {
  static const std::map<std::string, OutputFormat> kFormats = {{"json", OutputFormat::Json},
                                                               {"text", OutputFormat::Text}};
  static const std::map<std::string, LogFormat> kLogFormats = {{"json", LogFormat::Json},
                                                               {"text", LogFormat::Text}};
  app.add_option("--format", o.format, "Output format on stdout: json (default) or text")
      ->transform(CLI::CheckedTransformer(kFormats, CLI::ignore_case))
      ->option_text("json|text");
  app.add_option_function<LogFormat>(
         "--log-format", [&o](const LogFormat& f) { o.log_format = f; },
         "Log format on stderr: text (default on a TTY) or json (JSON lines; default otherwise)")
      ->transform(CLI::CheckedTransformer(kLogFormats, CLI::ignore_case))
      ->option_text("json|text");
  app.add_flag("-q,--quiet", o.quiet, "Only print errors on stderr");
  app.add_flag("-v,--verbose", o.verbose, "More log output (repeat for debug)");
  app.set_version_flag("--version", version_line(tool_name),
                       "Print the version and the compiled-in features, then exit");
}

std::optional<int> parse_or_exit(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp& e) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << app.get_name() << ": error: cli.usage: " << e.what() << "\n"
              << "Run '" << app.get_name() << " --help' for usage.\n";
    return static_cast<int>(ExitCode::Usage);
  }
  return std::nullopt;
}

bool print_json(const nlohmann::ordered_json& doc) {
  std::string s = doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  s += '\n';
  return std::fwrite(s.data(), 1, s.size(), stdout) == s.size() && std::fflush(stdout) == 0;
}

std::optional<std::string> getenv_str(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return std::nullopt;
  return std::string(v);
}

std::vector<std::string> path_entries() {
  std::vector<std::string> out;
  if (auto p = getenv_str("PATH"))
    for (auto part : util::split(*p, ':'))
      if (!part.empty()) out.emplace_back(part);
  return out;
}

int guarded_main(ToolEnv& env, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    return env.fail(Error(Errc::Internal, std::string("unexpected exception: ") + e.what()));
  } catch (...) {
    return env.fail(Error(Errc::Internal, "unexpected exception"));
  }
}

Result<registry::Registry> load_registry_for_tool(const std::string& flag) {
  RootedFilesystem fs("/");
  std::string path = flag;
  if (path.empty()) path = cli::getenv_str("CYLLM_REGISTRY").value_or("");
  if (!path.empty()) {
    if (path.front() != '/') {  // the loader reads through a rooted filesystem
      char cwd[4096];
      if (::getcwd(cwd, sizeof cwd)) path = std::string(cwd) + "/" + path;
    }
    return registry::load_registry(fs, path);
  }
  std::string overlay;
  if (auto x = cli::getenv_str("XDG_CONFIG_HOME"); x && !x->empty()) overlay = *x + "/cy-llm/registry.d";
  else if (auto h = cli::getenv_str("HOME")) overlay = *h + "/.config/cy-llm/registry.d";
  std::vector<registry::SourceText> sources = registry::builtin_registry_sources();
  if (!overlay.empty() && fs.is_directory(overlay)) {
    auto names = fs.list_dir(overlay);
    if (names)
      for (const auto& n : *names) {
        if (!(n.ends_with(".yaml") || n.ends_with(".yml") || n.ends_with(".json"))) continue;
        auto text = fs.read_file(overlay + "/" + n);
        if (!text) return text.error();
        sources.push_back({overlay + "/" + n, *text});
      }
  }
  return registry::load_registry_from_strings(sources);
}

}  // namespace cyllm::cli
