#include <doctest/doctest.h>

#include "cyllm/resolve.h"

using namespace cyllm;

namespace {

// A registry with one CPU profile, one engine row and a base stack, from YAML snippets.
registry::Registry make_registry(const std::string& base_reqs, const std::string& engine_reqs,
                                 const std::string& extra = "") {
  std::string text =
      "schema_version: 1\n"
      "hardware_profiles:\n  any:\n    architectures: [x86_64]\n"
      "  gpu:\n    vendor: nvidia\n    min_compute_capability: \"8.0\"\n"
      "engines:\n  eng:\n    kind: python\n    tradeoff: t\n    versions: [\"1.0\", \"2.0\"]\n"
      "    default_version: \"1.0\"\n"
      "  nat:\n    kind: native\n    tradeoff: n\n    versions: [\"0.1\"]\n    default_version: \"0.1\"\n"
      "compatibility_matrix:\n"
      "  - {hardware: any, engine: eng, engine_versions: \">=1\", verified: true, requirements: " +
      engine_reqs + "}\n"
      "  - {hardware: any, engine: nat, engine_versions: \"==0.1\", verified: true, requirements: []}\n" +
      extra + "base_environment:\n  requirements: " + base_reqs + "\n";
  auto r = registry::load_registry_from_strings({{"test.yaml", text}});
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().to_string()));
  return std::move(r).value();
}

detect::HardwareProfile cpu_host() {
  detect::HardwareProfile h;
  h.vendor = "cpu";
  h.cpu.architecture = "x86_64";
  h.cpu.isa = {"avx2"};
  return h;
}

}  // namespace

TEST_CASE("clash detection between the base stack and an engine row") {
  struct Case {
    const char* base;
    const char* engine;
    bool clash;
  };
  const Case cases[] = {
      {"[\"p>=4.21,<6\"]", "[\"p>=6.30\"]", true},
      {"[\"p<6\"]", "[\"p>=5.9\"]", false},
      {"[\"p>=1,<2\"]", "[\"p==2.0\"]", true},
      {"[\"p>=1,<2\"]", "[\"p==1.9.9\"]", false},
      {"[\"p!=1.5\"]", "[\"p==1.5\"]", true},
      {"[\"p!=1.5\"]", "[\"p==1.5.1\"]", false},
      {"[\"p==1.*\"]", "[\"p>=1.9\"]", false},
      {"[\"p==1.*\"]", "[\"p>=2\"]", true},
      {"[\"p~=1.4\"]", "[\"p<1.4\"]", true},
      {"[\"p~=1.4\"]", "[\"p<1.5\"]", false},
      {"[\"p>1.0\"]", "[\"p<1.0.1\"]", false},
      {"[\"p>1.0\"]", "[\"p<=1.0\"]", true},
      {"[\"p\"]", "[\"p==3\"]", false},
      {"[\"p<6; python_version < '3.0'\"]", "[\"p>=6\"]", false},  // marker false on the target
      {"[\"q<6\"]", "[\"p>=6\"]", false},
  };
  int n = 0;
  for (const auto& c : cases) {
    CAPTURE(c.base);
    CAPTURE(c.engine);
    auto reg = make_registry(c.base, c.engine);
    resolve::ResolveOptions o;
    o.engine = "eng";
    auto plan = resolve::resolve(reg, cpu_host(), o);
    REQUIRE_MESSAGE(plan.ok(), (plan.ok() ? "" : plan.error().to_string()));
    CHECK((plan->environments.size() == 2) == c.clash);
    CHECK(plan->conflicts.empty() == !c.clash);
    o.single_env = true;
    auto single = resolve::resolve(reg, cpu_host(), o);
    CHECK(single.ok() == !c.clash);
    if (!single.ok()) CHECK(single.error().code() == Errc::Conflict);
    ++n;
  }
  MESSAGE("clash cases: " << n);
}

TEST_CASE("the explanation names both requirements and their sources") {
  auto reg = make_registry("[\"protobuf>=4.21.6,<6\"]", "[\"eng=={version}\", \"protobuf>=6.30.0\"]");
  resolve::ResolveOptions o;
  o.engine = "eng";
  o.engine_version = "2.0";
  auto plan = resolve::resolve(reg, cpu_host(), o);
  REQUIRE(plan.ok());
  REQUIRE(plan->conflicts.size() == 1);
  CHECK(plan->conflicts[0].explanation ==
        "Because the base environment requires protobuf<6,>=4.21.6 (test.yaml:23) and eng 2.0 requires "
        "protobuf>=6.30.0 (test.yaml:20), no version of protobuf satisfies all of them; cy-llm therefore "
        "installs the worker in environment \"base\" and eng in environment \"engine\", each with its own lock");
  REQUIRE(plan->environments.size() == 2);
  CHECK(plan->environments[1].requirements[0].text == "eng==2.0");  // {version} expanded
  CHECK(resolve::lock_path_for("out/requirements.lock", *plan, plan->environments[0]) == "out/requirements.base.lock");
  CHECK(resolve::lock_path_for("out/requirements.lock", *plan, plan->environments[1]) == "out/requirements.lock");
  CHECK(resolve::lock_path_for("lock", *plan, plan->environments[0]) == "lock.base");
}

