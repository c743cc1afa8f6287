#include <chrono>
#include <ctime>

#include <nlohmann/json.hpp>

#include "cyllm/log.h"

namespace cyllm {

std::string_view log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
    case LogLevel::Off: return "off";
  }
  return "info";
}

void StreamLogger::log(LogLevel level, std::string_view message,
                       const std::vector<std::pair<std::string, std::string>>& fields) {
  if (level < min_ || min_ == LogLevel::Off) return;
  std::string line;
  if (format_ == LogFormat::Json) {
    auto now = std::chrono::system_clock::now();
    auto secs = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char ts[64];
    std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    nlohmann::ordered_json j = {{"ts", ts},
                                {"level", log_level_name(level)},
                                {"tool", tool_},
                                {"msg", std::string(message)}};
    for (const auto& [k, v] : fields) j[k] = v;
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    const char* label = level == LogLevel::Error  ? "error"
                        : level == LogLevel::Warn ? "warning"
                        : level == LogLevel::Info ? "info"
                                                  : "debug";
    const char* on = "";
    const char* off = "";
    if (color_) {
      on = level >= LogLevel::Error ? "\033[1;31m" : level == LogLevel::Warn ? "\033[1;33m" : "\033[2m";
      off = "\033[0m";
    }
    line = tool_ + ": " + on + label + off + ": " + std::string(message);
    for (const auto& [k, v] : fields) line += " " + k + "=" + v;
  }
  line += '\n';
  std::lock_guard<std::mutex> lock(mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace cyllm
