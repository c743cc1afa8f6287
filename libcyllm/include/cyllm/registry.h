// The dependency registry: which engines exist, on which hardware each engine version
// runs, and the exact Python requirements (or wheels) it needs there.
//
// Format (schema_version 1; JSON or YAML; schema in registry/schema/registry.v1.json):
//
//   schema_version: 1                      required in every file
//   hardware_profiles:                     name -> how a host is matched
//     nvidia_cc75_plus:
//       extends: nvidia                    optional single parent; its fields are inherited
//       vendor: nvidia                     nvidia | amd | ascend | cpu
//       min_compute_capability: "7.5"      NVIDIA "major.minor", both bounds inclusive
//       max_compute_capability: "12.1"
//       gfx_targets: [gfx90a, gfx942]      AMD: any of
//       ascend_socs: [ascend910b3]         Ascend: any of (lower-case SoC names) ...
//       ascend_soc_prefixes: [ascend910b]  ... or any of these prefixes
//       min_driver: "525.60.13"            dotted version of the vendor driver
//       cpu_isa: [avx2]                    all required
//       architectures: [x86_64, aarch64]   any of
//   engines:
//     vllm: {description, kind: python|native, tradeoff: "throughput", versions: [...],
//            default_version: "0.12.0"}
//   wheels:  name -> {url, sha256?, size_bytes?}
//   indexes: name -> {url, kind: pypi|pytorch|vendor}
//   variants: name -> {description?, kind: cuda|rocm|cann|cpu|none, min_driver?,
//                      min_driver_minor_compat?, min/max_compute_capability?, index?}
//   compatibility_matrix:                  list of rows
//     - hardware: nvidia_cc70_plus         profile ref
//       engine: vllm                       engine ref
//       engine_versions: ">=0.12.0,<0.14"  PEP 440 specifier set
//       requirements: ["vllm=={version}", "torch==2.9.0", {wheel: NAME},
//                      {requirement: "vllm==0.9.1", no_deps: true}]
//       python: ">=3.10,<3.14"             PEP 440 specifier set
//       min_driver: "570.26"               optional; else the variant's
//       indexes: [pytorch_cu128]           index refs
//       variant: cu128                     variant ref
//       verified: true                     false for facts not checked against a source
//       notes: "..."
//   launchers:                             list; how to start an engine's OpenAI server
//     - engine: vllm                       engine ref
//       engine_versions: ">=0.10.1"        PEP 440 set; ranges of one engine must not overlap
//       unsupported: "..."                 these versions cannot be launched (says why); or:
//       command: ["{venv_bin}/vllm", "serve", "{model}"]    argv templates
//       args: {max_model_len: ["--max-model-len", "{value}"],  EngineConfig field -> argv
//              kv_cache_dtype: {config: "kv_cache_config.dtype"}}  ... or config-file key
//       fixed_args: [...]   env: {NAME: template}   extra_config: flags | config | none
//       config_file: {path: "{work_dir}/x.yaml", format: json|yaml, content: TREE}
//       health_path: /health   api_base: /v1   oom_patterns: [...]
//       multinode: {head: [argv], worker: [argv], serve_args: [argv]}
//       verified: true   notes: "..."
//   base_environment: {description?, python?, requirements: [...]}   the worker's own stack
//   model_sizes: name -> {max_params_billion}                        buckets for presets
//   presets:                               list; (hardware, model_size, engine?) unique
//     - {hardware, model_size, engine?, gpu_memory_utilization?, max_model_len?,
//        quantization?, kv_cache_dtype?, tensor_parallel_size?}
//
// A registry may be split over several files (a directory: every *.yaml, *.yml and *.json,
// in name order). Named sections are merged; a name defined twice is an error naming both
// files. Lists (matrix rows, presets) are concatenated in file order.
//
// Design goals: every value remembers where it came from (file:line) so that the resolver
// can cite it; validation reports every problem at once, each as
// `FILE:LINE: KEY.PATH: message`; typed structs only, no JSON in the API.
// Non-goals: writing registries back; YAML anchors/tags beyond what yaml-cpp resolves.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cyllm/context.h"
#include "cyllm/error.h"

