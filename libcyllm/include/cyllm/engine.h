// The engine core (seed API-ENGINE-1/2): one interface over every inference backend, an
// EngineFactory that creates engines by name, and the native CPU engine on GGUF models.
//
// A BaseEngine holds at most one loaded model. Many stream_predict calls may run at once
// (each request gets its own model::Session and KV cache; the Model is shared and
// immutable); load_model and unload_model wait for in-flight requests and exclude new ones
// while they run. The engine never prints: text goes to the caller's TokenSink.
//
// Errors (the EngineError hierarchy, stable ids): engine.invalid_request (bad prompt or
// parameters), engine.model_load_failed (cause quoted), engine.out_of_memory (an allocation
// failed; that request's caches were released and the engine stays usable),
// engine.cancelled / engine.deadline_exceeded (stopped before producing any token; a
// request stopped later returns its partial Completion with finish_reason "cancelled" or
// "deadline"), engine.unavailable (no model loaded), engine.internal (a bug).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cyllm/context.h"
#include "cyllm/error.h"
#include "cyllm/tokenizer.h"

namespace cyllm::engine {

using tokenizer::TokenId;

// Seed 4.2 EngineConfig. Each engine uses what applies to it and says which it ignores.
struct EngineConfig {
  std::string engine_type = "native";  // "native" (alias "cpu"), or a registered name
  std::string model_id;                // native: path of a GGUF file
  // Context length: the upper bound of one request's KV cache (prompt + generated).
  // 0: the model's training context. The native engine sizes each request's cache to
  // min(max_model_len, prompt tokens + max_tokens).
  std::uint32_t max_model_len = 0;
  std::uint32_t n_threads = 0;              // 0: the CPUs this process may use (affinity, cgroup cpu.max)
  double gpu_memory_utilization = 0.90;     // GPU engines; ignored by native
  std::string quantization;                 // "" = as stored; native refuses anything else
  std::uint32_t tensor_parallel_size = 1;   // native: must be 1
  std::uint32_t pipeline_parallel_size = 1; // native: must be 1
  // Engine-specific extras. Native: "use_mmap" ("true"/"false", default true),
  // "populate" ("true" pre-faults the mapping), "repack" ("false" keeps every weight in
  // place instead of interleaving Q4_0/Q8_0/Q4_K/F16 rows at load),
  // "kv_type" (KV-cache element type: "f32", "f16" (default) or "q8_0"), "onednn" ("true":
  // oneDNN for the prompts' F32 products, see model::SessionOptions::onednn).
  std::map<std::string, std::string> extra_config;
};

struct SamplingParams {
  float temperature = 0.8f;     // <= 0: greedy
  int top_k = 40;               // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int penalty_last_n = 64;      // window of the penalties (0: off, -1: whole history)
  std::uint64_t seed = 0;       // the same seed and inputs give the same tokens
};

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

struct Request {
  // Plain completion: the prompt as given (BOS added when the vocabulary wants one).
  std::string prompt;
  // Chat: when non-empty, the messages are formatted with the model's chat template (or
  // `chat_template` when set: llama2, llama3, chatml, mistral, gemma, phi3) plus the
  // assistant generation prompt, and `prompt` is ignored.
  std::vector<ChatMessage> messages;
  std::string chat_template;
  bool parse_special = false;  // special-token text in `prompt` maps to those tokens
  std::uint32_t max_tokens = 128;
  std::vector<std::string> stop;  // never emitted, never split across pieces
  SamplingParams sampling;
  std::optional<std::chrono::steady_clock::time_point> deadline;
  std::string id;  // the caller's request id, for logs ("" when none)
};

// Receives each piece of text as soon as it is final (valid UTF-8, not part of a possible
// stop string) with the id of the token that completed it. Called only with non-empty
// text, on the thread of stream_predict. Return false to stop (finish_reason "cancelled").
using TokenSink = std::function<bool(std::string_view text, TokenId token)>;

enum class FinishReason { Stop, Length, Cancelled, Deadline };
std::string_view finish_reason_name(FinishReason r);  // "stop", "length", ...

struct Usage {
  std::uint32_t prompt_tokens = 0;
  std::uint32_t completion_tokens = 0;  // sampled tokens, EOS/end-of-turn not counted
};

struct Timings {
  double load_ms = 0;        // the engine's last load_model
  double prompt_ms = 0;      // prompt evaluation
  double ttft_ms = 0;        // request start -> first token sampled
  double generation_ms = 0;  // first token sampled -> last token sampled
  double prompt_tokens_per_s = 0;
  double generation_tokens_per_s = 0;  // (completion_tokens - 1) / generation time
  double queue_ms = 0;       // a server's queue: arrival -> admission (0 for direct calls)
};

struct Completion {
  std::string text;             // everything delivered to the sink
  std::vector<TokenId> tokens;  // generated ids (without the end-of-generation token)
  FinishReason finish_reason = FinishReason::Length;
  std::string chat_format;      // the chat template used, "" for plain prompts
  Usage usage;
  Timings timings;
};

// API-ENGINE-1. Every method is thread-safe.
class BaseEngine {
 public:
  virtual ~BaseEngine() = default;
  // Loads the model (replacing a loaded one). A refused config (engine.invalid_request)
  // leaves the loaded model as it was; after a failed load no model is loaded.
  virtual Result<void> load_model(const std::string& path, const EngineConfig& config) = 0;
  // Runs one request, streaming text to `sink`. `cancel` (may be null) is polled between
  // tokens; raising it ends the request with finish_reason "cancelled".
  virtual Result<Completion> stream_predict(const Request& request, const TokenSink& sink,
                                            const std::atomic<bool>* cancel = nullptr) = 0;
  // Frees the model and its caches; waits for in-flight requests. Idempotent.
  virtual void unload_model() = 0;
  // Memory held now (weights + live KV caches), in GB (1e9 bytes).
  virtual double get_memory_usage() const = 0;
  virtual std::string_view name() const = 0;
  virtual bool loaded() const = 0;
};

// API-ENGINE-2. Creates engines by name. No global registry: a factory object holds its
// creators; the default constructor registers the built-in engines ("native", "cpu").
class EngineFactory {
 public:
  using Creator = std::function<std::unique_ptr<BaseEngine>(const EngineConfig&, Logger&)>;
  EngineFactory();
  // Adds or replaces an engine (external engines plug in here).
  void register_engine(std::string name, Creator creator);
  // engine.invalid_request naming the known engines when config.engine_type is unknown.
  // `log` must outlive the engine.
  Result<std::unique_ptr<BaseEngine>> create(const EngineConfig& config, Logger& log) const;
  std::vector<std::string> names() const;  // sorted

