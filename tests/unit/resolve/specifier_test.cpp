// PEP 440 specifier conformance: containment table (tests/fixtures/packaging/
// specifiers_contains.txt), parsing, invalid inputs with exact error text, pre-release
// policy in filter(), intersection and printing.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cyllm/packaging.h"
#include "test_support.h"

using cyllm::Errc;
using namespace cyllm::packaging;

namespace {

Version v(const std::string& s) {
  auto r = parse_version(s);
  REQUIRE_MESSAGE(r.ok(), s << ": " << r.error().to_string());
  return *r;
}

SpecifierSet set(const std::string& s) {
  auto r = parse_specifier_set(s);
  REQUIRE_MESSAGE(r.ok(), s << ": " << r.error().to_string());
  return *r;
}

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  if (s == "-") return out;
  std::istringstream ss(s);
  std::string w;
  while (ss >> w) out.push_back(w);
  return out;
}

std::vector<std::string> strings(const std::vector<Version>& vs) {
  std::vector<std::string> out;
  for (const Version& x : vs) out.push_back(x.to_string());
  return out;
}

}  // namespace

TEST_CASE("containment table") {
  std::ifstream in(cyllm::test::fixtures_dir() / "packaging" / "specifiers_contains.txt");
  REQUIRE(in.good());
  std::string line;
  std::size_t n = 0, rows = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cols;
    std::size_t start = 0;
    for (;;) {
      auto tab = line.find('\t', start);
      cols.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    REQUIRE_MESSAGE(cols.size() == 4, line);
    SpecifierSet s = set(cols[0]);
    std::optional<bool> pre;
    if (cols[1] == "true") pre = true;
    if (cols[1] == "false") pre = false;
    ++rows;
    for (int want = 1; want >= 0; --want) {
      for (const std::string& ver : words(cols[want ? 2 : 3])) {
        bool got = s.contains(v(ver), pre);
        CHECK_MESSAGE(got == (want == 1),
                      "\"" << cols[0] << "\" prereleases=" << cols[1] << " " << ver);
        // A one-specifier set agrees with the bare Specifier.
        if (s.size() == 1) CHECK(s.specifiers()[0].contains(v(ver), pre) == got);
        ++n;
      }
    }
  }
  MESSAGE("specifier containment: " << n << " cases in " << rows << " rows");
  CHECK(n >= 400);
}

TEST_CASE("valid specifiers print as written") {
  struct Case {
    const char* in;
    const char* out;
  };
  const Case cases[] = {
      {">=1.0", ">=1.0"},           {"  >=  1.0  ", ">=1.0"},     {"==1.2.*", "==1.2.*"},
      {"== 1.2.*", "==1.2.*"},      {"!=1.0.*", "!=1.0.*"},       {"~=2.2", "~=2.2"},
      {"~= 2.2.post3", "~=2.2.post3"}, {"===foobar", "===foobar"}, {"=== 1.0", "===1.0"},
      {"<2", "<2"},                 {">1.0a1", ">1.0a1"},         {"<=1!2.0", "<=1!2.0"},
      {"==1.0+local", "==1.0+local"}, {"!=1.0+abc.5", "!=1.0+abc.5"}, {"==v1.0", "==v1.0"},
      {">=1.0.0.dev0", ">=1.0.0.dev0"}, {"~=1.4.5a4", "~=1.4.5a4"}, {"==1!2.*", "==1!2.*"},
      {">=2.0rc1", ">=2.0rc1"},     {"\t<3\n", "<3"},             {"===1.0+ABC", "===1.0+ABC"},
      {"==0.*", "==0.*"},
  };
  for (const Case& c : cases) {
    auto r = parse_specifier(c.in);
    REQUIRE_MESSAGE(r.ok(), c.in << ": " << r.error().to_string());
    CHECK(r->to_string() == c.out);
    auto again = parse_specifier(r->to_string());
    REQUIRE(again.ok());
    CHECK(*again == *r);
  }
  CHECK(parse_specifier("==1.*")->wildcard());
  CHECK(parse_specifier("==1.*")->op() == SpecOp::Equal);
  CHECK(parse_specifier("~=1.0")->op() == SpecOp::Compatible);
  CHECK(parse_specifier("===x")->op() == SpecOp::Arbitrary);
  MESSAGE("valid specifiers: " << std::size(cases) << " cases");
}

