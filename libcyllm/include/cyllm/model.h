// Transformer models from GGUF files: hyperparameters, weights bound in place to the
// mapped file, and a Session that runs the forward pass with its own KV cache.
//
// A Model is immutable after load and shared by every Session (and thread) that uses it.
// A Session holds the mutable state of one sequence: KV cache, activations, position.
// Supported `general.architecture`: llama (Llama 2/3, TinyLlama, Mistral, SmolLM),
// qwen2 (QKV biases), qwen3 (per-head Q/K RMSNorm).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cyllm/error.h"
#include "cyllm/gguf.h"
#include "cyllm/tokenizer.h"

namespace cyllm::model {

enum class Arch { Llama, Qwen2, Qwen3 };
enum class RopeStyle { Normal, NeoX };  // pairs (2i, 2i+1) vs (i, i + d/2)

// Hyperparameters, as read from `<arch>.*` keys. Run parameters live elsewhere.
struct HParams {
  Arch arch = Arch::Llama;
  std::string arch_name;           // "llama"
  std::uint32_t n_vocab = 0;
  std::uint32_t n_ctx_train = 0;   // <arch>.context_length
  std::uint32_t n_embd = 0;        // <arch>.embedding_length
  std::uint32_t n_layer = 0;       // <arch>.block_count
  std::uint32_t n_head = 0;        // <arch>.attention.head_count
  std::uint32_t n_head_kv = 0;     // <arch>.attention.head_count_kv (GQA; = n_head if absent)
  std::uint32_t head_dim = 0;      // <arch>.attention.key_length, else n_embd / n_head
  std::uint32_t n_ff = 0;          // <arch>.feed_forward_length
  float rms_eps = 1e-5f;           // <arch>.attention.layer_norm_rms_epsilon
  float rope_freq_base = 10000.f;  // <arch>.rope.freq_base
  float rope_freq_scale = 1.f;     // 1 / <arch>.rope.scaling.factor (linear scaling)
  std::uint32_t n_rot = 0;         // <arch>.rope.dimension_count (= head_dim if absent)
  RopeStyle rope = RopeStyle::Normal;
  bool tied_embeddings = false;    // no output.weight: token_embd is reused
};

struct LoadOptions {
  gguf::OpenOptions file;
};

class Model {
 public:
  // Opens, validates and binds every tensor the architecture needs (BadModel naming the
  // tensor and the expected shape), and loads the tokenizer.
  static Result<std::shared_ptr<const Model>> load(const std::string& path,
                                                   const LoadOptions& opts = {});
  virtual ~Model() = default;

  virtual const HParams& hparams() const = 0;
  virtual const tokenizer::Tokenizer& tokenizer() const = 0;
  virtual const gguf::File& file() const = 0;
  // tokenizer.chat_template, or "" when the file has none.
  virtual std::string chat_template() const = 0;
  // Bytes of weights (file tensor data) and of one KV-cache position (all layers).
  virtual std::uint64_t weight_bytes() const = 0;
  virtual std::uint64_t kv_bytes_per_token() const = 0;
};

struct SessionOptions {
  std::uint32_t n_ctx = 0;     // 0: the model's training context
  std::uint32_t n_threads = 0; // 0: hardware concurrency
};

// One sequence's state. Not thread-safe; use one Session per concurrent request.
class Session {
 public:
  // KV cache is allocated here (OutOfMemory when it cannot be).
  static Result<std::unique_ptr<Session>> create(std::shared_ptr<const Model> model,
                                                 const SessionOptions& opts = {});
  virtual ~Session() = default;

  // Appends `tokens` at the current position and runs the forward pass. On success the
  // next-token logits of the last token ([n_vocab]) are in logits(). InvalidArgument when
  // the context would overflow or an id is out of range (state unchanged then).
  virtual Result<void> eval(std::span<const tokenizer::TokenId> tokens) = 0;
  virtual std::span<const float> logits() const = 0;
  // Same as eval, and also keeps the next-token logits after every token of `tokens` in
  // all_logits(): [tokens.size()][n_vocab], row i follows tokens[i] (the last row equals
  // logits()). Costs one output projection per token; OutOfMemory when the rows cannot be
  // allocated (state unchanged then). For perplexity and teacher-forced checks.
  // (Not pure, so that test doubles of Session need not implement it: Unsupported.)
  virtual Result<void> eval_all(std::span<const tokenizer::TokenId> tokens) {
    (void)tokens;
    return Error(Errc::Unsupported, "eval_all is not implemented by this session");
  }
  virtual std::span<const float> all_logits() const { return {}; }
  virtual std::uint32_t n_past() const = 0;   // tokens in the KV cache
  virtual std::uint32_t n_ctx() const = 0;
  // Drops cached positions >= n (n <= n_past), e.g. to reuse a shared prompt prefix.
  virtual void truncate(std::uint32_t n) = 0;
  virtual const Model& model() const = 0;
};

// One entry of a batched step: `tokens` are appended to `session`'s sequence.
struct BatchEntry {
  Session* session = nullptr;
  std::span<const tokenizer::TokenId> tokens;
};

// Advances several sequences of one Model together: each entry's tokens are appended to
// its session at that session's own positions and KV cache, and on success each session's
// logits() holds the next-token logits after its last token. This is the step a
// continuous-batching scheduler calls (typically one token per decoding sequence plus
// prompt chunks of newly admitted ones). Everything is checked before anything changes:
// InvalidArgument when the list is empty, an entry has no session or no tokens, a session
// appears twice, the sessions belong to different models, a context would overflow or a
// token id is out of range.
Result<void> eval_batch(std::span<const BatchEntry> entries);

}  // namespace cyllm::model
