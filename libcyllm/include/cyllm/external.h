// External engines (seed EngineFactory: vLLM, TensorRT-LLM, MindIE): engines that ship an
// OpenAI-compatible server. cy-llm drives them as child processes started from the venv
// that `cy-llm-fetch --install` built, and talks to them over loopback; the generic
// "openai" engine reaches an already-running server at a URL instead.
//
// Two layers:
//   - launch specs: the command line, environment and config files that start engine E at
//     version V for an EngineConfig, built from the registry's `launchers` data (flags that
//     changed between versions are data, not code branches);
//   - engines: ProcessEngine (a BaseEngine that starts, watches, streams from and stops such
//     a server) and OpenAiEngine (a BaseEngine over a remote endpoint).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cyllm/engine.h"
#include "cyllm/error.h"
#include "cyllm/registry.h"

namespace cyllm::external {

// ---- Launch specs ---------------------------------------------------------------------

// What a launch depends on besides the registry.
struct LaunchInputs {
  std::string engine;             // registry engine name: "vllm", "tensorrt_llm", "mindie", ...
  std::string version;            // the engine version the plan chose ("" = its default_version)
  std::string model;              // model path or hub id, as the engine takes it
  std::string served_model_name;  // "" = the engine's default
  std::string venv;               // the plan's venv ("" = use PATH); its bin/ is searched first
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;         // loopback port the server listens on
  std::string work_dir;           // where generated config files go (absolute)
  engine::EngineConfig config;    // max_model_len, gpu_memory_utilization, quantization,
                                  // tensor/pipeline parallel sizes, extra_config passthrough
  std::string kv_cache_dtype;     // "" = the engine's default ("fp8", ...)
  // Multi-node (vLLM over Ray): the head's Ray address "HOST:PORT" and the node count.
  std::string ray_address;
  std::uint32_t nnodes = 1;
};

struct GeneratedFile {
  std::string path;     // absolute
  std::string content;  // written atomically before the process starts
};

struct LaunchSpec {
  std::vector<std::string> argv;            // argv[0] is a path or a name looked up on PATH
  std::map<std::string, std::string> env;   // set on top of the inherited environment
  std::vector<GeneratedFile> files;         // config files the command reads
  std::string health_path = "/health";      // GET -> 200 once the server is ready
  std::string api_base = "/v1";             // root of the OpenAI routes
  std::vector<std::string> oom_patterns;    // log text meaning out of memory (case-sensitive)
  std::vector<std::string> ignored;         // config fields this engine/version cannot honour
                                            // ("quantization=awq", "extra_config.foo=1")
  std::string source;                       // the launcher entry used: "FILE:LINE"
  std::string engine;                       // the engine and version it starts
  std::string version;
  bool verified = false;                    // the launcher's facts were checked at a source
};

// Builds the single-node launch for `in` from reg's launcher entry for (engine, version).
// Errors: engine.invalid_request naming the engine/version when no launcher covers it, or
// a config value the engine version refuses (names the field and the value).
Result<LaunchSpec> build_launch(const registry::Registry& reg, const LaunchInputs& in);

// Takes engine.name, engine.version and engine_config (max_model_len,
// gpu_memory_utilization, quantization, kv_cache_dtype, tensor_parallel_size,
// extra_config) from a `cy-llm.plan/v1` document (cy-llm-resolve's stdout) into `in`.
// Errors: InvalidArgument for text that is not such a plan or a plan without an engine.
Result<void> apply_plan(std::string_view plan_json, LaunchInputs& in);

// One command of a multi-node deployment, in the order to run them.
struct NodeCommand {
  std::string role;                        // "head", "worker" or "serve"
  std::string where;                       // "on the head node", "on each worker node", ...
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
};
// The documented multi-node launch (Ray head, workers, then the server on the head) for an
// engine whose launcher has multi-node data; engine.invalid_request otherwise.
Result<std::vector<NodeCommand>> build_multinode_launch(const registry::Registry& reg, const LaunchInputs& in);

// Shell text (POSIX-quoted, one command per line, `KEY=VALUE` env prefixes, generated files
// shown as here-documents) for `cy-llm-run --print-launch`.
std::string format_launch(const LaunchSpec& spec);
std::string format_multinode_launch(const std::vector<NodeCommand>& commands);

}  // namespace cyllm::external
