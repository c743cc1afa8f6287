// The interactive choice of cy-llm-resolve, on a real pseudo-terminal (util-linux script):
// numbered engines with their trade-offs, recommended first; the answer picks the engine.
// And the opposite: with stdin not a terminal, or with --yes, it never asks.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "cyllm/context.h"
#include "test_support.h"

using namespace cyllm;
using namespace std::chrono_literals;

namespace {
std::string json_part(const std::string& out) {
  auto p = out.find("{\r\n  \"schema\"");
  if (p == std::string::npos) p = out.find("{\n  \"schema\"");
  REQUIRE_MESSAGE(p != std::string::npos, out);
  return out.substr(p);
}
}  // namespace

TEST_CASE("on a terminal, several engines are offered and the answer is used") {
  PosixCommandRunner r;
  const std::string tool = (test::tools_dir() / "cy-llm-resolve").string();
  const std::string profile =
      (test::source_root() / "tests/cli/detect/cpu-cgroup2/expected.stdout.json").string();
  for (const auto& c : {std::pair{"2", "vllm"}, std::pair{"", "cy-llm"}, std::pair{"9\n1", "cy-llm"}}) {
    const char* answer = c.first;  // not structured bindings: clang 14 cannot capture those
    const char* engine = c.second;
    CAPTURE(answer);
    std::string cmd = "printf '" + std::string(answer) + "\\n' | script -qec '" + tool + " " + profile +
                      " --log-format json' /dev/null";
    auto out = r.run({"/bin/sh", "-c", cmd}, 60s);
    REQUIRE(out.ok());
    REQUIRE_MESSAGE(out->exit_code == 0, out->out << out->err);
    CHECK(out->out.find("Several engines run on this host:") != std::string::npos);
    CHECK(out->out.find("1) cy-llm 0.1.0 (native)  - latency") != std::string::npos);
    CHECK(out->out.find("[recommended]") != std::string::npos);
    CHECK(out->out.find("2) vllm 0.12.0 (cpu)  - throughput") != std::string::npos);
    if (std::string(answer).rfind("9", 0) == 0)
      CHECK(out->out.find("\"9\" is not one of the choices.") != std::string::npos);
    std::string doc = json_part(out->out);
    std::erase(doc, '\r');
    auto plan = nlohmann::json::parse(doc.substr(0, doc.rfind('}') + 1));
    CHECK(plan["engine"]["name"] == engine);
  }
}

TEST_CASE("with --yes, or with stdin not a terminal, it never asks") {
  PosixCommandRunner r;
  const std::string tool = (test::tools_dir() / "cy-llm-resolve").string();
  const std::string profile =
      (test::source_root() / "tests/cli/detect/cpu-cgroup2/expected.stdout.json").string();
  auto yes = r.run({"/bin/sh", "-c", "script -qec '" + tool + " " + profile + " --yes' /dev/null </dev/null"}, 60s);
  REQUIRE(yes.ok());
  CHECK(yes->exit_code == 0);
  CHECK(yes->out.find("Several engines") == std::string::npos);
  auto piped = test::run_tool("cy-llm-resolve", {}, "");
  CHECK(piped.exit_code == 1);  // empty stdin is no profile, and nothing was asked
  CHECK(piped.err.find("Several engines") == std::string::npos);
}