 private:
  std::map<std::string, Creator> creators_;
};

// The native CPU engine on GGUF models (model::Model + model::Session). `log` receives the
// load-retry warnings and must outlive the engine.
std::unique_ptr<BaseEngine> make_native_engine(const EngineConfig& config, Logger& log);

// The cy-llm-run JSON document (schema "cy-llm.run/v1", tools/schema/run.v1.json).
nlohmann::ordered_json completion_json(const Completion& c);

// ---- Chat templates -------------------------------------------------------------------

enum class ChatFormat { Llama2, Llama3, ChatML, Mistral, Gemma, Phi3 };
std::string_view chat_format_name(ChatFormat f);  // "llama2", "chatml", ...
std::optional<ChatFormat> parse_chat_format(std::string_view name);
std::vector<std::string> chat_format_names();
// Recognises a `tokenizer.chat_template` (a Jinja text) by its marker strings; nullopt
// when none matches.
std::optional<ChatFormat> detect_chat_format(std::string_view jinja_template);
// Formats messages (a leading "system" message is the system prompt) and, when
// add_generation_prompt, opens the assistant's turn. BOS is not included: the tokenizer
// adds it. engine.invalid_request for an unknown role.
Result<std::string> apply_chat_template(ChatFormat f, std::span<const ChatMessage> messages,
                                        bool add_generation_prompt = true);

// ---- Demo model -----------------------------------------------------------------------

// Writes (atomically) a small llama-shaped GGUF with RANDOM weights drawn from `seed` and a
// self-made vocabulary: <unk> <s> </s>, the 256 byte tokens, printable ASCII, U+2581 and
// the chatml markers. Its output is meaningless; it exists so that cy-llm-run works on a
// machine without a downloaded model. The same seed gives the same bytes.
Result<void> write_demo_model(const std::string& path, std::uint64_t seed = 42);
// <cache_dir>/cy-llm/demo/demo-v1.gguf, written by write_demo_model when absent (the
// directories are created). Returns the path.
Result<std::string> ensure_demo_model(const std::string& cache_dir);

}  // namespace cyllm::engine
