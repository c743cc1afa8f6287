#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "cyllm/registry.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::registry;

namespace {

std::string fixture(const std::string& name) {
  return (test::fixtures_dir() / "registries" / name).string();
}

Result<Registry> load_fixture(const std::string& name) {
  RootedFilesystem fs("");
  return load_registry(fs, fixture(name));
}

// The error message for a broken fixture, with the fixture directory stripped so that
// expectations read like `bad.yaml:3: key: message`.
std::string error_of(const std::string& name) {
  auto r = load_fixture(name);
  REQUIRE_FALSE(r.ok());
  std::string msg = r.error().message();
  std::string dir = fixture("");
  for (auto pos = msg.find(dir); pos != std::string::npos; pos = msg.find(dir)) msg.erase(pos, dir.size());
  return msg;
}

const MatrixRow* row_for(const Registry& reg, const std::string& engine, const std::string& hw,
                         const std::string& versions) {
  for (const auto& r : reg.compatibility_matrix)
    if (r.engine == engine && r.hardware == hw && r.engine_versions == versions) return &r;
  return nullptr;
}

bool has_requirement(const MatrixRow& row, const std::string& text) {
  return std::any_of(row.requirements.begin(), row.requirements.end(),
                     [&](const RequirementEntry& e) { return e.requirement == text; });
}

}  // namespace

// ---- the shipped registry ----------------------------------------------------------------

TEST_CASE("the built-in registry loads without problems") {
  auto r = load_builtin_registry();
  if (!r.ok()) FAIL(r.error().to_string());
  const Registry& reg = *r;
  CHECK(reg.files.size() == builtin_registry_sources().size());
  CHECK(reg.engines.size() == 5);
  for (const char* e : {"vllm", "tensorrt_llm", "vllm-ascend", "mindie", "cy-llm"})
    CHECK_MESSAGE(reg.find_engine(e) != nullptr, e);
  CHECK(reg.compatibility_matrix.size() >= 40);
}

TEST_CASE("every file of registry/entries is embedded, and the directory loads the same") {
  auto dir = test::source_root() / "registry" / "entries";
  std::vector<std::string> on_disk;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    on_disk.push_back("registry/entries/" + e.path().filename().string());
  std::sort(on_disk.begin(), on_disk.end());
  std::vector<std::string> embedded;
  for (const auto& s : builtin_registry_sources()) embedded.push_back(s.name);
  CHECK(on_disk == embedded);

  RootedFilesystem fs("");
  auto from_dir = load_registry(fs, dir.string());
  REQUIRE(from_dir.ok());
  CHECK(from_dir->compatibility_matrix.size() == load_builtin_registry()->compatibility_matrix.size());
}

