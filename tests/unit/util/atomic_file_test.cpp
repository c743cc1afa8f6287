#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cyllm/atomic_file.h"
#include "test_support.h"

using namespace cyllm;
namespace fs = std::filesystem;

namespace {
}  // namespace

TEST_CASE("write_file_atomic creates, replaces and leaves no temporary behind") {
  test::TempDir dir;
  const std::string path = (dir.path() / "requirements.lock").string();
  REQUIRE(write_file_atomic(path, "one\n").ok());
  CHECK(test::read_text(path) == "one\n");
  REQUIRE(write_file_atomic(path, "two\n", 0600).ok());
  CHECK(test::read_text(path) == "two\n");
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  CHECK(files == 1);
}

TEST_CASE("a failed write names the path and touches nothing") {
  test::TempDir dir;
  auto r = write_file_atomic((dir.path() / "missing-dir" / "x.lock").string(), "data");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::Io);
  CHECK(r.error().message().find("missing-dir/x.lock") != std::string::npos);
  CHECK(fs::is_empty(dir.path()));
  // A read-only directory: the temporary cannot be created (skip the check as root,
  // who may write anyway).
  if (::geteuid() != 0) {
    ::chmod(dir.path().c_str(), 0500);
    CHECK_FALSE(write_file_atomic((dir.path() / "y").string(), "data").ok());
    ::chmod(dir.path().c_str(), 0700);
  }
}
