// Transformer models from GGUF files: hyperparameters, weights bound in place to the
// mapped file, and a Session that runs the forward pass with its own KV cache.
//
// A Model is immutable after load and shared by every Session (and thread) that uses it.
// A Session holds the mutable state of one sequence: KV cache, activations, position.
// Supported `general.architecture`: llama (Llama 2/3, TinyLlama, Mistral, SmolLM),
// qwen2 (QKV biases), qwen3 (per-head Q/K RMSNorm).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
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
  // Rearrange the Q4_0, Q8_0, Q4_K and F16 projection weights once at load for the
  // kernels that compute 8 rows at a time (1.3-2x faster prompts, 10-30% faster decoding;
  // see model/repack.h). Costs a pass over those weights into fresh memory at load; the
  // mapped originals are released, so the resident size stays about the file's. false:
  // every weight is used in place from the file.
  bool repack = true;
  unsigned n_threads = 0;  // threads of the repacking; 0: effective_cpu_count()
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
  // Bytes of weights (file tensor data) and of one KV-cache position (all layers) of an
  // f32 cache (kv_bytes_per_token(model, type) below gives any cache type).
  virtual std::uint64_t weight_bytes() const = 0;
  virtual std::uint64_t kv_bytes_per_token() const = 0;
};

// CPUs this process may use: its affinity mask, capped by the cgroup v2 cpu.max quota of
// its cgroup and their ancestors (rounded up). At least 1.
unsigned effective_cpu_count();

struct ThreadPoolOptions {
  unsigned n_threads = 0;  // 0: effective_cpu_count()
  bool pin = false;        // pin worker i to the i-th CPU of the affinity mask
};

// Persistent worker threads (the caller is worker 0) that split loops into chunks; no
// thread is created per token. Shareable by many sessions (e.g. a server's): jobs from
// several threads run one at a time.
class ThreadPool {
 public:
  using Fn = std::function<void(unsigned worker, std::size_t begin, std::size_t end)>;
  // OutOfMemory when the threads cannot be started.
  static Result<std::shared_ptr<ThreadPool>> create(const ThreadPoolOptions& opts = {});
  virtual ~ThreadPool() = default;
  virtual unsigned size() const = 0;  // workers, the caller included
  // Runs fn(worker, begin, end) over [0, n) in chunks of `grain` items, worker in
  // [0, size()), and returns when all are done. fn must not throw.
  virtual void parallel_for(std::size_t n, std::size_t grain, const Fn& fn) = 0;
};

// Element type of the KV cache. q8_0: blocks of 32 int8 with an f32 scale per block.
enum class KvType { F32, F16, Q8_0 };
// "f32", "f16", "q8_0"; nullopt-like: false when the name is unknown.
bool parse_kv_type(std::string_view name, KvType& out);
const char* kv_type_name(KvType t);

// Bytes of one KV-cache position (K and V, all layers) in a cache of type t.
std::uint64_t kv_bytes_per_token(const Model& model, KvType t);

// Matrix kernels. Auto: the fastest the CPU supports (AVX-512 VNNI, AVX2), unless the
// environment variable CYLLM_KERNELS is "scalar" or "reference". Scalar: the portable
// twins of the SIMD kernels (same sums: activations quantized to 8 bits for Q8_0/Q4_0
// weights). Reference: every weight row dequantized to f32 and dotted with f32
// activations (slow; the numbers the tests compare with a double-precision model).
enum class Kernels { Auto, Scalar, Reference };

struct SessionOptions {
  SessionOptions() = default;
  // {n_ctx, n_threads}, the form the first version of this struct had.
  SessionOptions(std::uint32_t ctx, std::uint32_t threads = 0) : n_ctx(ctx), n_threads(threads) {}

  std::uint32_t n_ctx = 0;     // 0: the model's training context
  std::uint32_t n_threads = 0; // 0: effective_cpu_count() (ignored when `pool` is set)
  KvType kv_type = KvType::F16;
  Kernels kernels = Kernels::Auto;
  std::shared_ptr<ThreadPool> pool;  // null: the session starts its own of n_threads
  // oneDNN for the prompt products of F32 weights from 16 tokens on (builds with
  // +onednn; ignored otherwise): 2.3-2.8x faster there (bench/gemm_bench), but its sums
  // are ordered otherwise, so a sequence no longer gets the same bits alone as in a batch.
  bool onednn = false;
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
  // The kernel set in use: "avx512-vnni", "avx2", "scalar" or "reference".
  virtual const char* kernels_name() const { return "scalar"; }
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
