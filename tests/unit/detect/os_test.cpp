#include <doctest/doctest.h>

#include "cyllm/detect.h"
#include "detect/os.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::detect;

TEST_CASE("detect_os reads os-release, the kernel and the glibc banner of a fixture root") {
  test::FixtureContext fx(test::fixtures_dir() / "roots" / "mi300x");
  std::vector<Warning> w;
  OsInfo os = detect_os(fx.ctx(), w);
  CHECK(w.empty());
  CHECK(os.name == "Rocky Linux 9.4 (Blue Onyx)");
  CHECK(os.id == "rocky");
  CHECK(os.version_id == "9.4");
  CHECK(os.kernel == "5.14.0-427.13.1.el9_4.x86_64");
  CHECK(os.libc == "glibc");
  CHECK(os.libc_version == "2.34");
}

TEST_CASE("musl, a libc without a banner, and nothing at all") {
  test::TempDir dir;
  test::write_file(dir.path() / "lib/ld-musl-x86_64.so.1", "");
  test::write_file(dir.path() / "etc/os-release", "ID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME='Alpine Linux v3.20'\n");
  {
    test::FixtureContext fx(dir.path());
    std::vector<Warning> w;
    OsInfo os = detect_os(fx.ctx(), w);
    CHECK(os.libc == "musl");
    CHECK(os.libc_version.empty());
    CHECK(os.name == "Alpine Linux v3.20");
  }
  test::FixtureContext broken(test::fixtures_dir() / "roots" / "broken");
  std::vector<Warning> w;
  OsInfo os = detect_os(broken.ctx(), w);
  CHECK(os.libc == "glibc");
  CHECK(os.libc_version.empty());
  REQUIRE(w.size() == 1);
  CHECK(w[0].message == "no glibc version banner in /lib/x86_64-linux-gnu/libc.so.6; manylinux compatibility unknown");
  test::TempDir empty;
  test::FixtureContext none(empty.path());
  std::vector<Warning> w2;
  OsInfo nothing = detect_os(none.ctx(), w2);
  CHECK(nothing.libc.empty());
  CHECK(w2.empty());
}

TEST_CASE("the host's glibc comes from the running C library") {
  test::HostContext host;
  const Context& ctx = host.ctx();
  std::vector<Warning> w;
  OsInfo os = detect_os(ctx, w);
  CHECK(os.libc == "glibc");
  CHECK(os.libc_version.rfind("2.", 0) == 0);
}

TEST_CASE("os-release and glibc banner parsers") {
  auto r = parse_os_release("# comment\nNAME=\"Ubuntu\"\nID=ubuntu\nVERSION_ID=\"22.04\"\n"
                            "PRETTY_NAME='Ubuntu 22.04.4 LTS'\nbroken line\n=novalue\n");
  CHECK(r.name == "Ubuntu 22.04.4 LTS");
  CHECK(r.id == "ubuntu");
  CHECK(r.version_id == "22.04");
  CHECK(parse_glibc_banner("..GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36.\n") == "2.36");
  CHECK(parse_glibc_banner("release version 2.39") == "2.39");
  CHECK(parse_glibc_banner("no banner here").empty());
  CHECK(parse_glibc_banner("release version 1234567890123456789012").size() <= 16);
}
