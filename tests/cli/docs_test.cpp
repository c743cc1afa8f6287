// Docs stay in step with the code: every long option that a tool's --help lists appears in
// its man page; every tool has a page; --version lists the compiled features; and the
// detect output validates against the committed schema's required keys.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "test_support.h"

namespace fs = std::filesystem;
using namespace cyllm;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "cannot read " << p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Checks `doc` against the subset of JSON Schema our schemas use: type, const, enum,
// required, properties, items, oneOf. Returns the first violation, or "".
std::string validate(const nlohmann::json& schema, const nlohmann::json& doc, const std::string& at) {
  if (schema.contains("const") && doc != schema["const"]) return at + ": not " + schema["const"].dump();
  if (schema.contains("enum")) {
    bool ok = false;
    for (const auto& e : schema["enum"]) ok |= (e == doc);
    if (!ok) return at + ": " + doc.dump() + " not in enum";
  }
  if (schema.contains("oneOf")) {
    int matches = 0;
    for (const auto& s : schema["oneOf"]) matches += validate(s, doc, at).empty();
    if (matches != 1) return at + ": matches " + std::to_string(matches) + " of oneOf";
  }
  if (schema.contains("type")) {
    std::vector<std::string> types;
    if (schema["type"].is_string()) types.push_back(schema["type"]);
    else for (const auto& t : schema["type"]) types.push_back(t);
    bool ok = false;
    for (const auto& t : types) {
      ok |= (t == "object" && doc.is_object()) || (t == "array" && doc.is_array()) ||
            (t == "string" && doc.is_string()) || (t == "integer" && doc.is_number_integer()) ||
            (t == "number" && doc.is_number()) || (t == "boolean" && doc.is_boolean()) ||
            (t == "null" && doc.is_null());
    }
    if (!ok) return at + ": wrong type " + doc.dump().substr(0, 60);
  }
  if (doc.is_object()) {
    if (schema.contains("required"))
      for (const auto& k : schema["required"])
        if (!doc.contains(k.get<std::string>())) return at + ": missing key " + k.dump();
    if (schema.contains("properties"))
      for (const auto& [k, s] : schema["properties"].items())
        if (doc.contains(k))
          if (auto e = validate(s, doc[k], at + "." + k); !e.empty()) return e;
  }
  if (doc.is_array() && schema.contains("items"))
    for (std::size_t i = 0; i < doc.size(); ++i)
      if (auto e = validate(schema["items"], doc[i], at + "[" + std::to_string(i) + "]"); !e.empty())
        return e;
  return "";
}
}  // namespace

TEST_CASE("every long option in --help is documented in the man page") {
  const fs::path man = test::source_root() / "man";
  for (const std::string verb : {"detect", "resolve", "fetch", "run", "serve"}) {
    CAPTURE(verb);
    auto help = test::run_tool("cy-llm-" + verb, {"--help"});
    CHECK(help.exit_code == 0);
    std::string page = slurp(man / ("cy-llm-" + verb + ".1"));
    std::regex opt("--[a-z][a-z0-9-]+");
    std::set<std::string> options;
    for (auto it = std::sregex_iterator(help.out.begin(), help.out.end(), opt);
         it != std::sregex_iterator(); ++it)
      options.insert(it->str());
    CHECK(options.size() >= 6);
    for (const auto& o : options) {
      // roff escapes '-' as '\-'.
      std::string escaped;
      for (char c : o) escaped += (c == '-') ? std::string("\\-") : std::string(1, c);
      CHECK_MESSAGE(page.find(escaped) != std::string::npos,
                    "cy-llm-" << verb << ".1 does not document " << o);
    }
    for (const char* section : {".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH OPTIONS",
                                ".SH EXIT STATUS", ".SH EXAMPLES", ".SH SEE ALSO"})
      CHECK_MESSAGE(page.find(section) != std::string::npos, verb << " lacks " << section);
  }
  CHECK(fs::exists(man / "cy-llm.7"));
}

TEST_CASE("--version lists the compiled features") {
  for (const std::string verb : {"detect", "resolve", "fetch", "run", "serve"}) {
    auto v = test::run_tool("cy-llm-" + verb, {"--version"});
    CHECK(v.exit_code == 0);
    CHECK(v.out.rfind("cy-llm-" + verb + " ", 0) == 0);
    CHECK(std::regex_search(v.out, std::regex("[+-]cuda [+-]onednn \\+nvml-dlopen")));
  }
}

TEST_CASE("detect output on this host and on every fixture satisfies the schema") {
  auto schema = nlohmann::json::parse(slurp(test::source_root() / "tools/schema/detect.v1.json"));
  std::vector<std::vector<std::string>> runs = {{}};
  for (const auto& r : fs::directory_iterator(test::fixtures_dir() / "roots"))
    runs.push_back({"--root", r.path().string(), "--tool-timeout", "300"});
  for (const auto& args : runs) {
    CAPTURE(args.size() > 1 ? args[1] : std::string("host"));
    auto run = test::run_tool("cy-llm-detect", args, "", {"CUDA_VISIBLE_DEVICES="});
    REQUIRE(run.exit_code == 0);
    auto doc = nlohmann::json::parse(run.out);
    CHECK(validate(schema, doc, "$") == "");
  }
}

TEST_CASE("resolve output for every detect golden satisfies the plan schema") {
  auto schema = nlohmann::json::parse(slurp(test::source_root() / "tools/schema/plan.v1.json"));
  int n = 0;
  for (const auto& c : fs::directory_iterator(test::source_root() / "tests/cli/detect")) {
    auto golden = c.path() / "expected.stdout.json";
    if (!fs::exists(golden) || fs::file_size(golden) < 10) continue;
    CAPTURE(c.path().filename().string());
    auto run = test::run_tool("cy-llm-resolve", {"--yes"}, slurp(golden));
    if (run.exit_code != 0) continue;  // e.g. no engine for that host
    CHECK(validate(schema, nlohmann::json::parse(run.out), "$") == "");
    ++n;
  }
  CHECK(n >= 5);
}

TEST_CASE("on this machine detect reports the CPU with vendor cpu, fast") {
  auto t0 = std::chrono::steady_clock::now();
  auto run = test::run_tool("cy-llm-detect", {}, "", {"CUDA_VISIBLE_DEVICES="});
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(run.exit_code == 0);
  auto doc = nlohmann::json::parse(run.out);
  CHECK(doc["vendor"] == "cpu");
  CHECK(doc["cpu"]["logical_cores"].get<int>() >= 1);
  CHECK(doc["cpu"]["memory_total_bytes"].get<std::uint64_t>() > 0);
  MESSAGE("cy-llm-detect on this host took " << ms << " ms (process start included)");
}
