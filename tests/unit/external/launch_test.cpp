// Launch specs from the built-in registry: goldens of format_launch for each engine across
// versions (tests/unit/external/golden/*.txt; CYLLM_UPDATE_GOLDENS=1 rewrites them), and
// the refusals with their exact text.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "cyllm/external.h"
#include "cyllm/registry.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::external;

namespace {

const registry::Registry& builtin() {
  static const registry::Registry reg = [] {
    auto r = registry::load_builtin_registry();
    REQUIRE(r.ok());
    return *r;
  }();
  return reg;
}

LaunchInputs inputs(const std::string& engine, const std::string& version) {
  LaunchInputs in;
  in.engine = engine;
  in.version = version;
  in.model = "/models/Qwen2.5-7B-Instruct";
  in.venv = "/opt/cy-llm/venvs/" + engine + "-" + version;
  in.port = 8100;
  in.work_dir = "/run/cy-llm/launch";
  return in;
}

void check_golden(const std::string& name, const std::string& actual) {
  auto path = test::source_root() / "tests" / "unit" / "external" / "golden" / (name + ".txt");
  if (std::getenv("CYLLM_UPDATE_GOLDENS") != nullptr) {
    test::write_file(path, actual);
    return;
  }
  REQUIRE_MESSAGE(std::filesystem::exists(path), "missing golden " << path << " (run with CYLLM_UPDATE_GOLDENS=1)");
  CHECK_MESSAGE(test::read_text(path) == actual, "golden " << name << " differs; actual:\n" << actual);
}

std::string golden_of(const LaunchInputs& in) {
  auto spec = build_launch(builtin(), in);
  if (!spec.ok()) FAIL(spec.error().to_string());
  return format_launch(*spec);
}

std::string error_of(const LaunchInputs& in) {
  auto spec = build_launch(builtin(), in);
  REQUIRE_FALSE(spec.ok());
  CHECK(spec.error().code() == Errc::InvalidRequest);
  return spec.error().message();
}

}  // namespace

TEST_CASE("vLLM: request logging flags differ across 0.10.1, from the registry data") {
  auto in = inputs("vllm", "0.9.2");
  in.config.max_model_len = 8192;
  in.config.quantization = "awq";
  in.kv_cache_dtype = "fp8";
  in.served_model_name = "qwen";
  check_golden("vllm-0.9.2", golden_of(in));

  in.version = "0.12.0";
  in.venv = "";
  in.config.tensor_parallel_size = 2;
  in.config.gpu_memory_utilization = 0.85;
  in.config.extra_config = {{"enforce_eager", "true"}, {"max_num_seqs", "64"}, {"enable_prefix_caching", "false"}};
  check_golden("vllm-0.12.0", golden_of(in));

  auto spec = build_launch(builtin(), in);
  REQUIRE(spec.ok());
  CHECK(spec->argv[0] == "vllm");  // no venv: looked up on PATH
  CHECK(spec->health_path == "/health");
  CHECK(spec->api_base == "/v1");
  CHECK(spec->ignored.empty());
  CHECK(spec->source.rfind("registry/entries/launchers.yaml:", 0) == 0);
  CHECK(std::find(spec->argv.begin(), spec->argv.end(), "--disable-log-requests") == spec->argv.end());
  CHECK(std::find(spec->oom_patterns.begin(), spec->oom_patterns.end(), "CUDA out of memory") != spec->oom_patterns.end());
}

TEST_CASE("vllm-ascend takes the vLLM CLI and watches for NPU OOM") {
  auto in = inputs("vllm-ascend", "0.9.1");
  check_golden("vllm-ascend-0.9.1", golden_of(in));
  in.version = "0.23.0";
  auto spec = build_launch(builtin(), in);
  REQUIRE(spec.ok());
  CHECK(spec->oom_patterns.front() == "NPU out of memory");
  check_golden("vllm-ascend-0.23.0", format_launch(*spec));
}

TEST_CASE("TensorRT-LLM: --backend and the options file differ across versions") {
  auto in = inputs("tensorrt_llm", "0.18.2");
  in.config.max_model_len = 4096;
  in.config.tensor_parallel_size = 2;
  in.kv_cache_dtype = "fp8";
  in.config.extra_config = {{"enable_chunked_prefill", "true"}};
  in.config.n_threads = 8;
  auto old = build_launch(builtin(), in);
  REQUIRE(old.ok());
  CHECK(old->ignored == std::vector<std::string>{"kv_cache_dtype=fp8", "n_threads=8", "extra_config.enable_chunked_prefill=true"});
  CHECK(old->files.empty());
  check_golden("trtllm-0.18.2", format_launch(*old));

  in.version = "0.21.0";
  in.config.n_threads = 0;
  in.config.extra_config = {{"kv_cache_config.enable_block_reuse", "false"}, {"max_batch_size", "64"},
                            {"backend_note", "a \"quoted\" text"}};
  auto mid = build_launch(builtin(), in);
  REQUIRE(mid.ok());
  CHECK(mid->ignored.empty());
  REQUIRE(mid->files.size() == 1);
  CHECK(mid->files[0].path == "/run/cy-llm/launch/extra_llm_api_options.yaml");
  CHECK(mid->files[0].content ==
        "kv_cache_config:\n  dtype: \"fp8\"\n  enable_block_reuse: false\nbackend_note: \"a \\\"quoted\\\" text\"\n"
        "max_batch_size: 64\n");
  check_golden("trtllm-0.21.0", format_launch(*mid));

  in.version = "1.2.0";
  in.config.extra_config.clear();
  in.kv_cache_dtype.clear();
  check_golden("trtllm-1.2.0", golden_of(in));
}