TEST_CASE("shipped facts: vLLM") {
  auto reg = load_builtin_registry();
  REQUIRE(reg.ok());
  const Engine* vllm = reg->find_engine("vllm");
  REQUIRE(vllm != nullptr);
  CHECK(vllm->kind == EngineKind::Python);
  CHECK(vllm->default_version == "0.12.0");
  CHECK(std::count(vllm->versions.begin(), vllm->versions.end(), "0.12.0") == 1);
  CHECK(std::count(vllm->versions.begin(), vllm->versions.end(), "0.6.0") == 1);
  CHECK(std::count(vllm->versions.begin(), vllm->versions.end(), "0.29.0") == 1);
  CHECK(std::count(vllm->versions.begin(), vllm->versions.end(), "0.16.0") == 0);  // unresolved

  const MatrixRow* r012 = row_for(*reg, "vllm", "nvidia_cc70_plus", ">=0.12.0,<=0.13.0");
  REQUIRE(r012 != nullptr);
  CHECK(has_requirement(*r012, "torch==2.9.0"));
  CHECK(has_requirement(*r012, "vllm=={version}"));
  CHECK(r012->variant == "cu128");
  CHECK(r012->python == ">=3.10,<3.14");
  CHECK(r012->min_driver == "570.26");  // from the cu128 variant
  CHECK(r012->min_driver_loc.file == "registry/entries/hardware.yaml");
  CHECK_FALSE(r012->verified);         // torch pin is [I] in the fact sheet
  CHECK(r012->loc.file == "registry/entries/vllm.yaml");
  CHECK(r012->loc.line > 0);

  const HardwareProfile* cc70 = reg->find_profile("nvidia_cc70_plus");
  REQUIRE(cc70 != nullptr);
  CHECK(cc70->vendor == "nvidia");  // inherited through `extends: nvidia`
  REQUIRE(cc70->min_compute_capability.has_value());
  CHECK(*cc70->min_compute_capability == ComputeCapability{7, 0});

  // The protobuf-6 facts: base environment < 6, vLLM 0.14 >= 6.30.
  const MatrixRow* r014 = row_for(*reg, "vllm", "nvidia_cc70_plus", ">=0.14.0,<=0.14.1");
  REQUIRE(r014 != nullptr);
  CHECK(has_requirement(*r014, "protobuf>=6.30.0"));
  CHECK(has_requirement(*r014, "torch==2.9.1"));
  CHECK(r014->verified);
  bool base_pb = false;
  for (const auto& e : reg->base_environment.requirements)
    base_pb |= e.requirement == "protobuf>=4.21.6,<6";
  CHECK(base_pb);

  // CUDA 13 builds need CC >= 7.5.
  const MatrixRow* r022 = row_for(*reg, "vllm", "nvidia_cc75_plus", ">=0.22.0,<=0.26.0");
  REQUIRE(r022 != nullptr);
  CHECK(r022->variant == "cu130");
  CHECK(r022->min_driver == "580.65.06");
}

TEST_CASE("shipped facts: variants, drivers, other engines") {
  auto reg = load_builtin_registry();
  REQUIRE(reg.ok());
  auto driver = [&](const char* v) { return reg->find_variant(v) ? reg->find_variant(v)->min_driver : ""; };
  CHECK(driver("cu121") == "530.30.02");
  CHECK(driver("cu124") == "550.54.14");
  CHECK(driver("cu126") == "560.28.03");
  CHECK(driver("cu128") == "570.26");
  CHECK(driver("cu129") == "575.51.03");
  CHECK(driver("cu130") == "580.65.06");
  CHECK(reg->find_variant("cu128")->min_driver_minor_compat == "525.60.13");
  CHECK(*reg->find_variant("cu130")->min_compute_capability == ComputeCapability{7, 5});
  CHECK(*reg->find_variant("cu126")->max_compute_capability == ComputeCapability{9, 0});
  CHECK(reg->find_index("pytorch_cu128")->url == "https://download.pytorch.org/whl/cu128");
  CHECK(reg->find_index("pytorch_cu128")->kind == IndexKind::Pytorch);

  CHECK(reg->rows_for_engine("tensorrt_llm").size() >= 3);
  const MatrixRow* trt12 = row_for(*reg, "tensorrt_llm", "nvidia_cc80_plus", "==1.2.0");
  REQUIRE(trt12 != nullptr);
  CHECK(trt12->min_driver == "590.44.01");  // row override (CUDA 13.1) beats the variant

  const MatrixRow* va = row_for(*reg, "vllm-ascend", "ascend_910", "==0.23.0");
  REQUIRE(va != nullptr);
  CHECK(has_requirement(*va, "torch-npu==2.10.0.post4"));
  CHECK(va->variant == "cann-9.1.0");
  REQUIRE_FALSE(va->requirements.empty());
  CHECK(va->requirements[0].requirement == "vllm==0.23.0");
  CHECK(va->requirements[0].no_deps);
  const HardwareProfile* a910 = reg->find_profile("ascend_910");
  CHECK(a910->vendor == "ascend");
  CHECK(std::count(a910->ascend_soc_prefixes.begin(), a910->ascend_soc_prefixes.end(), "ascend910b") == 1);
  CHECK(row_for(*reg, "mindie", "ascend_mindie", "==3.0.0") != nullptr);

  bool rocm = false;
  for (const auto* r : reg->rows_for_engine("vllm")) rocm |= reg->find_profile(r->hardware)->vendor == "amd";
  CHECK(rocm);
  const HardwareProfile* cpu = reg->find_profile("cpu_x86_avx2");
  CHECK(cpu->cpu_isa == std::vector<std::string>{"avx2"});

  const Engine* native = reg->find_engine("cy-llm");
  REQUIRE(native != nullptr);
  CHECK(native->kind == EngineKind::Native);
  for (const auto* r : reg->rows_for_engine("cy-llm")) CHECK(r->requirements.empty());
  CHECK(reg->rows_for_engine("cy-llm").size() == 2);

  // Unverified facts are marked.
  std::size_t unverified = 0;
  for (const auto& r : reg->compatibility_matrix) unverified += r.verified ? 0 : 1;
  CHECK(unverified > 0);
  CHECK(unverified < reg->compatibility_matrix.size());

  CHECK(reg->presets.size() >= 5);
  CHECK(reg->model_sizes.count("small") == 1);
}