TEST_CASE("invalid specifiers") {
  const char* bad[] = {
      "",        "1.0",        "=1.0",       "=>1.0",      "=<1.0",       ">=",
      ">= ",     "==",         "~=1",        "~=1.*",      "~=1.0+local", ">=1.0+local",
      "<1.0+l",  ">1.0.*",     "<=1.*",      ">=1.*",      "==1.0a1.*",   "==1.0.post1.*",
      "==1.0+l.*", "==1.*.*",  "==1.0.*a",   "== 1.0 .*",  ">=1.0 2.0",   ">=foo",
      ">=1.0foo", "<>1.0",     "!1.0",       "~1.0",       "^1.0",        ">>1.0",
      "==1.0,",  ",==1.0",     ">=1,,<2",    ">=1;<2",     "===a b",      "===",
      "=== ",    "===a;b",     "===a)b",     ">=v",        "==1..0",      ">=1.0-",
      "!=",      ">=1!",       "< 1 .0",     "~=1.0.*",    "== *",        "==.*",
  };
  std::size_t n = 0;
  for (const char* s : bad) {
    auto r = parse_specifier_set(s);
    // "" is the empty set, not an error; everything else must fail.
    if (std::string(s).empty()) {
      CHECK(r.ok());
      continue;
    }
    if (r.ok()) {
      FAIL_CHECK("accepted \"" << s << "\" as " << r->to_string());
      continue;
    }
    CHECK(r.error().code() == Errc::BadSpecifier);
    ++n;
  }
  CHECK_FALSE(parse_specifier("").ok());
  MESSAGE("invalid specifiers: " << n << " cases");
}

TEST_CASE("exact error text") {
  struct Case {
    const char* in;
    const char* text;
  };
  const Case cases[] = {
      {">=", "resolve.bad_specifier: \">=\" is not a valid specifier: expected a version after "
             "\">=\""},
      {">=<6", "resolve.bad_specifier: \">=<6\" is not a valid specifier: expected a version "
               "after \">=\""},
      {"1.0", "resolve.bad_specifier: \"1.0\" is not a valid specifier: expected an operator "
              "(~=, ==, !=, <=, >=, <, >, ===) before \"1.0\""},
      {"~=1", "resolve.bad_specifier: \"~=1\" is not a valid specifier: \"~=\" needs a version "
              "with at least two release numbers, such as \"~=1.0\", not \"1\""},
      {">=1.*", "resolve.bad_specifier: \">=1.*\" is not a valid specifier: a \".*\" wildcard is "
                "only allowed with \"==\" and \"!=\", not \">=\""},
      {"<1.0+local", "resolve.bad_specifier: \"<1.0+local\" is not a valid specifier: a local "
                     "version label (\"+...\") is only allowed with \"==\" and \"!=\", not \"<\""},
      {"==1.0a1.*", "resolve.bad_specifier: \"==1.0a1.*\" is not a valid specifier: a \".*\" "
                    "wildcard may only follow a release number such as \"1.2.*\", not "
                    "\"1.0a1.*\""},
      {">=1.0foo", "resolve.bad_specifier: \">=1.0foo\" is not a valid specifier: \"1.0foo\" "
                   "after \">=\" is not a PEP 440 version"},
      {">=1,,<2", "resolve.bad_specifier: \">=1,,<2\" is not a valid specifier: expected a "
                  "specifier such as \">=1.0\" between commas"},
  };
  for (const Case& c : cases) {
    auto r = parse_specifier_set(c.in);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().to_string() == c.text);
  }
}

TEST_CASE("prereleases() names a pre-release") {
  struct Case {
    const char* spec;
    bool pre;
  };
  const Case cases[] = {
      {">=1.0", false},   {">=1.0a1", true},  {"==1.0.dev1", true}, {"<=2.0rc1", true},
      {"~=1.0b2", true},  {"<2.0a1", true},   {">1.0.dev0", true},  {"!=1.0a1", false},
      {"===1.0a1", true}, {"===foo", false},  {"==1.*", false},     {">=1.0.post1", false},
      {"<2", false},      {"==1.0a1+l", true},
  };
  for (const Case& c : cases) {
    INFO(c.spec);
    CHECK(parse_specifier(c.spec)->prereleases() == c.pre);
  }
  CHECK(set(">=1.0,<2.0b1").prereleases());
  CHECK_FALSE(set(">=1.0,!=1.5a1").prereleases());
  CHECK_FALSE(set("").prereleases());
}