TEST_CASE("MindIE: config.json layout differs between 1.0 and 2.x") {
  auto in = inputs("mindie", "1.0");
  in.venv.clear();
  in.config.tensor_parallel_size = 2;
  check_golden("mindie-1.0", golden_of(in));

  in.version = "3.0.0";
  in.config.max_model_len = 8192;
  in.config.tensor_parallel_size = 4;
  in.config.quantization = "w8a8";
  in.config.pipeline_parallel_size = 2;
  in.served_model_name = "qwen-7b";
  in.config.extra_config = {{"BackendConfig.ScheduleConfig.maxBatchSize", "64"},
                            {"BackendConfig.ModelDeployConfig.ModelConfig[0].trustRemoteCode", "true"}};
  auto spec = build_launch(builtin(), in);
  REQUIRE(spec.ok());
  CHECK(spec->ignored == std::vector<std::string>{"quantization=w8a8", "pipeline_parallel_size=2"});
  CHECK(spec->env.at("MIES_CONFIG_JSON_PATH") == "/run/cy-llm/launch/config.json");
  CHECK(spec->health_path == "/v2/health/ready");
  check_golden("mindie-3.0.0", format_launch(*spec));

  in.config.pipeline_parallel_size = 1;
  in.config.extra_config = {{"BackendConfig.ModelDeployConfig.ModelConfig[3].x", "1"}};
  CHECK(error_of(in) == "config key \"BackendConfig.ModelDeployConfig.ModelConfig[3].x\": \"ModelConfig\" has no item 3");
}

TEST_CASE("refusals name the field and the value") {
  auto in = inputs("vllm", "0.12.0");
  in.config.tensor_parallel_size = 0;
  CHECK(error_of(in) == "tensor_parallel_size 0: must be at least 1");
  in.config.tensor_parallel_size = 1;
  in.config.pipeline_parallel_size = 0;
  CHECK(error_of(in) == "pipeline_parallel_size 0: must be at least 1");
  in.config.pipeline_parallel_size = 1;
  in.config.gpu_memory_utilization = 1.5;
  CHECK(error_of(in) == "gpu_memory_utilization 1.5: must be in (0, 1]");
  in.config.gpu_memory_utilization = 0.9;
  in.port = 0;
  CHECK(error_of(in) == "port 0: the server needs a port");
  in.port = 8000;
  in.model.clear();
  CHECK(error_of(in) == "no model given (the path or hub id the engine loads)");
  in.model = "m";
  in.config.extra_config = {{"bad key", "1"}};
  CHECK(error_of(in) == "extra_config key \"bad key\" is not a flag name (letters, digits, _ - .)");

  auto mindie = inputs("mindie", "3.0.0");
  mindie.work_dir = "relative";
  CHECK(error_of(mindie) == "work_dir \"relative\": the generated config file needs an absolute directory");
}

TEST_CASE("versions without a launcher, unknown and built-in engines") {
  CHECK(error_of(inputs("tensorrt_llm", "0.16.0")).rfind(
            "tensorrt_llm 0.16.0 cannot be launched: these releases ship no trtllm-serve (no OpenAI-compatible "
            "server; they serve through Triton's tensorrtllm_backend, which cy-llm does not drive): use 0.17.0 or "
            "later (registry/entries/launchers.yaml:", 0) == 0);
  CHECK(error_of(inputs("vllm", "0.5.4")) ==
        "no launcher for vllm 0.5.4 in the registry (its launchers cover: >=0.6.0,<0.10.1; >=0.10.1)");
  CHECK(error_of(inputs("vllm", "latest")) == "bad vllm version \"latest\" (expected a PEP 440 version)");
  CHECK(error_of(inputs("sglang", "0.4.0")) ==
        "unknown engine \"sglang\" (engines with launchers: vllm, vllm-ascend, tensorrt_llm, mindie)");
  CHECK(error_of(inputs("cy-llm", "")) == "engine \"cy-llm\" is built in: it runs in-process and has no launcher");
  // "" = the engine's default version
  auto spec = build_launch(builtin(), inputs("vllm", ""));
  REQUIRE(spec.ok());
  CHECK(spec->version == builtin().find_engine("vllm")->default_version);
}

