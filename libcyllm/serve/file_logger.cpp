#include <cerrno>
#include <cstring>

#include "cyllm/serve.h"

namespace cyllm::serve {

FileLogger::FileLogger(std::string path, LogLevel min_level, std::string tool, std::FILE* f)
    : path_(std::move(path)), min_(min_level), tool_(std::move(tool)), file_(f),
      inner_(std::make_unique<StreamLogger>(f, min_level, LogFormat::Json, tool_)) {}

FileLogger::~FileLogger() {
  if (file_) std::fclose(file_);
}

Result<std::unique_ptr<FileLogger>> FileLogger::open(const std::string& path, LogLevel min_level,
                                                     std::string tool) {
  std::FILE* f = std::fopen(path.c_str(), "ae");
  if (!f) return Error(Errc::Io, "cannot open the log file \"" + path + "\": " + std::strerror(errno));
  return std::unique_ptr<FileLogger>(new FileLogger(path, min_level, std::move(tool), f));
}

void FileLogger::log(LogLevel level, std::string_view message,
                     const std::vector<std::pair<std::string, std::string>>& fields) {
  std::lock_guard lock(mu_);
  inner_->log(level, message, fields);
}

Result<void> FileLogger::reopen() {
  std::FILE* f = std::fopen(path_.c_str(), "ae");
  if (!f) return Error(Errc::Io, "cannot reopen the log file \"" + path_ + "\": " + std::strerror(errno));
  std::lock_guard lock(mu_);
  std::fclose(file_);
  file_ = f;
  inner_ = std::make_unique<StreamLogger>(f, min_, LogFormat::Json, tool_);
  return {};
}

}  // namespace cyllm::serve