// ---- valid inputs ------------------------------------------------------------------------

TEST_CASE("valid YAML and JSON fixtures load, with lines") {
  auto y = load_fixture("valid.yaml");
  if (!y.ok()) FAIL(y.error().to_string());
  CHECK(y->find_profile("ampere")->vendor == "nvidia");
  REQUIRE(y->compatibility_matrix.size() == 1);
  const auto& row = y->compatibility_matrix[0];
  CHECK(row.loc.line == 19);
  REQUIRE(row.requirements.size() == 3);
  CHECK(row.requirements[2].wheel == "torch-2.1.2+cu121");
  CHECK(y->find_wheel("torch-2.1.2+cu121")->size_bytes == 2200000000u);
  CHECK(y->find_engine("vllm")->loc.line == 9);

  auto j = load_fixture("valid.json");
  if (!j.ok()) FAIL(j.error().to_string());
  CHECK(j->find_profile("ascend_910b")->ascend_socs == std::vector<std::string>{"ascend910b3"});
  CHECK(j->find_profile("ascend_910b")->loc.line == 5);
  CHECK(j->find_engine("vllm")->loc.line == 8);
  REQUIRE(j->compatibility_matrix.size() == 1);
  CHECK(j->compatibility_matrix[0].loc.line == 11);
  CHECK(j->compatibility_matrix[0].requirements[1].loc.line == 15);
}

TEST_CASE("load_registry_from_strings picks the syntax by name or content") {
  const char* json = R"({"schema_version": 1, "engines": {"e": {"kind": "native", "versions": ["1.0"], "default_version": "1.0"}}})";
  auto a = load_registry_from_strings({{"x.json", json}});
  CHECK(a.ok());
  auto b = load_registry_from_strings({{"inline", json}});
  CHECK(b.ok());
  auto c = load_registry_from_strings({{"x.yaml", "schema_version: 1\n"}});
  CHECK(c.ok());
  auto none = load_registry_from_strings({});
  CHECK_FALSE(none.ok());
}

// ---- broken registries: each names FILE:LINE: KEY ------------------------------------------

TEST_CASE("bad YAML syntax") {
  auto r = load_fixture("bad_syntax.yaml");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::RegistryParse);
  std::string msg = error_of("bad_syntax.yaml");
  CHECK(msg.rfind("bad_syntax.yaml:", 0) == 0);
  CHECK(msg.find("YAML: ") != std::string::npos);
  // yaml-cpp reports the unterminated flow sequence where it gives up (line 6 or 7).
  bool near = msg.find("bad_syntax.yaml:6:") == 0 || msg.find("bad_syntax.yaml:7:") == 0 ||
              msg.find("bad_syntax.yaml:5:") == 0;
  CHECK_MESSAGE(near, msg);
}

