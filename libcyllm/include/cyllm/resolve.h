// Resolution: given a HardwareProfile and a Registry, which engines and exact versions run
// on the host, why the others do not, and the requirement sets (environments) to install.
//
// Design goals: every decision carries a reason that quotes both sides and cites the
// registry line it came from; the same inputs give the same plan byte for byte; conflicts
// between the worker's base stack and an engine row are explained like uv does (which
// requirement from which source clashes with which) and resolved, where possible, by
// isolation: a "base" and an "engine" environment, each with its own lock.
// Non-goals: resolving transitive dependencies from package indexes (pip does that at
// install time against the pins we emit); the registry rows carry the pins that matter.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cyllm/detect.h"
#include "cyllm/error.h"
#include "cyllm/registry.h"
#include "cyllm/wheel.h"

namespace cyllm::resolve {

inline constexpr const char* kPlanSchema = "cy-llm.plan/v1";

struct ResolveOptions {
  std::string engine;                    // only this engine (empty = all)
  std::string engine_version;            // only this version (needs engine)
  std::vector<std::string> constraints;  // extra PEP 508 requirements (--constraint)
  std::string python = "3.12";           // the target interpreter, "3.X"
  std::optional<int> glibc_minor;        // target glibc 2.X; nullopt = not checked
  bool isolate = false;                  // always give base and engine separate environments
  bool single_env = false;               // never split: a base/engine clash is an error
  std::optional<double> model_params_billion;  // picks the preset's model-size bucket
};

// One (engine, version) and whether it runs here.
struct Candidate {
  std::string engine;
  std::string version;
  std::string variant;                   // "cu128", "cpu", ... or ""
  std::string tradeoff;                  // the engine's trade-off text
  bool viable = false;
  bool verified = false;                 // the matched row is verified against a source
  bool accelerated = false;              // uses the host's accelerator (not a cpu row)
  bool is_default = false;               // the engine's default_version
  const registry::MatrixRow* row = nullptr;  // the row that matched (viable) or nullptr
  std::vector<std::string> reasons;      // why not, one per row considered
};

struct PlannedRequirement {
  std::string name;       // PEP 503 normalised
  std::string text;       // as it goes into the lock: "torch==2.9.0", "x @ https://...whl"
  std::string source;     // "registry/entries/vllm.yaml:24", "--constraint", ...
  std::string sha256;     // known hash, or ""
  bool no_deps = false;
};

struct PlannedIndex {
  std::string name;
  std::string url;
  std::string kind;       // pypi | pytorch | vendor
};

struct Environment {
  std::string name;       // "default", or "base" and "engine" when isolated
  std::string python;     // specifier set the interpreter must satisfy
  std::vector<PlannedRequirement> requirements;
  std::vector<PlannedIndex> indexes;  // first is the primary index
};

// A package that the sources ask for in ways that cannot all hold.
struct Conflict {
  std::string package;                               // normalised name
  std::vector<std::pair<std::string, std::string>> sides;  // (requirement, source)
  std::string explanation;                           // one paragraph, uv-style
};

// Seed 4.2 EngineConfig, filled from the matching performance preset.
struct EngineConfig {
  std::string engine_type;
  std::string model_id;
  int max_model_len = 8192;
  double gpu_memory_utilization = 0.90;
  std::string quantization;
  std::string kv_cache_dtype;
  int tensor_parallel_size = 1;
  std::string preset_source;  // registry line of the preset, "" when defaults
};

struct Warning {
  std::string code;
  std::string message;
};

struct Plan {
  detect::HardwareProfile host;
  wheel::TargetEnvironment target;
  std::vector<Candidate> candidates;   // viable first, best first; then rejected
  std::optional<std::size_t> chosen;   // index into candidates
  std::vector<Environment> environments;
  std::vector<Conflict> conflicts;     // clashes that isolation resolved
  EngineConfig engine_config;
  std::vector<Warning> warnings;
  std::vector<std::string> registry_files;
};

// Every (engine, version) of the registry, ranked: viable ones first (accelerated before
// CPU; on a CPU-only host native engines first; the engine's default version first, then
// newest), then the rejected ones with their reasons. Errors only for bad options
// (unknown --engine, bad --constraint): InvalidArgument / BadRequirement.
Result<std::vector<Candidate>> list_candidates(const registry::Registry& reg,
                                               const detect::HardwareProfile& host,
                                               const ResolveOptions& options);

// The plan for one viable candidate (usually list_candidates(...)[0]). Fails with
// Errc::Conflict when the requirements cannot hold even in separate environments (e.g.
// a --constraint against the engine row), with the explanation as message.
Result<Plan> make_plan(const registry::Registry& reg, const detect::HardwareProfile& host,
                       const ResolveOptions& options, std::vector<Candidate> candidates,
                       std::size_t chosen);

// Convenience: list_candidates, then make_plan with the first viable candidate, or
// Errc::NoCandidate listing why each engine was rejected.
Result<Plan> resolve(const registry::Registry& reg, const detect::HardwareProfile& host,
                     const ResolveOptions& options);

nlohmann::ordered_json to_json(const Plan& plan);

// A pip requirements file for one environment, with a header saying how it was produced;
// `--hash=sha256:` where known, `--index-url`/`--extra-index-url` lines, `name @ url` for
// wheels. `command` is the command line to regenerate it.
std::string to_lock(const Plan& plan, const Environment& env, const std::string& command);

// The lock file name of an environment: FILE for a single environment; with two,
// FILE for "engine" and FILE with ".base" before its extension for "base".
std::string lock_path_for(const std::string& lock_path, const Plan& plan, const Environment& env);

// The full reasoning table (--explain).
std::string explain(const Plan& plan);

}  // namespace cyllm::resolve
