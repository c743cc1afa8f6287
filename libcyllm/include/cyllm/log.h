// Loggers that write to a FILE* (stderr in tools): JSON lines or human text.
#pragma once

#include <cstdio>
#include <mutex>

#include "cyllm/context.h"

namespace cyllm {

enum class LogFormat { Text, Json };

// Thread-safe. JSON lines look like
//   {"ts":"2026-11-27T13:19:47.123Z","level":"warn","msg":"...","tool":"cy-llm-detect",...}
// Text lines look like "cy-llm-detect: warning: ... (key=value)".
class StreamLogger final : public Logger {
 public:
  StreamLogger(std::FILE* out, LogLevel min_level, LogFormat format, std::string tool,
               bool color = false)
      : out_(out), min_(min_level), format_(format), tool_(std::move(tool)), color_(color) {}
  void log(LogLevel level, std::string_view message,
           const std::vector<std::pair<std::string, std::string>>& fields = {}) override;
  void set_level(LogLevel level) { min_ = level; }

 private:
  std::FILE* out_;
  LogLevel min_;
  LogFormat format_;
  std::string tool_;
  bool color_;
  std::mutex mu_;
};

std::string_view log_level_name(LogLevel level);

}  // namespace cyllm
