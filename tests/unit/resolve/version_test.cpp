// PEP 440 version conformance: ordering chain, normalisation, invalid spellings, exact
// error text and the derived properties. Tables live in tests/fixtures/packaging/.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cyllm/packaging.h"
#include "test_support.h"

using cyllm::Errc;
using cyllm::packaging::parse_version;
using cyllm::packaging::Version;

namespace {

// Lines of a fixture file without comments ('#' first) ; blank lines kept when asked.
std::vector<std::string> fixture_lines(const char* name, bool keep_blank = false) {
  std::ifstream in(cyllm::test::fixtures_dir() / "packaging" / name);
  REQUIRE_MESSAGE(in.good(), "missing fixture " << name);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '#') continue;
    if (line.empty() && !keep_blank) continue;
    out.push_back(line);
  }
  return out;
}

// "\s" -> space, "\t" -> tab, "\n" -> newline.
std::string unescape(const std::string& s) {
  std::string r;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      char c = s[i + 1];
      if (c == 's' || c == 't' || c == 'n') {
        r += c == 's' ? ' ' : (c == 't' ? '\t' : '\n');
        ++i;
        continue;
      }
    }
    r += s[i];
  }
  return r;
}

Version v(const std::string& s) {
  auto r = parse_version(s);
  REQUIRE_MESSAGE(r.ok(), s << ": " << r.error().to_string());
  return *r;
}

}  // namespace

TEST_CASE("ordering chain: every pair in versions_order.txt") {
  std::vector<std::vector<Version>> groups;
  std::vector<std::vector<std::string>> texts;
  for (const std::string& line : fixture_lines("versions_order.txt")) {
    std::istringstream ss(line);
    std::string tok;
    groups.emplace_back();
    texts.emplace_back();
    while (ss >> tok) {
      groups.back().push_back(v(tok));
      texts.back().push_back(tok);
    }
  }
  std::vector<std::pair<Version, std::string>> flat;
  std::vector<std::size_t> group_of;
  for (std::size_t g = 0; g < groups.size(); ++g)
    for (std::size_t k = 0; k < groups[g].size(); ++k) {
      flat.emplace_back(groups[g][k], texts[g][k]);
      group_of.push_back(g);
    }
  std::size_t n_checked = 0;
  for (std::size_t i = 0; i < flat.size(); ++i) {
    for (std::size_t j = 0; j < flat.size(); ++j) {
      const Version& a = flat[i].first;
      const Version& b = flat[j].first;
      auto expected = group_of[i] < group_of[j]   ? std::strong_ordering::less
                      : group_of[i] > group_of[j] ? std::strong_ordering::greater
                                                  : std::strong_ordering::equal;
      auto got = a <=> b;
      if (got != expected) {
        FAIL_CHECK(flat[i].second << " vs " << flat[j].second << ": wrong order");
      }
      CHECK((a == b) == (expected == 0));
      ++n_checked;
    }
  }
  MESSAGE("version ordering: " << flat.size() << " versions in " << groups.size()
                               << " groups, " << n_checked << " ordered pairs checked");
  CHECK(flat.size() >= 100);
}

TEST_CASE("normalisation to the canonical form") {
  std::size_t n = 0;
  for (const std::string& line : fixture_lines("versions_normalize.txt")) {
    auto tab = line.find('\t');
    REQUIRE(tab != std::string::npos);
    std::string input = unescape(line.substr(0, tab));
    std::string expected = line.substr(tab + 1);
    auto r = parse_version(input);
    if (!r.ok()) {
      FAIL_CHECK(line << ": " << r.error().to_string());
      continue;
    }
    CHECK_MESSAGE(r->to_string() == expected, "input " << line);
    // The canonical form is a fixed point and equal to the original.
    auto again = parse_version(r->to_string());
    REQUIRE(again.ok());
    CHECK(again->to_string() == expected);
    CHECK(*again == *r);
    ++n;
  }
  MESSAGE("version normalisation: " << n << " cases");
  CHECK(n >= 100);
}

TEST_CASE("invalid versions are refused with resolve.bad_version") {
  std::size_t n = 0;
  for (const std::string& line : fixture_lines("versions_invalid.txt", true)) {
    std::string input = unescape(line);
    auto r = parse_version(input);
    if (r.ok()) {
      FAIL_CHECK("accepted " << line << " as " << r->to_string());
      continue;
    }
    CHECK(r.error().code() == Errc::BadVersion);
    CHECK(r.error().message().find("is not a valid version: ") != std::string::npos);
    CHECK(r.error().message().front() == '"');
    ++n;
  }
  MESSAGE("invalid versions: " << n << " cases");
  CHECK(n >= 60);
}

TEST_CASE("numbers beyond 64 bits are refused, not wrapped") {
  // Our documented limit: Python accepts these (arbitrary precision); we refuse them.
  const char* too_big[] = {"18446744073709551616", "1.18446744073709551616",
                           "1.0.post18446744073709551616", "1.0a18446744073709551616",
                           "1.0.dev18446744073709551616", "18446744073709551616!1.0",
                           "99999999999999999999999999999.0"};
  for (const char* s : too_big) {
    auto r = parse_version(s);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Errc::BadVersion);
    CHECK(r.error().message().find("does not fit in 64 bits") != std::string::npos);
  }
  CHECK(v("18446744073709551615").major() == 18446744073709551615ull);
  // Local numeric segments are digit strings: no limit, compared by value.
  CHECK(v("1.0+99999999999999999999999") < v("1.0+100000000000000000000000"));
  CHECK(v("1.0+0099") == v("1.0+99"));
}