TEST_CASE("bad JSON syntax") {
  auto r = load_fixture("bad_syntax.json");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::RegistryParse);
  std::string msg = error_of("bad_syntax.json");
  CHECK_MESSAGE(msg.rfind("bad_syntax.json:4: JSON: syntax error while parsing object", 0) == 0, msg);
}

TEST_CASE("unknown engine reference") {
  auto r = load_fixture("unknown_engine.yaml");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::RegistryUnknownRef);
  CHECK(error_of("unknown_engine.yaml") ==
        "unknown_engine.yaml:11: compatibility_matrix[1].engine: unknown engine \"vlm\"");
}

TEST_CASE("unknown wheel reference") {
  CHECK(error_of("unknown_wheel.yaml") ==
        "unknown_wheel.yaml:12: compatibility_matrix[0].requirements[1].wheel: unknown wheel "
        "\"torch-9.9.9\"");
}

TEST_CASE("extends cycle") {
  auto r = load_fixture("extends_cycle.yaml");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::RegistryCycle);
  CHECK(error_of("extends_cycle.yaml") ==
        "extends_cycle.yaml:4: hardware_profiles.a.extends: extends cycle: a -> c -> b -> a");
}

TEST_CASE("malformed specifier") {
  // The reason after the quoted value is cyllm::packaging's wording.
  std::string msg = error_of("bad_specifier.yaml");
  CHECK_MESSAGE(msg.rfind("bad_specifier.yaml:9: compatibility_matrix[0].engine_versions: bad version "
                          "specifier \"=>0.12\": ", 0) == 0, msg);
  CHECK(msg.find('\n') == std::string::npos);
}

TEST_CASE("an engine_versions range that matches no listed version") {
  const char* text =
      "schema_version: 1\n"
      "hardware_profiles: {cpu: {cpu_isa: [avx2]}}\n"
      "engines: {e: {kind: native, versions: [0.1.0, 0.2.0rc1], default_version: 0.1.0}}\n"
      "compatibility_matrix:\n"
      "  - {hardware: cpu, engine: e, engine_versions: \">=0.2.0rc1\"}\n"
      "  - {hardware: cpu, engine: e, engine_versions: \">=1.0\"}\n";
  auto r = load_registry_from_strings({{"r.yaml", text}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message() ==
        "r.yaml:6: compatibility_matrix[1].engine_versions: \">=1.0\" matches none of the "
        "versions of engine \"e\"");
}

TEST_CASE("wrong type, with JSON line numbers") {
  CHECK(error_of("wrong_type.json") ==
        "wrong_type.json:6: engines.vllm.versions: expected a list of strings, found a string "
        "\"0.12.0\"");
}

TEST_CASE("unknown key") {
  std::string msg = error_of("unknown_key.yaml");
  CHECK(msg.rfind("unknown_key.yaml:7: engines.vllm.homepage: unknown key \"homepage\" (expected one of: ", 0) == 0);
}

TEST_CASE("unsupported schema_version") {
  auto r = load_fixture("schema_version.yaml");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::RegistrySchemaVersion);
  CHECK(error_of("schema_version.yaml") ==
        "schema_version.yaml:2: schema_version: unsupported schema_version \"2\" (this build reads 1)");
  auto missing = load_registry_from_strings({{"m.yaml", "engines: {}\n"}});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code() == Errc::RegistrySchemaVersion);
}

TEST_CASE("duplicate names across two files of a directory name both files") {
  auto r = load_fixture("duplicate_dir");
  REQUIRE_FALSE(r.ok());
  CHECK(error_of("duplicate_dir") ==
        "duplicate_dir/b.yaml:5: engines.vllm: engine \"vllm\" is defined twice (also at "
        "duplicate_dir/a.yaml:3)");
}

