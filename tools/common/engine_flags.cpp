// --engine and friends for cy-llm-run and cy-llm-serve.
#include "common/engine_flags.h"

#include <unistd.h>

#include <fstream>
#include <iostream>
#include <iterator>

#include "common/cli.h"

namespace cyllm::cli {
namespace {

Error usage(std::string msg) { return Error(Errc::Usage, std::move(msg)); }

Result<std::string> read_plan(const std::string& path) {
  if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  std::ifstream f(path, std::ios::binary);
  if (!f) return Error(Errc::NotFound, "cannot read the plan \"" + path + "\"");
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// With several plan environments, cy-llm-fetch --install puts each venv in --venv/<name>;
// the engine's is the one that is not the worker's "base".
std::string engine_venv(const std::string& plan_text, const std::string& venv) {
  auto j = nlohmann::json::parse(plan_text, nullptr, false);
  if (venv.empty() || j.is_discarded() || !j.is_object() || !j.contains("environments") ||
      !j["environments"].is_array() || j["environments"].size() < 2)
    return venv;
  for (const auto& env : j["environments"])
    if (env.is_object() && env.contains("name") && env["name"].is_string() && env["name"] != "base")
      return venv + "/" + env["name"].get<std::string>();
  return venv;
}

}  // namespace

std::string absolute(const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  char cwd[4096];
  return ::getcwd(cwd, sizeof cwd) ? std::string(cwd) + "/" + path : path;
}

void add_engine_flags(CLI::App& app, EngineFlags& f) {
  const char* group = "Engine";
  app.add_option("--engine", f.engine,
                 "Engine: native (default), an external engine of the registry (vllm, tensorrt_llm, mindie, "
                 "vllm-ascend) started from --venv, or openai (a running server at --upstream)")
      ->option_text("NAME")
      ->group(group);
  app.add_option("--engine-version", f.engine_version, "External engine version (default: the plan's, else the registry's)")
      ->option_text("VER")
      ->group(group);
  app.add_option("--plan", f.plan, "A cy-llm-resolve plan (- for stdin): its engine, version and engine_config")
      ->option_text("FILE")
      ->group(group);
  app.add_option("--venv", f.venv, "The venv cy-llm-fetch --install built for the engine (default: PATH)")
      ->option_text("DIR")
      ->group(group);
  app.add_option("--registry", f.registry, "Registry file or directory (default: built in; $CYLLM_REGISTRY)")
      ->option_text("FILE|DIR")
      ->group(group);
  app.add_option("--gpu-memory-utilization", f.gpu_memory_utilization, "Fraction of GPU memory the engine may use (0, 1]")
      ->option_text("F")
      ->group(group);
  app.add_option("--tensor-parallel-size", f.tensor_parallel_size, "GPUs a layer is split over (external engines)")
      ->option_text("N")
      ->group(group);
  app.add_option("--pipeline-parallel-size", f.pipeline_parallel_size, "Pipeline stages (external engines)")
      ->option_text("N")
      ->group(group);
  app.add_option("--quantization", f.quantization, "Quantization method for external engines (awq, fp8, ...)")
      ->option_text("Q")
      ->group(group);
  app.add_option("--extra", f.extra, "KEY=VALUE passed to the engine (repeatable; extra_config)")
      ->option_text("KEY=VALUE")
      ->group(group);
  app.add_option("--ready-timeout", f.ready_timeout_s, "Seconds an external engine may take to become ready (default 900)")
      ->check(CLI::PositiveNumber)
      ->group(group);
  app.add_option("--work-dir", f.work_dir,
                 "External engines: directory for engine.log and generated config files (default: a temporary "
                 "one, removed at exit)")
      ->option_text("DIR")
      ->group(group);
  app.add_option("--upstream", f.upstream, "--engine openai: the server's OpenAI API root, e.g. http://10.0.0.5:8000/v1")
      ->option_text("URL")
      ->group(group);
  app.add_option("--upstream-key", f.upstream_key, "--engine openai: bearer token (default $CYLLM_UPSTREAM_API_KEY)")
      ->option_text("KEY")
      ->group(group);
  app.add_option("--upstream-ca", f.upstream_ca, "--engine openai: extra CA certificates (PEM) for https")
      ->option_text("FILE")
      ->group(group);
}

Result<void> apply_engine_flags(EngineFlags& f, engine::EngineConfig& config, EngineSetup& setup) {
  std::string kv_cache_dtype;
  if (!f.plan.empty()) {
    auto text = read_plan(f.plan);
    if (!text) return text.error();
    external::LaunchInputs in;
    in.config = config;
    if (auto r = external::apply_plan(*text, in); !r) return std::move(r).error().with_context("reading " + f.plan);
    // Flags given explicitly win over the plan.
    if (f.engine == "native") f.engine = in.engine == "cy-llm" ? "native" : in.engine;
    if (f.engine_version.empty() && in.engine == f.engine) f.engine_version = in.version;
    if (config.max_model_len == 0) config.max_model_len = in.config.max_model_len;
    if (f.gpu_memory_utilization == 0) f.gpu_memory_utilization = in.config.gpu_memory_utilization;
    if (f.quantization.empty()) f.quantization = in.config.quantization;
    if (f.tensor_parallel_size == 0) f.tensor_parallel_size = in.config.tensor_parallel_size;
    if (f.pipeline_parallel_size == 0) f.pipeline_parallel_size = in.config.pipeline_parallel_size;
    if (in.kv_cache_dtype != "auto") kv_cache_dtype = in.kv_cache_dtype;
    for (const auto& [k, v] : in.config.extra_config) config.extra_config.emplace(k, v);
    f.venv = engine_venv(*text, f.venv);
  }
  for (const auto& kv : f.extra) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return usage("--extra " + kv + ": expected KEY=VALUE");
    config.extra_config[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  config.engine_type = f.native() ? "native" : f.engine;
  if (f.gpu_memory_utilization != 0) config.gpu_memory_utilization = f.gpu_memory_utilization;
  if (f.tensor_parallel_size != 0) config.tensor_parallel_size = f.tensor_parallel_size;
  if (f.pipeline_parallel_size != 0) config.pipeline_parallel_size = f.pipeline_parallel_size;
  config.quantization = f.quantization;
  if (f.engine != "openai" && !f.upstream.empty()) return usage("--upstream needs --engine openai");
  if (f.engine == "openai" && f.upstream.empty()) return usage("--engine openai needs --upstream URL");
  if (f.native() && (!f.venv.empty() || !f.engine_version.empty()))
    return usage(std::string(!f.venv.empty() ? "--venv" : "--engine-version") +
                 " applies to external engines; pass --engine NAME (or --plan)");

  auto& s = setup.settings;
  if (!f.native() && f.engine != "openai") {
    auto reg = load_registry_for_tool(f.registry);
    if (!reg) return reg.error();
    setup.registry = std::move(*reg);
    if (!setup.registry.find_engine(f.engine)) {
      std::string known = "native, openai";
      for (const auto& [name, e] : setup.registry.engines)
        if (e.kind == registry::EngineKind::Python) known += ", " + name;
      return usage("unknown --engine \"" + f.engine + "\" (known: " + known + ")");
    }
    s.registry = &setup.registry;
  }
  s.venv = absolute(f.venv);
  s.work_dir = absolute(f.work_dir);
  s.engine_version = f.engine_version;
  s.served_model_name = f.served_model_name;
  s.kv_cache_dtype = kv_cache_dtype;
  s.ready_timeout = std::chrono::milliseconds(static_cast<long long>(f.ready_timeout_s * 1000));
  s.upstream.base_url = f.upstream;
  s.upstream.api_key = !f.upstream_key.empty() ? f.upstream_key : getenv_str("CYLLM_UPSTREAM_API_KEY").value_or("");
  s.upstream.ca_bundle = f.upstream_ca;
  external::register_external_engines(setup.factory, s);
  return {};
}

}  // namespace cyllm::cli