namespace cyllm::registry {

inline constexpr int kSchemaVersion = 1;

// Where a value was written. line is 1-based; 0 when unknown.
struct SourceLocation {
  std::string file;
  int line = 0;
  std::string to_string() const;  // "registry/entries/vllm.yaml:42"
};

// NVIDIA compute capability "major.minor".
struct ComputeCapability {
  int major = 0;
  int minor = 0;
  auto operator<=>(const ComputeCapability&) const = default;
  std::string to_string() const;  // "8.6"
};
// "8.6" -> {8, 6}; nullopt when not two non-negative integers joined by '.'.
std::optional<ComputeCapability> parse_compute_capability(std::string_view text);

// A hardware profile after `extends` is applied: unset fields are inherited from the
// parent chain. Empty lists / empty strings / nullopt mean "no constraint".
struct HardwareProfile {
  std::string name;
  std::string description;
  std::string extends;  // parent name as written, empty if none
  std::string vendor;   // nvidia | amd | ascend | cpu; empty = any
  std::optional<ComputeCapability> min_compute_capability;  // inclusive
  std::optional<ComputeCapability> max_compute_capability;  // inclusive
  std::vector<std::string> gfx_targets;          // any of
  std::vector<std::string> ascend_socs;          // any of, lower case
  std::vector<std::string> ascend_soc_prefixes;  // any of, lower case
  std::string min_driver;                        // dotted version
  std::vector<std::string> cpu_isa;              // all of
  std::vector<std::string> architectures;        // any of
  SourceLocation loc;
};

enum class EngineKind { Python, Native };
std::string_view to_string(EngineKind kind);  // "python", "native"

struct Engine {
  std::string name;
  std::string description;
  EngineKind kind = EngineKind::Python;
  std::string tradeoff;                 // short text for interactive choice: "throughput"
  int priority = 100;                   // lower is recommended first among engines that run
  std::vector<std::string> versions;    // known releases, as written (PEP 440)
  std::string default_version;          // one of versions
  SourceLocation loc;
};

struct Wheel {
  std::string name;
  std::string url;
  std::string sha256;                   // 64 lower-case hex digits, or empty
  std::optional<std::uint64_t> size_bytes;
  SourceLocation loc;
};

enum class IndexKind { Pypi, Pytorch, Vendor };
std::string_view to_string(IndexKind kind);  // "pypi", "pytorch", "vendor"

struct Index {
  std::string name;
  std::string url;
  IndexKind kind = IndexKind::Pypi;
  SourceLocation loc;
};

enum class VariantKind { Cuda, Rocm, Cann, Cpu, None };
std::string_view to_string(VariantKind kind);  // "cuda", "rocm", "cann", "cpu", "none"

// An accelerator build flavour (cu128, rocm6.3, cpu, ...) and what the host needs for it.
struct Variant {
  std::string name;
  std::string description;
  VariantKind kind = VariantKind::None;
  std::string min_driver;               // full feature set (CUDA Toolkit Table 3)
  std::string min_driver_minor_compat;  // minor-version compatibility (Table 2)
  std::optional<ComputeCapability> min_compute_capability;  // lowest SM compiled in
  std::optional<ComputeCapability> max_compute_capability;  // highest SM compiled in
  std::string index;                    // index ref, or empty
  SourceLocation loc;
};

// One entry of a requirement list: a PEP 508 string or a reference to a named wheel.
// Written as "text", {wheel: NAME}, or {requirement: "text", no_deps: true}. The literal
// `{version}` in a matrix row's requirement stands for the chosen engine version.
struct RequirementEntry {
  std::string requirement;  // PEP 508 text; empty when `wheel` is set
  std::string wheel;        // wheel ref; empty when `requirement` is set
  bool no_deps = false;     // install without its dependencies (pip --no-deps): another
                            // entry of the same row owns them (vllm under vllm-ascend)
  SourceLocation loc;
  bool is_wheel() const { return !wheel.empty(); }
};

struct MatrixRow {
  std::size_t index = 0;            // position in the merged matrix
  std::string key_path;             // "compatibility_matrix[3]" within its file
  std::string hardware;             // profile ref
  std::string engine;               // engine ref
  std::string engine_versions;      // PEP 440 specifier set
  std::vector<RequirementEntry> requirements;
  std::string python;               // PEP 440 specifier set; empty = any
  std::string min_driver;           // the row's own, else its variant's (see min_driver_loc)
  SourceLocation min_driver_loc;
  std::vector<std::string> indexes; // index refs, in priority order
  std::string variant;              // variant ref, or empty
  bool verified = false;
  std::string notes;
  SourceLocation loc;
};

struct BaseEnvironment {
  std::string description;
  std::string python;               // specifier set; empty = any
  std::vector<RequirementEntry> requirements;
  SourceLocation loc;               // line 0 when the registry has none
};

struct ModelSize {
  std::string name;
  double max_params_billion = 0;    // upper bound, inclusive
  SourceLocation loc;
};

struct Preset {
  std::string hardware;             // profile ref
  std::string model_size;           // model size ref
  std::string engine;               // engine ref, or empty = any engine
  std::optional<double> gpu_memory_utilization;  // (0, 1]
  std::optional<int> max_model_len;              // tokens
  std::string quantization;         // "fp8", "awq", ... or empty
  std::string kv_cache_dtype;       // "auto", "fp8", ... or empty
  std::optional<int> tensor_parallel_size;
  SourceLocation loc;
};

// A YAML/JSON value kept as a tree: the content template of a launcher's config file.
struct TemplateValue {
  enum class Kind { Null, Bool, Number, String, Seq, Map };
  Kind kind = Kind::Null;
  std::string text;                    // scalar as written ("true", "0.9", "{port}")
  std::vector<TemplateValue> items;    // Seq
  struct Entry;
  std::vector<Entry> entries;          // Map, in document order
};
struct TemplateValue::Entry {
  Entry(std::string k, TemplateValue v) : key(std::move(k)), value(std::move(v)) {}
  std::string key;
  TemplateValue value;
};

// How extra_config entries reach the engine: as `--key-with-dashes value` flags, as keys
// of the generated config file (dotted keys nest), or not at all (listed as ignored).
enum class ExtraConfigMode { Flags, Config, None };
std::string_view to_string(ExtraConfigMode mode);  // "flags", "config", "none"

// How one EngineConfig field is passed: argv templates using {value}, or a dotted key path
// of the config file ("kv_cache_config.dtype"). Only set (non-default) values are passed.
struct LauncherArg {
  std::string field;                  // host, port, served_model_name, max_model_len, ...
  std::vector<std::string> argv;      // empty when config_key is set
  std::string config_key;
};

struct LauncherConfigFile {
  std::string path;                   // template, e.g. "{work_dir}/config.json"
  std::string format;                 // "json" | "yaml"
  TemplateValue content;              // strings may hold {placeholders}; "{x}" alone keeps
                                      // x's type (number, list), "{x|default}" when unset
};

// The documented multi-node recipe (vLLM over Ray): start the head, join each worker, then
// serve on the head with serve_args appended.
struct LauncherMultinode {
  std::vector<std::string> head;
  std::vector<std::string> worker;
  std::vector<std::string> serve_args;
};

// One `launchers` entry: the command line, environment and config file that start engine
// `engine` at versions `engine_versions` (flags that changed between versions are separate
// entries, not code). Placeholders: see registry/README.md.
struct Launcher {
  std::size_t index = 0;              // position in the merged list
  std::string key_path;               // "launchers[2]" within its file
  std::string engine;                 // engine ref
  std::string engine_versions;        // PEP 440 specifier set
  std::string unsupported;            // non-empty: these versions cannot be launched; why
  std::vector<std::string> command;   // argv templates
  std::vector<LauncherArg> args;
  std::vector<std::string> fixed_args;
  std::map<std::string, std::string> env;
  ExtraConfigMode extra_config = ExtraConfigMode::None;
  std::optional<LauncherConfigFile> config_file;
  std::string health_path = "/health";
  std::string api_base = "/v1";
  std::vector<std::string> oom_patterns;
  std::optional<LauncherMultinode> multinode;
  bool verified = false;
  std::string notes;
  SourceLocation loc;
  const LauncherArg* find_arg(std::string_view field) const;
};

// The EngineConfig fields a launcher's `args` may name, and the placeholders its templates
// may use (both checked when loading).
const std::vector<std::string_view>& launcher_fields();
const std::vector<std::string_view>& launcher_placeholders();

// A loaded, validated registry. Immutable after load; safe to share between threads.
struct Registry {
  std::map<std::string, HardwareProfile> hardware_profiles;
  std::map<std::string, Engine> engines;
  std::map<std::string, Wheel> wheels;
  std::map<std::string, Index> indexes;
  std::map<std::string, Variant> variants;
  std::vector<MatrixRow> compatibility_matrix;
  BaseEnvironment base_environment;
  std::map<std::string, ModelSize> model_sizes;
  std::vector<Preset> presets;
  std::vector<Launcher> launchers;
  std::vector<std::string> files;   // the files it was loaded from, in load order