TEST_CASE("every problem is reported, one per line, in file order") {
  std::string msg = error_of("many_problems.yaml");
  std::vector<std::string> lines;
  for (std::size_t pos = 0; pos <= msg.size();) {
    auto nl = msg.find('\n', pos);
    if (nl == std::string::npos) nl = msg.size();
    lines.push_back(msg.substr(pos, nl - pos));
    pos = nl + 1;
  }
  const std::vector<std::string> expected = {
      "many_problems.yaml:3: hardware_profiles.nvidia.min_compute_capability: bad compute "
      "capability \"eight\" (expected \"major.minor\", e.g. \"8.0\")",
      "many_problems.yaml:5: engines.vllm.default_version: default version \"0.13.0\" is not in "
      "versions",
      "many_problems.yaml:7: compatibility_matrix[0].hardware: unknown hardware profile \"nvidai\"",
      "many_problems.yaml:10: compatibility_matrix[0].requirements[0]: bad requirement "
      "\"vllm>>0.12\": ",
      "many_problems.yaml:11: compatibility_matrix[0].verified: expected true or false, found a "
      "string \"yes please\"",
      "many_problems.yaml:13: presets[0].gpu_memory_utilization: must be in (0, 1], found 1.5",
      "many_problems.yaml:13: presets[0].model_size: unknown model size \"huge\"",
  };
  REQUIRE(lines.size() == expected.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    // Line 10's reason is cyllm::packaging's wording: compare up to the quoted value.
    if (expected[i].back() == ' ') CHECK(lines[i].rfind(expected[i], 0) == 0);
    else CHECK(lines[i] == expected[i]);
  }
}

TEST_CASE("missing files and empty directories") {
  RootedFilesystem fs("");
  auto missing = load_registry(fs, fixture("does-not-exist.yaml"));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code() == Errc::NotFound);
  test::TempDir tmp;
  auto empty = load_registry(fs, tmp.path().string());
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().code() == Errc::RegistryInvalid);
}

TEST_CASE("hostile input never throws") {
  std::string deep(10000, '[');
  for (const char* name : {"a.json", "a.yaml"}) {
    CHECK_FALSE(load_registry_from_strings({{name, deep}}).ok());
    CHECK_FALSE(load_registry_from_strings({{name, std::string("\0\xff\xfe", 3)}}).ok());
  }
  CHECK_FALSE(load_registry_from_strings({{"a.yaml", "a: &x [1]\nb: *x\nc: !!binary zz\n"}}).ok());
  CHECK_FALSE(load_registry_from_strings({{"a.yaml", "schema_version: 1\nschema_version: 1\n"}}).ok());
  // yaml-cpp's LoadAll looped forever on this (found by fuzzing); it must simply fail.
  RootedFilesystem fs("");
  auto hang = fs.read_file(fixture("loadall_hang.txt"));
  REQUIRE(hang.ok());
  CHECK_FALSE(load_registry_from_strings({{"h.yaml", *hang}}).ok());
  auto two = load_registry_from_strings({{"two.yaml", "# c\nschema_version: 1\n---\nschema_version: 1\n"}});
  REQUIRE_FALSE(two.ok());
  CHECK(two.error().message() == "two.yaml:3: YAML: more than one YAML document in the file");
  CHECK(load_registry_from_strings({{"one.yaml", "---\nschema_version: 1\n"}}).ok());
}

TEST_CASE("the JSON Schema covers the same top-level sections as the loader") {
  RootedFilesystem fs("");
  auto text = fs.read_file((test::source_root() / "registry" / "schema" / "registry.v1.json").string());
  REQUIRE(text.ok());
  auto schema = nlohmann::json::parse(*text, nullptr, false);
  REQUIRE_FALSE(schema.is_discarded());
  std::vector<std::string> keys;
  for (const auto& [k, v] : schema["properties"].items()) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  const std::vector<std::string> expected = {
      "base_environment", "compatibility_matrix", "engines", "hardware_profiles", "indexes",
      "launchers", "model_sizes", "presets", "schema_version", "variants", "wheels"};
  CHECK(keys == expected);
  CHECK(schema["properties"]["schema_version"]["const"] == kSchemaVersion);
}

