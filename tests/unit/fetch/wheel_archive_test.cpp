// verify_wheel on real wheels built by tests/support/make_wheel.py: a good one, one of
// each kind of malicious one (each refused with its own message), tag and Requires-Python
// mismatches against a target, and the decompression limits.
#include <doctest/doctest.h>

#include <fstream>

#include "cyllm/wheelhouse.h"
#include "make_wheel.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace cyllm;
using cyllm::wheelhouse::verify_wheel;

namespace {

wheel::TargetEnvironment target_312() {
  wheel::TargetEnvironment t;
  t.python_major = 3;
  t.python_minor = 12;
  t.architecture = "x86_64";
  t.glibc_minor = 35;
  return t;
}

// Builds a wheel with --evil KIND and returns verify_wheel's error.
Error refused(const std::string& kind, const std::vector<std::string>& more = {}) {
  test::TempDir tmp;
  std::vector<std::string> flags = {"--evil", kind};
  flags.insert(flags.end(), more.begin(), more.end());
  auto w = test::make_wheel(tmp.path(), "evilpkg", "1.0", flags);
  auto r = verify_wheel(w.path.string(), target_312());
  REQUIRE_MESSAGE(!r.ok(), kind << " was accepted");
  return r.error();
}

}  // namespace

TEST_CASE("a good wheel is verified and described") {
  test::TempDir tmp;
  auto w = test::make_wheel(tmp.path(), "toy_pkg", "2.0.1", {"--requires-python", ">=3.9"},
                            {"numpy>=1.26", "rich ; extra == \"cli\""});
  auto r = verify_wheel(w.path.string(), target_312());
  REQUIRE_MESSAGE(r.ok(), r.error().to_string());
  CHECK(r->filename == "toy_pkg-2.0.1-py3-none-any.whl");
  CHECK(r->name == "toy_pkg");
  CHECK(r->version == "2.0.1");
  CHECK(r->requires_python == ">=3.9");
  CHECK(r->requires_dist == std::vector<std::string>{"numpy>=1.26", "rich ; extra == \"cli\""});
  REQUIRE(r->tags.size() == 1);
  CHECK(r->tags[0].to_string() == "py3-none-any");
  CHECK(r->n_files == 4);  // __init__.py, METADATA, WHEEL, RECORD
  CHECK(r->uncompressed_bytes > 100);
  // Without a target only the archive itself is checked.
  CHECK(verify_wheel(w.path.string()).ok());
}

TEST_CASE("unsafe member names are refused, naming the entry") {
  struct Case {
    const char* kind;
    const char* expect;
  };
  for (auto c : {Case{"traversal", "entry \"../evil.py\" has a \"..\" component"},
                 Case{"absolute", "entry \"/tmp/evil.py\" has an absolute path"},
                 Case{"backslash", "RECORD entry \"evilpkg\\\\evil.py\" has a backslash"},
                 Case{"drive", "entry \"C:/evil.py\" has a drive letter"},
                 Case{"symlink", "entry \"evilpkg/link.py\" is a symbolic link"},
                 Case{"duplicate", "entry \"evilpkg/__init__.py\" appears twice"}}) {
    CAPTURE(c.kind);
    auto e = refused(c.kind);
    CHECK(e.code() == Errc::BadWheel);
    CHECK_MESSAGE(e.message().find(c.expect) != std::string::npos, e.message());
    CHECK(e.message().find("evilpkg-1.0-py3-none-any.whl") != std::string::npos);
  }
}

TEST_CASE("RECORD must vouch for every byte") {
  struct Case {
    const char* kind;
    const char* expect;
  };
  for (auto c : {Case{"hash-mismatch", "entry \"evilpkg/__init__.py\" has sha256="},
                 Case{"size-mismatch", "entry \"evilpkg/__init__.py\" is 20 bytes but RECORD says 21"},
                 Case{"unlisted", "entry \"evilpkg/extra.py\" is not listed in RECORD"},
                 Case{"missing-file", "RECORD lists \"evilpkg/gone.py\" but the archive has no such file"},
                 Case{"no-hash", "RECORD lists \"evilpkg/__init__.py\" without a hash"},
                 Case{"md5", "hash algorithm \"md5\" of \"evilpkg/__init__.py\" is not accepted"},
                 Case{"no-record", "has no evilpkg-1.0.dist-info/RECORD"}}) {
    CAPTURE(c.kind);
    auto e = refused(c.kind);
    CHECK(e.code() == Errc::BadWheel);
    CHECK_MESSAGE(e.to_string().find(c.expect) != std::string::npos, e.to_string());
  }
  // Both hashes are printed on a mismatch.
  auto e = refused("hash-mismatch");
  CHECK(e.message().find("but RECORD says sha256=") != std::string::npos);
}

TEST_CASE("bad METADATA is refused") {
  struct Case {
    const char* kind;
    const char* expect;
  };
  for (auto c : {Case{"missing-name", "METADATA has no Name"},
                 Case{"version-mismatch", "METADATA Version \"1.0.1\" does not match the filename's \"1.0\""},
                 Case{"name-mismatch", "METADATA Name \"other-package\" does not match the filename's \"evilpkg\""},
                 Case{"bad-requires", "METADATA Requires-Dist \"!!bad\" is not a PEP 508 requirement"}}) {
    CAPTURE(c.kind);
    auto e = refused(c.kind);
    CHECK(e.code() == Errc::BadWheel);
    CHECK_MESSAGE(e.to_string().find(c.expect) != std::string::npos, e.to_string());
  }
}