TEST_CASE("filter: order kept, pre-releases only as a fallback") {
  std::vector<Version> all;
  for (const char* s : {"0.9", "1.0a1", "1.0", "1.1.dev1", "1.1", "1.2rc1", "2.0b1", "2.0"})
    all.push_back(v(s));
  using L = std::vector<std::string>;
  CHECK(strings(set(">=1.0").filter(all)) == L{"1.0", "1.1", "2.0"});
  CHECK(strings(set(">=1.0").filter(all, true)) ==
        L{"1.0", "1.1.dev1", "1.1", "1.2rc1", "2.0b1", "2.0"});
  CHECK(strings(set(">=1.0").filter(all, false)) == L{"1.0", "1.1", "2.0"});
  // Nothing final matches: fall back to the matching pre-releases (default only).
  CHECK(strings(set(">1.1,<2.0").filter(all)) == L{"1.2rc1"});
  CHECK(strings(set(">1.1,<2.0").filter(all, false)).empty());
  CHECK(strings(set(">2.0").filter(all)).empty());
  // A specifier naming a pre-release admits them.
  CHECK(strings(set(">=1.2rc1").filter(all)) == L{"1.2rc1", "2.0b1", "2.0"});
  // The empty set matches every final release, and pre-releases as a fallback.
  CHECK(strings(set("").filter(all)) == L{"0.9", "1.0", "1.1", "2.0"});
  std::vector<Version> only_pre = {v("3.0a1"), v("3.0b1")};
  CHECK(strings(set("").filter(only_pre)) == L{"3.0a1", "3.0b1"});
  CHECK(strings(set("").filter(only_pre, false)).empty());
  CHECK(strings(set("==1.*").filter(all)) == L{"1.0", "1.1"});
  CHECK(strings(set("~=1.0").filter(all)) == L{"1.0", "1.1"});
  CHECK(strings(set("!=1.1").filter(all)) == L{"0.9", "1.0", "2.0"});
  CHECK(set(">=1").filter({}).empty());
}

TEST_CASE("sets: intersection, dedupe, printing") {
  SpecifierSet a = set(">=1.0");
  SpecifierSet b = set("<2.0,!=1.5");
  SpecifierSet both = a.intersect(b);
  CHECK(both.size() == 3);
  CHECK(both.to_string() == "!=1.5,<2.0,>=1.0");
  CHECK(both.contains(v("1.4")));
  CHECK_FALSE(both.contains(v("1.5")));
  CHECK_FALSE(both.contains(v("2.0")));
  CHECK_FALSE(both.contains(v("0.9")));
  // Same meaning is deduplicated; different meaning is not.
  CHECK(set(">=1.0").intersect(set(">=1.0.0")).size() == 1);
  CHECK(set("==1.*").intersect(set("==1.0.*")).size() == 2);
  CHECK(set("~=1.0").intersect(set("~=1.0.0")).size() == 2);
  CHECK(set("===abc").intersect(set("===ABC")).size() == 1);
  CHECK(set(">=1, >=1.0 ,>=1.0.0").size() == 1);
  // The classic conflict: protobuf<6 AND protobuf>=6.30 is empty.
  SpecifierSet conflict = set("<6").intersect(set(">=6.30"));
  std::vector<Version> protobufs;
  for (const char* s : {"4.25.3", "5.29.5", "6.30.0", "6.31.1"}) protobufs.push_back(v(s));
  CHECK(conflict.filter(protobufs).empty());
  CHECK(set("").to_string().empty());
  CHECK(set(" < 2 , >= 1 ").to_string() == "<2,>=1");
  CHECK(set("").intersect(a).to_string() == ">=1.0");
  CHECK(parse_specifier(">=1.0").value() == parse_specifier(">=1.0.0").value());
  CHECK_FALSE(parse_specifier(">=1.0").value() == parse_specifier(">1.0").value());
  CHECK_FALSE(parse_specifier("==1.0+a").value() == parse_specifier("==1.0").value());
}