// ---- launchers -----------------------------------------------------------------------------

namespace {

const char* kLauncherEngines = R"(schema_version: 1
engines:
  vllm: {kind: python, versions: ["0.9.0", "0.10.0", "0.11.0"], default_version: "0.11.0"}
  cy-llm: {kind: native, versions: ["1.0"], default_version: "1.0"}
)";

// Loads kLauncherEngines plus `launchers` (a second file, l.yaml); returns the error text.
std::string launcher_errors(const std::string& launchers) {
  auto r = load_registry_from_strings({{"e.yaml", kLauncherEngines}, {"l.yaml", "schema_version: 1\n" + launchers}});
  REQUIRE_FALSE(r.ok());
  return r.error().message();
}

}  // namespace

TEST_CASE("the built-in launchers: every external engine version has one") {
  auto r = load_builtin_registry();
  REQUIRE(r.ok());
  for (const char* engine : {"vllm", "vllm-ascend", "tensorrt_llm", "mindie"}) {
    const Engine* e = r->find_engine(engine);
    REQUIRE(e != nullptr);
    for (const auto& v : e->versions) CHECK_MESSAGE(r->find_launcher(engine, v) != nullptr, engine << " " << v);
  }
  const Launcher* old = r->find_launcher("vllm", "0.10.0");
  const Launcher* now = r->find_launcher("vllm", "0.10.1.1");
  REQUIRE(old != nullptr);
  REQUIRE(now != nullptr);
  CHECK(old != now);
  CHECK(old->fixed_args == std::vector<std::string>{"--disable-log-requests"});
  CHECK(now->fixed_args.empty());
  CHECK(old->find_arg("max_model_len")->argv == std::vector<std::string>{"--max-model-len", "{value}"});
  REQUIRE(old->multinode.has_value());
  CHECK(old->multinode->serve_args == std::vector<std::string>{"--distributed-executor-backend", "ray"});
  const Launcher* trt = r->find_launcher("tensorrt_llm", "0.12.0");
  REQUIRE(trt != nullptr);
  CHECK_FALSE(trt->unsupported.empty());
  const Launcher* trt1 = r->find_launcher("tensorrt_llm", "1.2.0");
  REQUIRE(trt1 != nullptr);
  REQUIRE(trt1->config_file.has_value());
  CHECK(trt1->config_file->format == "yaml");
  CHECK(trt1->find_arg("kv_cache_dtype")->config_key == "kv_cache_config.dtype");
  CHECK(trt1->extra_config == ExtraConfigMode::Config);
  CHECK(r->find_launcher("vllm", "not a version") == nullptr);
  CHECK(r->find_launcher("nope", "0.12.0") == nullptr);
}

TEST_CASE("a minimal launcher loads, with its source line") {
  auto r = load_registry_from_strings(
      {{"e.yaml", kLauncherEngines},
       {"l.yaml", "schema_version: 1\nlaunchers:\n  - engine: vllm\n    engine_versions: \">=0.10\"\n"
                  "    command: [\"{venv_bin}/vllm\", serve, \"{model}\"]\n"
                  "    args: {port: [--port, \"{value}\"]}\n    extra_config: flags\n"}});
  if (!r.ok()) FAIL(r.error().to_string());
  REQUIRE(r->launchers.size() == 1);
  const Launcher& l = r->launchers[0];
  CHECK(l.loc.to_string() == "l.yaml:3");
  CHECK(l.command == std::vector<std::string>{"{venv_bin}/vllm", "serve", "{model}"});
  CHECK(l.health_path == "/health");
  CHECK(r->find_launcher("vllm", "0.11.0") == &l);
  CHECK(r->find_launcher("vllm", "0.9.0") == nullptr);
}