TEST_CASE("names and versions match after PEP 503 / PEP 440 normalisation") {
  test::TempDir tmp;
  // Filename "Foo_Bar-1.0.0" against METADATA "Foo_Bar" / "1.0.0": trivially equal; a
  // filename version "1.0" and a METADATA "1.0" too. Build a wheel whose filename uses the
  // escaped name of "foo.bar".
  auto w = test::make_wheel(tmp.path(), "Foo_Bar", "1.0.0");
  auto r = verify_wheel(w.path.string());
  REQUIRE_MESSAGE(r.ok(), r.error().to_string());
  CHECK(r->name == "Foo_Bar");
}

TEST_CASE("a wheel for another platform or Python is refused against the target") {
  test::TempDir tmp;
  auto win = test::make_wheel(tmp.path(), "winpkg", "1.0", {"--tag", "cp312-cp312-win_amd64"});
  auto e = verify_wheel(win.path.string(), target_312());
  REQUIRE(!e.ok());
  CHECK(e.error().code() == Errc::WheelTagMismatch);
  CHECK_MESSAGE(e.error().message().find("has tags cp312-cp312-win_amd64 but the target is cp312 on x86_64 "
                                         "(glibc 2.35)") != std::string::npos,
                e.error().message());

  auto arm = test::make_wheel(tmp.path(), "armpkg", "1.0", {"--tag", "cp312-cp312-manylinux_2_17_aarch64"});
  CHECK(verify_wheel(arm.path.string(), target_312()).error().code() == Errc::WheelTagMismatch);
  auto arm_target = target_312();
  arm_target.architecture = "aarch64";
  CHECK(verify_wheel(arm.path.string(), arm_target).ok());

  auto newer = test::make_wheel(tmp.path(), "newglibc", "1.0", {"--tag", "cp312-cp312-manylinux_2_39_x86_64"});
  auto g = verify_wheel(newer.path.string(), target_312());
  REQUIRE(!g.ok());
  CHECK(g.error().message().find("glibc") != std::string::npos);

  auto py313 = test::make_wheel(tmp.path(), "py313only", "1.0", {"--requires-python", ">=3.13"});
  auto p = verify_wheel(py313.path.string(), target_312());
  REQUIRE(!p.ok());
  CHECK(p.error().code() == Errc::WheelTagMismatch);
  CHECK(p.error().message().find("Requires-Python \">=3.13\"") != std::string::npos);
  // The same wheel passes without a target, and for a 3.13 one.
  CHECK(verify_wheel(py313.path.string()).ok());
  auto t313 = target_312();
  t313.python_minor = 13;
  CHECK(verify_wheel(py313.path.string(), t313).ok());
}

TEST_CASE("decompression is bounded: zip bombs and too many bytes or entries") {
  test::TempDir tmp;
  auto bomb = test::make_wheel(tmp.path(), "bombpkg", "1.0", {"--evil", "bomb", "--bomb-mib", "16"});
  CHECK(fs::file_size(bomb.path) < 100 * 1024);
  auto r = verify_wheel(bomb.path.string());
  REQUIRE(!r.ok());
  CHECK(r.error().code() == Errc::BadWheel);
  CHECK_MESSAGE(r.error().message().find("a zip bomb") != std::string::npos, r.error().message());

  // With the ratio check off, the byte caps still hold.
  wheelhouse::WheelLimits loose;
  loose.max_compression_ratio = 1u << 30;
  CHECK(verify_wheel(bomb.path.string(), std::nullopt, loose).ok());
  auto small = loose;
  small.max_total_bytes = 8u << 20;
  auto t = verify_wheel(bomb.path.string(), std::nullopt, small);
  REQUIRE(!t.ok());
  CHECK(t.error().message().find("declares more than 8388608 uncompressed bytes") != std::string::npos);
  auto entry = loose;
  entry.max_entry_bytes = 1u << 20;
  CHECK(verify_wheel(bomb.path.string(), std::nullopt, entry).error().message().find("the limit is 1048576") !=
        std::string::npos);
  auto few = loose;
  few.max_entries = 3;
  CHECK(verify_wheel(bomb.path.string(), std::nullopt, few).error().message().find("more than 3 entries") !=
        std::string::npos);
}

TEST_CASE("files that are not wheels") {
  test::TempDir tmp;
  test::write_file(tmp.path() / "junk-1.0-py3-none-any.whl", "this is not a zip archive");
  auto r = verify_wheel((tmp.path() / "junk-1.0-py3-none-any.whl").string());
  REQUIRE(!r.ok());
  CHECK(r.error().code() == Errc::BadWheel);
  CHECK(r.error().message().find("is not a readable zip archive") != std::string::npos);

  auto m = verify_wheel((tmp.path() / "missing-1.0-py3-none-any.whl").string());
  CHECK(m.error().code() == Errc::NotFound);
  auto n = verify_wheel((tmp.path() / "not-a-wheel.zip").string());
  CHECK(n.error().code() == Errc::BadWheelFilename);

  // A real wheel renamed to another distribution: the dist-info no longer matches.
  auto w = test::make_wheel(tmp.path() / "w", "realpkg", "1.0");
  fs::copy_file(w.path, tmp.path() / "otherpkg-1.0-py3-none-any.whl");
  auto o = verify_wheel((tmp.path() / "otherpkg-1.0-py3-none-any.whl").string());
  REQUIRE(!o.ok());
  CHECK(o.error().message().find("is not named after \"otherpkg\"") != std::string::npos);
}
