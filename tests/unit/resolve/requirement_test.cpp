// PEP 508 requirement conformance: parse/print table with round trips
// (tests/fixtures/packaging/requirements.txt), fields, name normalisation, exact error text
// and marker evaluation against a target environment.
#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "cyllm/packaging.h"
#include "test_support.h"

using cyllm::Errc;
using namespace cyllm::packaging;

namespace {

std::string unescape(std::string s) {
  for (std::size_t p; (p = s.find("\\s")) != std::string::npos;) s.replace(p, 2, " ");
  return s;
}

Requirement req(const std::string& s) {
  auto r = parse_requirement(s);
  REQUIRE_MESSAGE(r.ok(), s << ": " << r.error().to_string());
  return *r;
}

}  // namespace

TEST_CASE("parse and print table") {
  std::ifstream in(cyllm::test::fixtures_dir() / "packaging" / "requirements.txt");
  REQUIRE(in.good());
  std::string line;
  std::size_t n_ok = 0, n_bad = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '#') continue;
    auto t1 = line.find('\t');
    auto t2 = line.find('\t', t1 + 1);
    REQUIRE_MESSAGE(t2 != std::string::npos, line);
    std::string input = unescape(line.substr(0, t1));
    std::string expected = line.substr(t1 + 1, t2 - t1 - 1);
    std::string name = line.substr(t2 + 1);
    INFO(line);
    auto r = parse_requirement(input);
    if (expected == "!") {
      ++n_bad;
      if (r.ok()) {
        FAIL_CHECK("accepted as " << r->to_string());
        continue;
      }
      Errc c = r.error().code();
      CHECK((c == Errc::BadRequirement || c == Errc::BadSpecifier || c == Errc::BadMarker));
      CHECK(r.error().message().find(" is not a valid ") != std::string::npos);
      continue;
    }
    ++n_ok;
    REQUIRE_MESSAGE(r.ok(), r.error().to_string());
    CHECK(r->to_string() == expected);
    CHECK(r->normalized_name() == name);
    auto again = parse_requirement(r->to_string());
    REQUIRE_MESSAGE(again.ok(), again.error().to_string());
    CHECK(again->to_string() == r->to_string());
    CHECK(again->extras == r->extras);
    CHECK(again->url == r->url);
  }
  MESSAGE("requirements: " << n_ok + n_bad << " cases (" << n_ok << " valid with round trip, "
                           << n_bad << " invalid)");
  CHECK(n_ok + n_bad >= 100);
}

TEST_CASE("fields") {
  Requirement r = req("Foo_Bar[GPU, cuda12] (>=1.0, <2) ; python_version >= '3.9'");
  CHECK(r.name == "Foo_Bar");
  CHECK(r.normalized_name() == "foo-bar");
  CHECK(r.extras == std::vector<std::string>{"cuda12", "gpu"});
  CHECK(r.specifier.size() == 2);
  CHECK(r.url.empty());
  REQUIRE(r.marker.has_value());
  CHECK(r.marker->to_string() == "python_version >= \"3.9\"");

  Requirement u = req("torch @ https://download.pytorch.org/whl/torch-2.5.1.whl ; os_name == 'posix'");
  CHECK(u.url == "https://download.pytorch.org/whl/torch-2.5.1.whl");
  CHECK(u.specifier.empty());
  CHECK(u.marker.has_value());

  Requirement plain = req("numpy");
  CHECK(plain.extras.empty());
  CHECK(plain.specifier.empty());
  CHECK_FALSE(plain.marker.has_value());
}

