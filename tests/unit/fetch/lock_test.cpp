// requirements.lock: parsing what cy-llm-resolve writes, filling hashes from fetched
// files (first-seen marking, mismatches), and the round trip through the atomic write.
#include <doctest/doctest.h>

#include "cyllm/wheelhouse.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::wheelhouse;

namespace {

const std::string kH1(64, 'a');
const std::string kH2(64, 'b');
const std::string kH3 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// The shape cy-llm-resolve's to_lock writes (see libcyllm/resolve/plan_output.cpp).
std::string resolve_style_lock() {
  return "# requirements.lock for environment \"engine\", written by cy-llm-resolve.\n"
         "# host: nvidia NVIDIA A100 (8.0), driver 550.54\n"
         "# install: pip install -r <this file>\n"
         "--index-url https://pypi.org/simple\n"
         "--extra-index-url https://download.pytorch.org/whl/cu128\n"
         "vllm==0.14.1 \\\n"
         "    --hash=sha256:" + kH1 + "\n"
         "torch==2.9.0+cu128\n"
         "toyproto @ http://127.0.0.1:8000/toyproto-6.31.1-py3-none-any.whl\n"
         "pywin32==306 ; sys_platform == \"win32\"\n";
}

}  // namespace

TEST_CASE("parse_lock reads what cy-llm-resolve writes") {
  auto lock = parse_lock(resolve_style_lock());
  REQUIRE_MESSAGE(lock.ok(), lock.error().to_string());
  CHECK(lock->comments.size() == 3);
  CHECK(lock->options == std::vector<std::string>{"--index-url https://pypi.org/simple",
                                                   "--extra-index-url https://download.pytorch.org/whl/cu128"});
  REQUIRE(lock->entries.size() == 4);
  const auto& v = lock->entries[0];
  CHECK(v.requirement == "vllm==0.14.1");
  CHECK(v.name == "vllm");
  CHECK(v.version == "0.14.1");
  CHECK(v.sha256 == std::vector<std::string>{kH1});
  CHECK(v.line == 6);
  CHECK(lock->entries[1].version == "2.9.0+cu128");
  CHECK(lock->entries[1].sha256.empty());
  CHECK(lock->entries[2].url == "http://127.0.0.1:8000/toyproto-6.31.1-py3-none-any.whl");
  CHECK(lock->entries[2].version.empty());
  CHECK(lock->entries[3].marker == "sys_platform == \"win32\"");
  CHECK(lock->entries[3].line == 10);
}

TEST_CASE("parse_lock: pip's syntax details") {
  auto lock = parse_lock(
      "Foo_Bar==1.0 --hash=sha256:" + kH1 + " --hash sha256:" + kH2.substr(0, 32) + kH2.substr(32) +
      "   # trailing comment\n"
      "baz==2.*\n"
      "qux===weird-1 \\\n  # a comment inside the continuation\n"
      "x==1 \\\n    --hash=sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\n");
  REQUIRE_MESSAGE(lock.ok(), lock.error().to_string());
  REQUIRE(lock->entries.size() == 4);
  CHECK(lock->entries[0].name == "foo-bar");
  CHECK(lock->entries[0].sha256 == std::vector<std::string>{kH1, kH2});
  CHECK(lock->entries[1].version.empty());  // a wildcard is not a pin
  CHECK(lock->entries[2].version == "weird-1");
  CHECK(lock->entries[3].line == 5);
  CHECK(lock->entries[3].sha256 == std::vector<std::string>{kH3});  // hex lowercased
}

TEST_CASE("parse_lock refusals name the line") {
  struct Case {
    std::string text;
    std::string message;
  };
  for (const auto& c : {
           Case{"a==1\n-r other.txt\n", "fetch.bad_source: requirements.lock:2: option \"-r\" is not allowed in a lock"},
           Case{"-e git+https://x/y\n", "fetch.bad_source: requirements.lock:1: option \"-e\" is not allowed in a lock"},
           Case{"a==1 --hash=md5:abc\n",
                "fetch.bad_source: requirements.lock:1: hash \"md5:abc\" is not sha256:<64 hex digits>"},
           Case{"a==1 --hash=sha256:" + kH1.substr(1) + "\n",
                "fetch.bad_source: requirements.lock:1: hash \"sha256:" + kH1.substr(1) +
                    "\" is not sha256:<64 hex digits>"},
           Case{"a==1 --hash\n", "fetch.bad_source: requirements.lock:1: --hash without a value"},
           // Found by fuzz_lock (corpus/lock/stray_token_after_options).
           Case{"a==1 --hash sha256:" + kH1 + " 0\n",
                "fetch.bad_source: requirements.lock:1: unexpected \"0\" after the options of \"a==1\""},
       }) {
    CAPTURE(c.text);
    auto r = parse_lock(c.text);
    REQUIRE(!r.ok());
    CHECK(r.error().to_string() == c.message);
  }
  auto bad = parse_lock("\n\nnot a requirement!!\n");
  REQUIRE(!bad.ok());
  CHECK(bad.error().code() == Errc::BadSource);
  CHECK(bad.error().message().rfind("requirements.lock:3: ", 0) == 0);
}

