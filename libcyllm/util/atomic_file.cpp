#include "cyllm/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace cyllm {

Result<void> write_file_atomic(const std::string& path, std::string_view data, unsigned mode) {
  std::string tmpl = path + ".tmp.XXXXXX";
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0)
    return Error(Errc::Io, "cannot create a temporary file next to \"" + path + "\": " + std::strerror(errno));
  auto fail = [&](const char* what) {
    const int e = errno;
    ::close(fd);
    ::unlink(tmpl.c_str());
    return Error(Errc::Io, std::string("cannot ") + what + " \"" + path + "\": " + std::strerror(e));
  };
  if (::fchmod(fd, mode) != 0) return fail("set the mode of");
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write");
    }
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("flush");
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(tmpl.c_str());
    return Error(Errc::Io, "cannot write \"" + path + "\": " + std::strerror(e));
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmpl.c_str());
    return Error(Errc::Io, "cannot rename the temporary file to \"" + path + "\": " + std::strerror(e));
  }
  return {};
}

}  // namespace cyllm