  const HardwareProfile* find_profile(std::string_view name) const;
  const Engine* find_engine(std::string_view name) const;
  const Wheel* find_wheel(std::string_view name) const;
  const Index* find_index(std::string_view name) const;
  const Variant* find_variant(std::string_view name) const;
  // Rows for one engine, in registry order.
  std::vector<const MatrixRow*> rows_for_engine(std::string_view engine) const;
  // The launcher whose engine_versions contain `version` (a PEP 440 version), or nullptr
  // (also for an unparsable version). Ranges of one engine never overlap after load.
  const Launcher* find_launcher(std::string_view engine, std::string_view version) const;
};

// One registry file's text. `name` is what errors cite; its extension picks the syntax
// (.json -> JSON, .yaml/.yml -> YAML; otherwise JSON if the text starts with '{').
struct SourceText {
  std::string name;
  std::string text;
};

// One problem found while loading.
struct Diagnostic {
  Errc code = Errc::RegistryInvalid;
  SourceLocation loc;
  std::string key_path;  // "compatibility_matrix[3].engine"; empty for syntax errors
  std::string message;
  std::string to_string() const;  // "FILE:LINE: KEY: message"
};

// Parses, merges and validates. On failure the Error's code is that of the first
// problem and its message lists every problem, one per line, in the form
// `FILE:LINE: KEY.PATH: message`. Never throws.
Result<Registry> load_registry_from_strings(const std::vector<SourceText>& sources);

// Same, but returns all diagnostics; `registry` is set only when there are none.
struct LoadOutcome {
  std::optional<Registry> registry;
  std::vector<Diagnostic> diagnostics;
};
LoadOutcome check_registry_sources(const std::vector<SourceText>& sources);

// Reads a registry file, or every *.yaml|*.yml|*.json file of a directory (in name order),
// through `fs`, then loads it as above. NotFound/Io when the path cannot be read;
// RegistryInvalid for an empty directory. Files are cited as `path/name`.
Result<Registry> load_registry(const Filesystem& fs, std::string_view path);

// The registry shipped in registry/entries/, compiled into the library. Files are cited as
// "registry/entries/<name>". Never fails in a released build (a test checks it loads).
Result<Registry> load_builtin_registry();
// The embedded texts, for tools that want to print or overlay them.
const std::vector<SourceText>& builtin_registry_sources();

}  // namespace cyllm::registry
