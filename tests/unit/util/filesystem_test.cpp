#include <doctest/doctest.h>

#include "cyllm/context.h"
#include "test_support.h"

using namespace cyllm;

TEST_CASE("RootedFilesystem maps absolute paths under its root") {
  test::TempDir dir;
  test::write_file(dir.path() / "proc/meminfo", "MemTotal: 1 kB\n");
  test::write_file(dir.path() / "sys/b", "");
  test::write_file(dir.path() / "sys/a", "");
  RootedFilesystem fs(dir.path().string() + "/");
  CHECK_FALSE(fs.is_host_root());
  CHECK(fs.host_path("/proc/meminfo") == dir.path().string() + "/proc/meminfo");
  CHECK(fs.read_file("/proc/meminfo").value() == "MemTotal: 1 kB\n");
  CHECK(fs.exists("/proc/meminfo"));
  CHECK(fs.is_directory("/proc"));
  CHECK_FALSE(fs.is_directory("/proc/meminfo"));
  auto missing = fs.read_file("/proc/nothing");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code() == Errc::NotFound);
  CHECK(missing.error().message().find("/proc/nothing") != std::string::npos);
  auto names = fs.list_dir("/sys");
  REQUIRE(names.ok());
  CHECK(*names == std::vector<std::string>{"a", "b"});
  CHECK(fs.list_dir("/nope").error().code() == Errc::NotFound);
}

TEST_CASE("oversized files are refused, not read whole") {
  test::TempDir dir;
  test::write_file(dir.path() / "big", std::string(5000, 'x'));
  RootedFilesystem fs(dir.path().string());
  auto r = fs.read_file("/big", 4096);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::Io);
  CHECK(fs.read_file("/big", 5000).value().size() == 5000);
}

TEST_CASE("the host root reads the real /proc") {
  RootedFilesystem fs("/");
  CHECK(fs.is_host_root());
  CHECK(fs.read_file("/proc/self/status").ok());
}