TEST_CASE("vLLM multi-node over Ray: head, workers, then serve on the head") {
  auto in = inputs("vllm", "0.12.0");
  in.ray_address = "10.0.0.1:6379";
  in.nnodes = 2;
  in.host = "0.0.0.0";
  in.config.tensor_parallel_size = 8;
  in.config.pipeline_parallel_size = 2;
  auto plan = build_multinode_launch(builtin(), in);
  if (!plan.ok()) FAIL(plan.error().to_string());
  REQUIRE(plan->size() == 3);
  CHECK((*plan)[0].argv == std::vector<std::string>{"ray", "start", "--head", "--port=6379"});
  CHECK((*plan)[1].argv == std::vector<std::string>{"ray", "start", "--address=10.0.0.1:6379"});
  CHECK((*plan)[2].role == "serve");
  CHECK((*plan)[2].argv.back() == "ray");
  check_golden("vllm-multinode", format_multinode_launch(*plan));

  in.config.pipeline_parallel_size = 1;
  in.config.tensor_parallel_size = 1;
  auto small = build_multinode_launch(builtin(), in);
  REQUIRE_FALSE(small.ok());
  CHECK(small.error().message() ==
        "tensor_parallel_size x pipeline_parallel_size = 1 is below nnodes 2: set them to the GPUs of all nodes together");
  in.ray_address = "10.0.0.1";
  in.config.tensor_parallel_size = 2;
  CHECK(build_multinode_launch(builtin(), in).error().message() == "ray_address \"10.0.0.1\": expected HOST:PORT");
  auto trt = inputs("tensorrt_llm", "1.2.0");
  trt.ray_address = "10.0.0.1:6379";
  CHECK(build_multinode_launch(builtin(), trt).error().message().rfind(
            "tensorrt_llm 1.2.0 has no multi-node launch in the registry (registry/entries/launchers.yaml:", 0) == 0);
}

TEST_CASE("format_launch quotes for a POSIX shell") {
  LaunchSpec spec;
  spec.engine = "e";
  spec.version = "1";
  spec.source = "f:1";
  spec.verified = true;
  spec.argv = {"/bin/x", "a b", "it's", "--k=v"};
  spec.env = {{"A", "1 2"}};
  spec.files = {{"/tmp/c.json", "EOF\n"}};
  CHECK(format_launch(spec) ==
        "# e 1, launcher f:1\n"
        "# ready when GET /health answers 200; OpenAI routes under /v1\n"
        "cat > /tmp/c.json <<'EOF_'\nEOF\nEOF_\n"
        "A='1 2' /bin/x 'a b' 'it'\\''s' --k=v\n");
}

TEST_CASE("apply_plan takes the engine and engine_config of a resolve plan") {
  auto plan_text = test::read_text(test::source_root() / "tests" / "cli" / "resolve" / "a100" / "expected.stdout.json");
  LaunchInputs in = inputs("", "");
  REQUIRE(apply_plan(plan_text, in).ok());
  CHECK(in.engine == "vllm");
  CHECK(in.version == "0.8.5.post1");
  CHECK(in.config.max_model_len == 8192);
  CHECK(in.kv_cache_dtype == "auto");
  auto spec = build_launch(builtin(), in);
  REQUIRE(spec.ok());
  // kv_cache_dtype "auto" is the engine's default: not passed, not ignored
  CHECK(std::find(spec->argv.begin(), spec->argv.end(), "--kv-cache-dtype") == spec->argv.end());
  CHECK(spec->ignored.empty());

  LaunchInputs other;
  auto not_plan = apply_plan(R"({"schema": "cy-llm.detect/v1"})", other);
  REQUIRE_FALSE(not_plan.ok());
  CHECK(not_plan.error().message() == "not a usable plan: its schema is \"cy-llm.detect/v1\", expected \"cy-llm.plan/v1\"");
  auto no_engine = apply_plan(R"({"schema": "cy-llm.plan/v1", "engine": null})", other);
  REQUIRE_FALSE(no_engine.ok());
  CHECK(no_engine.error().message() == "not a usable plan: it chose no engine (see its candidates and conflicts)");
  auto bad_tp = apply_plan(
      R"({"schema": "cy-llm.plan/v1", "engine": {"name": "vllm", "version": "0.12.0"},
          "engine_config": {"tensor_parallel_size": -2}})", other);
  REQUIRE_FALSE(bad_tp.ok());
  CHECK(bad_tp.error().message() == "not a usable plan: engine_config.tensor_parallel_size is not a non-negative integer: -2");
  CHECK_FALSE(apply_plan("not json", other).ok());
}
