// Engine selection shared by cy-llm-run and cy-llm-serve: --engine and the settings of
// external engines (--plan, --venv, --engine-version, --registry, EngineConfig knobs,
// --upstream for "openai"), turned into an EngineFactory that knows every engine.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cyllm/engine.h"
#include "cyllm/external.h"
#include "cyllm/registry.h"

namespace cyllm::cli {

// `path` made absolute against the working directory ("" stays "").
std::string absolute(const std::string& path);

struct EngineFlags {
  std::string engine = "native";
  std::string engine_version;
  std::string plan;      // a cy-llm-resolve plan (file, or - for stdin)
  std::string venv;
  std::string registry;
  std::string work_dir;
  std::string served_model_name;
  double gpu_memory_utilization = 0;  // 0: the plan's or the engine's default
  std::uint32_t tensor_parallel_size = 0;
  std::uint32_t pipeline_parallel_size = 0;
  std::string quantization;
  std::vector<std::string> extra;  // KEY=VALUE
  double ready_timeout_s = 900;
  std::string upstream, upstream_key, upstream_ca;

  bool native() const { return engine == "native" || engine == "cpu"; }
};

// Adds --engine, --engine-version, --plan, --venv, --registry, --gpu-memory-utilization,
// --tensor-parallel-size, --pipeline-parallel-size, --quantization, --extra,
// --ready-timeout, --work-dir, --upstream, --upstream-key, --upstream-ca.
void add_engine_flags(CLI::App& app, EngineFlags& flags);

// What the flags resolve to: the factory (native + every external engine) and the config
// to load with. Keeps the registry alive for the engines.
struct EngineSetup {
  registry::Registry registry;
  external::ExternalSettings settings;
  engine::EngineFactory factory;
};

// Applies --plan (engine name, version and engine_config; flags given explicitly win),
// --extra and the knobs to `config` (config.engine_type is set), loads the registry when
// an external engine needs it, and checks the combination: util.usage naming the flag.
Result<void> apply_engine_flags(EngineFlags& flags, engine::EngineConfig& config, EngineSetup& setup);

}  // namespace cyllm::cli
