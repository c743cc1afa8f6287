#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "cyllm/context.h"

namespace cyllm {

RootedFilesystem::RootedFilesystem(std::string root) : root_(std::move(root)) {
  while (!root_.empty() && root_.back() == '/') root_.pop_back();
}

std::string RootedFilesystem::host_path(std::string_view path) const {
  std::string p(path);
  if (p.empty() || p.front() != '/') p.insert(p.begin(), '/');
  return root_ + p;
}

Result<std::string> RootedFilesystem::read_file(std::string_view path,
                                                std::size_t max_bytes) const {
  const std::string hp = host_path(path);
  int fd = ::open(hp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    return Error(e == ENOENT || e == ENOTDIR ? Errc::NotFound : Errc::Io,
                 "cannot open \"" + std::string(path) + "\": " + std::strerror(e));
  }
  // procfs/sysfs files report size 0, so read until EOF instead of trusting st_size.
  std::string data;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      return Error(Errc::Io, "cannot read \"" + std::string(path) + "\": " + std::strerror(e));
    }
    if (n == 0) break;
    if (data.size() + static_cast<std::size_t>(n) > max_bytes) {
      ::close(fd);
      return Error(Errc::Io, "\"" + std::string(path) + "\" is larger than " +
                                 std::to_string(max_bytes) + " bytes");
    }
    data.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return data;
}

bool RootedFilesystem::exists(std::string_view path) const {
  struct stat st;
  return ::stat(host_path(path).c_str(), &st) == 0;
}

bool RootedFilesystem::is_directory(std::string_view path) const {
  struct stat st;
  return ::stat(host_path(path).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Result<std::vector<std::string>> RootedFilesystem::list_dir(std::string_view path) const {
  const std::string hp = host_path(path);
  DIR* d = ::opendir(hp.c_str());
  if (!d) {
    const int e = errno;
    return Error(e == ENOENT || e == ENOTDIR ? Errc::NotFound : Errc::Io,
                 "cannot list \"" + std::string(path) + "\": " + std::strerror(e));
  }
  std::vector<std::string> names;
  while (struct dirent* ent = ::readdir(d)) {
    std::string_view n = ent->d_name;
    if (n == "." || n == "..") continue;
    names.emplace_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace cyllm