TEST_CASE("launcher validation: every problem, with file, line and key") {
  CHECK(launcher_errors("launchers:\n  - engine: vlm\n    engine_versions: \">=0.1\"\n    command: [x]\n") ==
        "l.yaml:3: launchers[0].engine: unknown engine \"vlm\"");
  CHECK(launcher_errors("launchers:\n  - engine: vllm\n    engine_versions: \"=>0.1\"\n    command: [x]\n")
            .rfind("l.yaml:4: launchers[0].engine_versions: bad version specifier \"=>0.1\": ", 0) == 0);
  CHECK(launcher_errors("launchers:\n  - engine: vllm\n    engine_versions: \">=5\"\n    command: [x]\n") ==
        "l.yaml:4: launchers[0].engine_versions: \">=5\" matches none of the versions of engine \"vllm\"");
  CHECK(launcher_errors("launchers:\n  - engine: vllm\n    engine_versions: \">=0.9\"\n    command: [x]\n"
                        "  - engine: vllm\n    engine_versions: \">=0.10,<0.12\"\n    command: [y]\n") ==
        "l.yaml:7: launchers[1].engine_versions: \">=0.10,<0.12\" overlaps the launcher at l.yaml:3 "
        "(\">=0.9\"): both match vllm 0.10.0");
  CHECK(launcher_errors("launchers:\n  - engine: vllm\n    engine_versions: \">=0.9\"\n") ==
        "l.yaml:3: launchers[0].command: a launcher needs a command (or `unsupported: REASON`)");
  CHECK(launcher_errors("launchers:\n  - engine: cy-llm\n    engine_versions: \">=1\"\n    command: [x]\n") ==
        "l.yaml:3: launchers[0].engine: engine \"cy-llm\" is native: it is built in and has no launcher");
  std::string placeholders = launcher_errors(
      "launchers:\n  - engine: vllm\n    engine_versions: \">=0.9\"\n    command: [\"{modle}\"]\n"
      "    args: {max_len: [--x, \"{value}\"], port: 8}\n    extra_config: yes\n");
  CHECK(placeholders.find("l.yaml:5: launchers[0].command[0]: unknown placeholder \"{modle}\" (expected one of: host, ") !=
        std::string::npos);
  CHECK(placeholders.find("l.yaml:6: launchers[0].args.max_len: unknown config field \"max_len\" (expected one of: host, ") !=
        std::string::npos);
  CHECK(placeholders.find("l.yaml:6: launchers[0].args.port: expected an argv template list or {config: KEY.PATH}, "
                          "found a number \"8\"") != std::string::npos);
  CHECK(placeholders.find("l.yaml:7: launchers[0].extra_config: unknown extra_config \"yes\" (expected one of: "
                          "flags, config, none)") != std::string::npos);
  CHECK(launcher_errors("launchers:\n  - engine: vllm\n    engine_versions: \">=0.9\"\n    command: [x]\n"
                        "    args: {kv_cache_dtype: {config: a.b}}\n    health_path: health\n") ==
        "l.yaml:3: launchers[0].args.kv_cache_dtype: maps to config key \"a.b\" but the launcher has no config_file\n"
        "l.yaml:7: launchers[0].health_path: expected a path starting with \"/\", found \"health\"");
  CHECK(launcher_errors("launchers:\n  - engine: vllm\n    engine_versions: \">=0.9\"\n    command: [x]\n"
                        "    config_file: {path: \"{work_dir}/c.toml\", format: toml, content: [1]}\n") ==
        "l.yaml:6: launchers[0].config_file.format: unknown format \"toml\" (expected one of: json, yaml)\n"
        "l.yaml:6: launchers[0].config_file.content: expected a mapping, found a list");
}