TEST_CASE("length cap") {
  std::string long_ok = "1";
  while (long_ok.size() + 2 <= cyllm::packaging::kMaxVersionLength) long_ok += ".1";
  CHECK(parse_version(long_ok).ok());
  std::string too_long = long_ok + ".1.1";
  auto r = parse_version(too_long);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("longer than 512 characters") != std::string::npos);
}

TEST_CASE("exact error text") {
  struct Case {
    const char* input;
    const char* text;
  };
  const Case cases[] = {
      {"", "resolve.bad_version: \"\" is not a valid version: expected a release number such "
           "as \"1.0\", found nothing"},
      {"french toast",
       "resolve.bad_version: \"french toast\" is not a valid version: expected a release "
       "number such as \"1.0\" (PEP 440: [N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local])"},
      {"1.0foo",
       "resolve.bad_version: \"1.0foo\" is not a valid version: unexpected \"foo\" at "
       "position 4 (PEP 440: [N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local])"},
      {"1.0+", "resolve.bad_version: \"1.0+\" is not a valid version: expected a local "
               "version label (letters, digits) after \"+\""},
      {"1.0+a..b", "resolve.bad_version: \"1.0+a..b\" is not a valid version: expected a "
                   "letter or digit after a separator in the local label"},
      {"2!", "resolve.bad_version: \"2!\" is not a valid version: expected a release number "
             "after the epoch \"!\""},
      {"1.99999999999999999999",
       "resolve.bad_version: \"1.99999999999999999999\" is not a valid version: number "
       "\"99999999999999999999\" does not fit in 64 bits"},
  };
  for (const Case& c : cases) {
    auto r = parse_version(c.input);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().to_string() == c.text);
  }
}

TEST_CASE("derived properties") {
  struct Case {
    const char* input;
    bool pre, post, dev;
    const char* public_v;
    const char* base;
    std::uint64_t epoch, major, minor, micro;
  };
  const Case cases[] = {
      {"1.0", false, false, false, "1.0", "1.0", 0, 1, 0, 0},
      {"1.2.3", false, false, false, "1.2.3", "1.2.3", 0, 1, 2, 3},
      {"1.0a1", true, false, false, "1.0a1", "1.0", 0, 1, 0, 0},
      {"1.0b2", true, false, false, "1.0b2", "1.0", 0, 1, 0, 0},
      {"1.0rc1", true, false, false, "1.0rc1", "1.0", 0, 1, 0, 0},
      {"1.0.dev1", true, false, true, "1.0.dev1", "1.0", 0, 1, 0, 0},
      {"1.0a1.dev1", true, false, true, "1.0a1.dev1", "1.0", 0, 1, 0, 0},
      {"1.0.post1", false, true, false, "1.0.post1", "1.0", 0, 1, 0, 0},
      {"1.0.post1.dev1", true, true, true, "1.0.post1.dev1", "1.0", 0, 1, 0, 0},
      {"1.0rc1.post1", true, true, false, "1.0rc1.post1", "1.0", 0, 1, 0, 0},
      {"1.0+local", false, false, false, "1.0", "1.0", 0, 1, 0, 0},
      {"1.0a1+local", true, false, false, "1.0a1", "1.0", 0, 1, 0, 0},
      {"2!1.0.post3+abc.1", false, true, false, "2!1.0.post3", "2!1.0", 2, 1, 0, 0},
      {"1!2.3.4.5rc6", true, false, false, "1!2.3.4.5rc6", "1!2.3.4.5", 1, 2, 3, 4},
      {"7", false, false, false, "7", "7", 0, 7, 0, 0},
      {"0.12.0+cu121", false, false, false, "0.12.0", "0.12.0", 0, 0, 12, 0},
      {"2.5.1+rocm6.2", false, false, false, "2.5.1", "2.5.1", 0, 2, 5, 1},
      {"1.0-1", false, true, false, "1.0.post1", "1.0", 0, 1, 0, 0},
      {"v3.11.7", false, false, false, "3.11.7", "3.11.7", 0, 3, 11, 7},
      {"1.0c2.dev3", true, false, true, "1.0rc2.dev3", "1.0", 0, 1, 0, 0},
  };
  for (const Case& c : cases) {
    INFO(c.input);
    Version x = v(c.input);
    CHECK(x.is_prerelease() == c.pre);
    CHECK(x.is_postrelease() == c.post);
    CHECK(x.is_devrelease() == c.dev);
    CHECK(x.public_version().to_string() == c.public_v);
    CHECK(x.base_version().to_string() == c.base);
    CHECK(x.epoch() == c.epoch);
    CHECK(x.major() == c.major);
    CHECK(x.minor() == c.minor);
    CHECK(x.micro() == c.micro);
    CHECK(x.has_local() == (std::string(c.input).find('+') != std::string::npos));
  }
  Version x = v("1.0+Ubuntu-1");
  REQUIRE(x.local().size() == 2);
  CHECK(x.local()[0] == "ubuntu");
  CHECK(x.local()[1] == "1");
  REQUIRE(v("1.0rc3").pre().has_value());
  CHECK(v("1.0rc3").pre()->kind == cyllm::packaging::PreKind::Rc);
  CHECK(v("1.0rc3").pre()->number == 3);
  CHECK(Version{}.to_string() == "0");
}
