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

// ---- Engines --------------------------------------------------------------------------

// Builds the launch of a model with an EngineConfig on a loopback port; work_dir is the
// engine's own directory (logs, generated files). Production: build_launch over the
// registry (see launcher_from_registry); tests: any command that serves the OpenAI API.
using LaunchBuilder = std::function<Result<LaunchSpec>(const std::string& model, const engine::EngineConfig& config,
                                                  std::uint16_t port, const std::string& work_dir)>;

struct ProcessEngineOptions {
  std::string name = "external";      // what name() returns: "vllm", "tensorrt_llm", ...
  LaunchBuilder launcher;
  std::string work_dir;               // "" = a new directory under $TMPDIR (removed on destruction)
  std::string api_key;                // sent as a bearer token when the server wants one
  std::chrono::milliseconds ready_timeout{std::chrono::minutes(15)};  // weights + compile on a GPU
  std::chrono::milliseconds stop_grace{std::chrono::seconds(15)};    // SIGTERM -> SIGKILL
  std::chrono::milliseconds poll_interval{250};                     // readiness polling
  std::chrono::milliseconds restart_backoff{std::chrono::seconds(1)};   // after a crash, doubling
  std::chrono::milliseconds restart_backoff_max{std::chrono::seconds(60)};
  std::chrono::milliseconds stall_timeout{std::chrono::minutes(5)};  // a request with no byte
  std::size_t log_tail_lines = 20;    // quoted in errors
  std::string nvml_library = "libnvidia-ml.so.1";  // dlopen()ed for get_memory_usage
};

// A BaseEngine over a child process that serves the OpenAI API on loopback.
//   load_model: writes the spec's files, starts the command in its own process group with
//     stdout/stderr in <work_dir>/engine.log, polls health_path until 200 (or the child
//     exits, or ready_timeout: engine.model_load_failed quoting the log's last lines; log
//     text matching an oom_pattern: engine.out_of_memory).
//   stream_predict: SSE over libcurl; cancel closes the stream. If the child dies, the
//     request fails with engine.unavailable (exit status and log tail quoted) and the
//     next request (or load_model) starts it again, waiting out a back-off that doubles
//     with each crash in a row.
//   unload_model: waits for in-flight requests, then SIGTERM to the group, SIGKILL after
//     stop_grace, and reaps it.
//   get_memory_usage: NVML per-process memory of the group when an NVIDIA driver is
//     present, else the group's resident memory.
std::unique_ptr<engine::BaseEngine> make_process_engine(ProcessEngineOptions options, Logger& log);

struct OpenAiEngineOptions {
  std::string base_url;   // "https://host/v1" (the OpenAI root; "/v1" is added when absent)
  std::string api_key;    // "" = none; else sent as "Authorization: Bearer KEY"
  std::string ca_bundle;  // extra CA certificates for https
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds stall_timeout{std::chrono::minutes(5)};
};

// The generic "openai" engine: an already-running OpenAI-compatible server (a vLLM
// fleet behind a load balancer, another cy-llm-serve). load_model(model) checks that
// GET /models answers and lists `model` ("" = the first model it lists); memory usage is 0
// (it is the remote's).
std::unique_ptr<engine::BaseEngine> make_openai_engine(OpenAiEngineOptions options, Logger& log);

// The model ids an OpenAI-compatible server lists (GET /models), in its order.
// engine.model_load_failed naming the URL when it cannot be reached or refuses the key.
Result<std::vector<std::string>> list_upstream_models(const OpenAiEngineOptions& options);

// What the external engines need from the caller's environment.
struct ExternalSettings {
  const registry::Registry* registry = nullptr;  // must outlive the factory's engines
  std::string venv;            // the plan's venv ("" = PATH)
  std::string engine_version;  // "" = the registry's default_version
  std::string work_dir;        // "" = a temporary directory per engine
  std::string served_model_name;
  std::string kv_cache_dtype;  // "" = the engine's default
  std::chrono::milliseconds ready_timeout{std::chrono::minutes(15)};
  OpenAiEngineOptions upstream;  // for "openai"
};

// A LaunchBuilder over build_launch for `engine` at the settings' version and venv.
LaunchBuilder launcher_from_registry(const ExternalSettings& settings, std::string engine);

// Registers every engine with a launcher in the registry (vllm, tensorrt_llm, mindie,
// vllm-ascend, ...) as a process engine, and "openai".
void register_external_engines(engine::EngineFactory& factory, const ExternalSettings& settings);

}  // namespace cyllm::external
