// PEP 508 marker conformance: evaluation table (tests/fixtures/packaging/markers_eval.txt)
// against explicit target environments, canonical printing, exact error text.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <string>

#include "cyllm/packaging.h"
#include "test_support.h"

using cyllm::Errc;
using namespace cyllm::packaging;

namespace {

std::map<std::string, MarkerEnvironment> environments() {
  std::map<std::string, MarkerEnvironment> m;
  m["linux311"] = {"3.11", "3.11.7", "posix", "linux", "6.5.0-1018-aws", "Linux",
                   "#18~22.04.1-Ubuntu SMP Fri Apr  5 17:44:33 UTC 2024", "x86_64", "CPython",
                   "cpython", "3.11.7", ""};
  m["mac39"] = {"3.9", "3.9.18", "posix", "darwin", "23.4.0", "Darwin",
                "Darwin Kernel Version 23.4.0: Fri Mar 15 00:10:42 PDT 2024; "
                "root:xnu-10063.101.17~1/RELEASE_ARM64_T6000",
                "arm64", "CPython", "cpython", "3.9.18", ""};
  m["win312"] = {"3.12", "3.12.1", "nt", "win32", "10", "Windows", "10.0.22631", "AMD64",
                 "CPython", "cpython", "3.12.1", ""};
  m["pypy310"] = {"3.10", "3.10.13", "posix", "linux", "5.15.0-105-generic", "Linux",
                  "#115-Ubuntu SMP Mon Apr 15 09:52:04 UTC 2024", "aarch64", "PyPy", "pypy",
                  "7.3.15", ""};
  return m;
}

}  // namespace

TEST_CASE("evaluation table") {
  auto envs = environments();
  std::ifstream in(cyllm::test::fixtures_dir() / "packaging" / "markers_eval.txt");
  REQUIRE(in.good());
  std::string line;
  std::size_t n = 0, n_error = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '#') continue;
    auto t1 = line.find('\t');
    auto t2 = line.find('\t', t1 + 1);
    REQUIRE_MESSAGE(t2 != std::string::npos, line);
    std::string marker = line.substr(0, t1);
    std::string env_name = line.substr(t1 + 1, t2 - t1 - 1);
    std::string expected = line.substr(t2 + 1);
    std::string extra;
    if (auto c = env_name.find(":extra="); c != std::string::npos) {
      extra = env_name.substr(c + 7);
      env_name = env_name.substr(0, c);
    }
    REQUIRE_MESSAGE(envs.count(env_name), env_name);
    MarkerEnvironment env = envs[env_name];
    env.extra = extra;
    INFO(line);
    ++n;
    auto m = parse_marker(marker);
    if (expected == "error") {
      ++n_error;
      if (!m.ok()) {
        CHECK(m.error().code() == Errc::BadMarker);
        continue;
      }
      auto r = m->evaluate(env);
      CHECK_FALSE(r.ok());
      if (!r.ok()) CHECK(r.error().code() == Errc::BadMarker);
      continue;
    }
    REQUIRE_MESSAGE(m.ok(), m.error().to_string());
    auto r = m->evaluate(env);
    REQUIRE_MESSAGE(r.ok(), r.error().to_string());
    CHECK(*r == (expected == "true"));
    // The printed form parses back to a marker with the same text and the same answer.
    auto again = parse_marker(m->to_string());
    REQUIRE_MESSAGE(again.ok(), again.error().to_string());
    CHECK(again->to_string() == m->to_string());
    CHECK(again->evaluate(env).value() == *r);
  }
  MESSAGE("marker evaluation: " << n << " cases (" << n_error << " errors)");
  CHECK(n >= 150);
}

TEST_CASE("canonical printing") {
  struct Case {
    const char* in;
    const char* out;
  };
  const Case cases[] = {
      {"python_version>='3.8'", "python_version >= \"3.8\""},
      {"  python_version  >=  \"3.8\"  ", "python_version >= \"3.8\""},
      {"os.name=='posix'", "os_name == \"posix\""},
      {"python_implementation=='CPython'", "platform_python_implementation == \"CPython\""},
      {"'linux'in sys_platform", "\"linux\" in sys_platform"},
      {"sys_platform not  in 'win32'", "sys_platform not in \"win32\""},
      {"a_b() == 1", nullptr},
      {"(os_name=='nt'or os_name=='posix')and extra=='x'",
       "(os_name == \"nt\" or os_name == \"posix\") and extra == \"x\""},
      {"((extra == 'a'))", "((extra == \"a\"))"},
      {"platform_version == 'say \"hi\"'", "platform_version == 'say \"hi\"'"},
      {"extra == \"it's\"", "extra == \"it's\""},
      {"python_version>\"3\"\tand\nos_name!='nt'", "python_version > \"3\" and os_name != \"nt\""},
      {"python_version ~= '3.8' or python_version === '3.6'",
       "python_version ~= \"3.8\" or python_version === \"3.6\""},
  };
  for (const Case& c : cases) {
    INFO(c.in);
    auto m = parse_marker(c.in);
    if (!c.out) {
      CHECK_FALSE(m.ok());
      continue;
    }
    REQUIRE_MESSAGE(m.ok(), m.error().to_string());
    CHECK(m->to_string() == c.out);
  }
  Marker empty;
  CHECK(empty.to_string().empty());
  CHECK(empty.evaluate(MarkerEnvironment{}).value());
}

TEST_CASE("exact error text") {
  struct Case {
    const char* in;
    const char* text;
  };
  const Case cases[] = {
      {"", "resolve.bad_marker: \"\" is not a valid marker: expected a marker such as "
           "python_version >= \"3.9\", found nothing at column 1"},
      {"python_version >= ", "resolve.bad_marker: \"python_version >= \" is not a valid marker: "
                             "expected a marker variable or a quoted string, found the end at "
                             "column 19"},
      {"python_version = '3'", "resolve.bad_marker: \"python_version = '3'\" is not a valid "
                               "marker: expected a comparison (==, !=, <=, >=, <, >, ~=, ===, "
                               "in, not in), found \"= '3'\" at column 16"},
      {"os_name == 'nt", "resolve.bad_marker: \"os_name == 'nt\" is not a valid marker: "
                         "unterminated string at column 12"},
      {"(os_name == 'nt'", "resolve.bad_marker: \"(os_name == 'nt'\" is not a valid marker: "
                           "expected \")\" or \"and\"/\"or\", found \"\" at column 17"},
      {"os_name == 'nt' xor 1", "resolve.bad_marker: \"os_name == 'nt' xor 1\" is not a valid "
                                "marker: expected \"and\", \"or\" or the end, found \"xor 1\" at "
                                "column 17"},
  };
  for (const Case& c : cases) {
    auto r = parse_marker(c.in);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().to_string() == c.text);
  }
  auto m = parse_marker("platform_release ~= '5.15'");
  REQUIRE(m.ok());
  auto r = m->evaluate(environments()["linux311"]);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().to_string() ==
        "resolve.bad_marker: cannot compare \"6.5.0-1018-aws\" ~= \"5.15\": \"~=\" needs PEP 440 "
        "versions on both sides (while evaluating marker \"platform_release ~= \\\"5.15\\\"\")");
}

TEST_CASE("nesting is capped") {
  std::string deep;
  for (int i = 0; i < kMaxMarkerDepth; ++i) deep += "(";
  deep += "os_name == 'nt'";
  for (int i = 0; i < kMaxMarkerDepth; ++i) deep += ")";
  CHECK(parse_marker(deep).ok());
  auto r = parse_marker("(" + deep + ")");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("nested deeper than 64") != std::string::npos);
}
