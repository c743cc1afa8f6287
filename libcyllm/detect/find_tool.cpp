#include <sys/stat.h>
#include <unistd.h>

#include "cyllm/detect.h"

namespace cyllm::detect {

std::optional<std::string> find_tool(const Context& ctx, const DetectOptions& options,
                                     std::string_view name) {
  // Under a fixture root only the conventional install directories count, so that a test
  // never picks up a tool of the machine running it.
  static constexpr std::string_view kDirs[] = {"/usr/bin", "/usr/local/bin", "/usr/local/sbin",
                                               "/usr/sbin", "/opt/rocm/bin"};
  auto executable = [](const std::string& host) {
    struct stat st;
    return ::stat(host.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(host.c_str(), X_OK) == 0;
  };
  if (ctx.fs.is_host_root()) {
    for (const auto& dir : options.path) {
      if (dir.empty() || dir.front() != '/') continue;  // relative PATH entries are unsafe
      std::string p = dir + "/" + std::string(name);
      if (executable(p)) return p;
    }
  }
  for (auto dir : kDirs) {
    std::string host = ctx.fs.host_path(std::string(dir) + "/" + std::string(name));
    if (executable(host)) return host;
  }
  return std::nullopt;
}

}  // namespace cyllm::detect