TEST_CASE("applies_to evaluates against the target environment") {
  MarkerEnvironment linux_x86{"3.11", "3.11.7", "posix", "linux", "6.5.0", "Linux", "#1 SMP",
                              "x86_64", "CPython", "cpython", "3.11.7", ""};
  MarkerEnvironment mac = linux_x86;
  mac.sys_platform = "darwin";
  mac.platform_system = "Darwin";
  mac.platform_machine = "arm64";
  CHECK(req("triton; platform_machine == 'x86_64'").applies_to(linux_x86).value());
  CHECK_FALSE(req("triton; platform_machine == 'x86_64'").applies_to(mac).value());
  CHECK(req("numpy").applies_to(mac).value());
  auto gpu = req("cupy; extra == 'GPU'");
  CHECK_FALSE(gpu.applies_to(linux_x86).value());
  MarkerEnvironment with_extra = linux_x86;
  with_extra.extra = "gpu";
  CHECK(gpu.applies_to(with_extra).value());
}

TEST_CASE("name normalisation and validity (PEP 503 / PEP 508)") {
  struct Case {
    const char* in;
    const char* norm;
    bool valid;
  };
  const Case cases[] = {
      {"Foo.Bar_baz", "foo-bar-baz", true}, {"foo", "foo", true},
      {"FOO", "foo", true},                 {"foo-bar", "foo-bar", true},
      {"foo_bar", "foo-bar", true},         {"foo.bar", "foo-bar", true},
      {"foo--bar", "foo-bar", true},        {"foo-_.bar", "foo-bar", true},
      {"Foo__Bar", "foo-bar", true},        {"a", "a", true},
      {"1", "1", true},                     {"vLLM", "vllm", true},
      {"tensorrt_llm", "tensorrt-llm", true}, {"torch-npu", "torch-npu", true},
      {"zope.interface", "zope-interface", true}, {"-foo", "-foo", false},
      {"foo-", "foo-", false},              {"", "", false},
      {"foo bar", "foo bar", false},        {"foo@bar", "foo@bar", false},
      {"_", "-", false},                    {"foo!", "foo!", false},
  };
  for (const Case& c : cases) {
    INFO(c.in);
    CHECK(normalize_name(c.in) == c.norm);
    CHECK(is_valid_name(c.in) == c.valid);
  }
  MESSAGE("names: " << std::size(cases) << " cases");
}

TEST_CASE("exact error text") {
  struct Case {
    const char* in;
    const char* text;
  };
  const Case cases[] = {
      {"protobuf>=<6", "resolve.bad_specifier: \"protobuf>=<6\" is not a valid specifier: "
                       "expected a version after \">=\""},
      {"protobuf>=5,", "resolve.bad_specifier: \"protobuf>=5,\" is not a valid specifier: "
                       "expected a specifier such as \">=1.0\" after the last comma"},
      {"-foo", "resolve.bad_requirement: \"-foo\" is not a valid requirement: the name "
               "\"-foo\" must start and end with a letter or digit"},
      {"", "resolve.bad_requirement: \"\" is not a valid requirement: expected a package name, "
           "found nothing"},
      {"name[gpu", "resolve.bad_requirement: \"name[gpu\" is not a valid requirement: expected "
                   "\",\" or \"]\" to close the extras, found the end"},
      {"name @ /tmp/x.whl", "resolve.bad_requirement: \"name @ /tmp/x.whl\" is not a valid "
                            "requirement: the URL \"/tmp/x.whl\" needs a scheme such as "
                            "\"https://\" or \"file://\""},
      {"name 1.0", "resolve.bad_requirement: \"name 1.0\" is not a valid requirement: expected "
                   "\"[\", \"(\", a version specifier, \"@\", \";\" or the end, found \"1.0\""},
      {"name; os_name = 'nt'", "resolve.bad_marker: \"name; os_name = 'nt'\" is not a valid "
                               "marker: expected a comparison (==, !=, <=, >=, <, >, ~=, ===, "
                               "in, not in), found \"= 'nt'\" at column 15"},
  };
  for (const Case& c : cases) {
    auto r = parse_requirement(c.in);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().to_string() == c.text);
  }
}

TEST_CASE("length cap") {
  std::string big = "name; " ;
  while (big.size() <= kMaxRequirementLength) big += "os_name == 'nt' or ";
  big += "os_name == 'nt'";
  auto r = parse_requirement(big);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("longer than 65536 characters") != std::string::npos);
}