TEST_CASE("user constraints apply where the package appears and can be the clash") {
  auto reg = make_registry("[\"a<2\"]", "[\"b==3.0\"]");
  resolve::ResolveOptions o;
  o.engine = "eng";
  o.constraints = {"b<3", "zzz>1"};
  auto plan = resolve::resolve(reg, cpu_host(), o);
  REQUIRE_FALSE(plan.ok());
  CHECK(plan.error().code() == Errc::Conflict);
  CHECK(plan.error().message().find("your --constraint requires b<3 (--constraint)") != std::string::npos);
  o.constraints = {"b>=2", "zzz>1"};
  plan = resolve::resolve(reg, cpu_host(), o);
  REQUIRE(plan.ok());
  bool unused = false;
  for (const auto& w : plan->warnings) unused = unused || w.code == "resolve.unused_constraint";
  CHECK(unused);
  o.constraints = {"b<<3"};
  CHECK(resolve::resolve(reg, cpu_host(), o).error().code() == Errc::BadSpecifier);
}

TEST_CASE("ranking: native first without an accelerator; bad options are refused") {
  auto reg = make_registry("[]", "[]");
  auto cands = resolve::list_candidates(reg, cpu_host(), {});
  REQUIRE(cands.ok());
  REQUIRE(cands->size() == 3);
  CHECK((*cands)[0].engine == "nat");
  CHECK((*cands)[1].engine == "eng");
  CHECK((*cands)[1].version == "1.0");  // the default version before newer ones
  CHECK((*cands)[2].version == "2.0");
  resolve::ResolveOptions o;
  o.engine = "nope";
  CHECK(resolve::list_candidates(reg, cpu_host(), o).error().message() ==
        "unknown engine \"nope\" (the registry has eng, nat)");
  o.engine = "eng";
  o.engine_version = "9.9";
  CHECK(resolve::list_candidates(reg, cpu_host(), o).error().code() == Errc::InvalidArgument);
  o = {};
  o.python = "three";
  CHECK(resolve::list_candidates(reg, cpu_host(), o).error().message() ==
        "target Python \"three\" is not of the form 3.X (e.g. 3.12)");
}

TEST_CASE("no candidate: every reason is listed") {
  auto reg = make_registry("[]", "[]");
  auto host = cpu_host();
  host.cpu.architecture = "riscv64";
  auto plan = resolve::resolve(reg, host, {});
  REQUIRE_FALSE(plan.ok());
  CHECK(plan.error().code() == Errc::NoCandidate);
  CHECK(plan.error().message().find("profile any runs on x86_64; the host is riscv64") != std::string::npos);
}

TEST_CASE("the lock carries indexes, pins and hashes") {
  auto reg = make_registry(
      "[]", "[\"eng=={version}\", {wheel: w}]",
      "wheels:\n  w:\n    url: https://example.invalid/w-1.0-py3-none-any.whl\n"
      "    sha256: 0000000000000000000000000000000000000000000000000000000000000001\n");
  resolve::ResolveOptions o;
  o.engine = "eng";
  auto plan = resolve::resolve(reg, cpu_host(), o);
  REQUIRE(plan.ok());
  std::string lock = resolve::to_lock(*plan, plan->environments[0], "cy-llm-resolve --lock x");
  CHECK(lock.find("# regenerate: cy-llm-resolve --lock x\n") != std::string::npos);
  CHECK(lock.find("--index-url https://pypi.org/simple\n") != std::string::npos);
  CHECK(lock.find("eng==1.0\n") != std::string::npos);
  CHECK(lock.find("w @ https://example.invalid/w-1.0-py3-none-any.whl \\\n    --hash=sha256:"
                  "0000000000000000000000000000000000000000000000000000000000000001\n") != std::string::npos);
  auto j = resolve::to_json(*plan);
  CHECK(j.begin().key() == "schema");
  CHECK(j["schema"] == "cy-llm.plan/v1");
  CHECK(j["engine"]["name"] == "eng");
}