TEST_CASE("fill_lock adds fetched hashes, marks the first-seen ones and pins URL requirements") {
  auto lock = parse_lock(resolve_style_lock());
  REQUIRE(lock.ok());
  std::vector<FetchedFile> fetched = {
      {"vllm", "0.14.1", kH1, "vllm-0.14.1-cp38-abi3-manylinux1_x86_64.whl"},
      {"torch", "2.9.0+cu128", kH2, "torch-2.9.0+cu128-cp312-cp312-manylinux_2_28_x86_64.whl"},
      {"torch", "2.8.0", kH1, "torch-2.8.0-cp312-cp312-manylinux_2_28_x86_64.whl"},  // other version: ignored
      {"toyproto", "6.31.1", kH3, "toyproto-6.31.1-py3-none-any.whl"},
  };
  auto text = fill_lock(*lock, fetched);
  REQUIRE_MESSAGE(text.ok(), text.error().to_string());
  CHECK(*text ==
        "# requirements.lock for environment \"engine\", written by cy-llm-resolve.\n"
        "# host: nvidia NVIDIA A100 (8.0), driver 550.54\n"
        "# install: pip install -r <this file>\n"
        "--index-url https://pypi.org/simple\n"
        "--extra-index-url https://download.pytorch.org/whl/cu128\n"
        "vllm==0.14.1 \\\n"
        "    --hash=sha256:" + kH1 + "\n"
        "# sha256 first seen by cy-llm-fetch (the registry had none): torch\n"
        "torch==2.9.0+cu128 \\\n"
        "    --hash=sha256:" + kH2 + "\n"
        "# sha256 first seen by cy-llm-fetch (the registry had none): toyproto\n"
        "toyproto==6.31.1 \\\n"
        "    --hash=sha256:" + kH3 + "\n"
        "pywin32==306 ; sys_platform == \"win32\"\n");

  // Round trip: the filled lock parses back with every hash, and filling it again with
  // the same files changes nothing but the first-seen comments, which stay once written.
  auto again = parse_lock(*text);
  REQUIRE_MESSAGE(again.ok(), again.error().to_string());
  REQUIRE(again->entries.size() == 4);
  CHECK(again->entries[1].sha256 == std::vector<std::string>{kH2});
  CHECK(again->entries[2].requirement == "toyproto==6.31.1");
  CHECK(again->entries[2].sha256 == std::vector<std::string>{kH3});
  auto twice = fill_lock(*again, fetched);
  REQUIRE(twice.ok());
  CHECK(*twice == *text);

  test::TempDir tmp;
  const std::string path = (tmp.path() / "requirements.lock").string();
  REQUIRE(write_lock(path, *text).ok());
  CHECK(test::read_text(path) == *text);
  CHECK(!write_lock((tmp.path() / "no/such/dir/x.lock").string(), *text).ok());
}

TEST_CASE("fill_lock refuses a fetched hash the lock does not allow, and entries left without one") {
  auto lock = parse_lock("a==1.0 --hash=sha256:" + kH1 + "\nb==2.0\n");
  REQUIRE(lock.ok());
  auto mismatch = fill_lock(*lock, {{"a", "1.0", kH2, "a-1.0-py3-none-any.whl"}, {"b", "2.0", kH3, ""}});
  REQUIRE(!mismatch.ok());
  CHECK(mismatch.error().code() == Errc::HashMismatch);
  CHECK(mismatch.error().message() == "requirements.lock:1: \"a==1.0\": fetched file \"a-1.0-py3-none-any.whl\" has "
                                      "sha256 " + kH2 + " but the lock allows only " + kH1);
  auto missing = fill_lock(*lock, {{"a", "1.0", kH1, ""}});
  REQUIRE(!missing.ok());
  CHECK(missing.error().code() == Errc::BadSource);
  CHECK(missing.error().message() ==
        "requirements.lock:2: \"b==2.0\" has no --hash and no fetched file; pip --require-hashes would refuse it");
  // Versions compare by PEP 440 ("2" == "2.0"), names by PEP 503 ("B" == "b").
  auto ok = fill_lock(*lock, {{"a", "1.0", kH1, ""}, {"B", "2", kH3, ""}});
  REQUIRE(ok.ok());
  CHECK(ok->find("b==2.0 \\\n    --hash=sha256:" + kH3) != std::string::npos);
  // Extras survive the rewrite of a URL requirement into a pin.
  auto extras = parse_lock("c[Dev,cuda] @ https://h/c-3.0-py3-none-any.whl ; python_version >= \"3.9\"\n");
  REQUIRE(extras.ok());
  CHECK(extras->entries[0].extras == std::vector<std::string>{"cuda", "dev"});
  auto pinned = fill_lock(*extras, {{"c", "3.0", kH1, "c-3.0-py3-none-any.whl"}});
  REQUIRE(pinned.ok());
  CHECK(*pinned == "# sha256 first seen by cy-llm-fetch (the registry had none): c\n"
                   "c[cuda,dev]==3.0 ; python_version >= \"3.9\" \\\n    --hash=sha256:" + kH1 + "\n");
  auto junk = fill_lock(*lock, {{"a", "1.0", "nothex", ""}});
  CHECK(junk.error().code() == Errc::InvalidArgument);
}

TEST_CASE("fill_lock pins a range requirement on the fetched version, keeping extras and marker") {
  auto lock = parse_lock("grpcio[protobuf]>=1.62.1,<1.71 ; python_version >= \"3.9\"\n");
  REQUIRE_MESSAGE(lock.ok(), lock.error().to_string());
  REQUIRE(lock->entries.size() == 1);
  CHECK(lock->entries[0].version.empty());
  auto text = fill_lock(*lock, {{"grpcio", "1.70.0", kH1, "grpcio-1.70.0-cp311-cp311-manylinux_2_17_x86_64.whl"}});
  REQUIRE_MESSAGE(text.ok(), text.error().to_string());
  CHECK(*text ==
        "# sha256 first seen by cy-llm-fetch (the registry had none): grpcio\n"
        "grpcio[protobuf]==1.70.0 ; python_version >= \"3.9\" \\\n"
        "    --hash=sha256:" + kH1 + "\n");
  auto again = parse_lock(*text);
  REQUIRE_MESSAGE(again.ok(), again.error().to_string());
  CHECK(again->entries[0].version == "1.70.0");
}
