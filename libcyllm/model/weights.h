// The tensors of a llama-family transformer, bound in place to a GGUF file's data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "cyllm/error.h"
#include "cyllm/gguf.h"
#include "cyllm/model.h"

namespace cyllm::model {

// A 2-D weight: n_rows rows of n_cols elements of `type`, used in place from the file, or
// repacked at load to the X8 layout of model/repack.h (x8: then data is owned by Weights).
struct WeightMatrix {
  gguf::TensorType type = gguf::TensorType::F32;
  std::uint64_t n_cols = 0;     // ne[0]: the input size
  std::uint64_t n_rows = 0;     // ne[1]: the output size
  std::uint64_t row_bytes = 0;  // bytes of one encoded row (in the GGUF encoding)
  const std::byte* data = nullptr;
  bool x8 = false;

  // Row r in the GGUF encoding; only for weights in the file's layout (not x8).
  const std::byte* row(std::uint64_t r) const {
    CYLLM_ASSERT(!x8);
    return data + r * row_bytes;
  }
  bool empty() const { return data == nullptr; }
};

// Memory of repacked weights: anonymous pages, transparent huge pages where the kernel
// allows (fewer faults at load, fewer TLB misses when the kernels stream them).
class PageBuffer {
 public:
  // Throws std::bad_alloc.
  explicit PageBuffer(std::size_t n);
  PageBuffer(PageBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; }
  PageBuffer& operator=(PageBuffer&&) = delete;
  ~PageBuffer();
  std::byte* data() const { return p_; }

 private:
  std::byte* p_;
  std::size_t n_;
};

// Per-layer weights. Norm weights and biases are small; they are copied as f32 so that
// files storing them in F16 work too. Empty vectors/matrices are absent (optional) ones.
struct LayerWeights {
  std::vector<float> attn_norm;  // [n_embd]
  WeightMatrix wq;               // [n_embd] -> [n_head * head_dim]
  WeightMatrix wk;               // [n_embd] -> [n_head_kv * head_dim]
  WeightMatrix wv;               // [n_embd] -> [n_head_kv * head_dim]
  WeightMatrix wo;               // [n_head * head_dim] -> [n_embd]
  std::vector<float> bq;         // [n_head * head_dim]     (qwen2; optional for llama)
  std::vector<float> bk;         // [n_head_kv * head_dim]  (qwen2; optional for llama)
  std::vector<float> bv;         // [n_head_kv * head_dim]  (qwen2; optional for llama)
  std::vector<float> q_norm;     // [head_dim]  (qwen3: RMSNorm of each Q head)
  std::vector<float> k_norm;     // [head_dim]  (qwen3: RMSNorm of each K head)
  std::vector<float> ffn_norm;   // [n_embd]
  WeightMatrix w_gate;           // [n_embd] -> [n_ff]
  WeightMatrix w_up;             // [n_embd] -> [n_ff]
  WeightMatrix w_down;           // [n_ff] -> [n_embd]
};

struct Weights {
  WeightMatrix token_embd;        // n_vocab rows of [n_embd]
  std::vector<float> output_norm; // [n_embd]
  WeightMatrix output;            // [n_embd] -> [n_vocab]; token_embd when tied
  std::vector<float> rope_freqs;  // [n_rot / 2] divisors of the RoPE frequencies (Llama 3.1); optional
  std::vector<LayerWeights> layers;
  std::vector<PageBuffer> repacked;  // the data of the x8 matrices
};

// Binds every tensor the architecture needs. BadModel names a missing tensor or one of the
// wrong shape (quoting the expected and actual shape); GgufUnsupportedType names a tensor
// of a type the engine cannot compute.
Result<Weights> bind_weights(const gguf::File& file, const HParams& hp);

// Repacks the matrices that a kernel reads faster in another layout (model/repack.h: Q4_0,
// Q8_0, Q4_K and F16 projections; not token_embd, which is read a row at a time). When the file is
// mapped, the pages of the originals are dropped from the process (madvise DONTNEED: the
// file's pages stay in the page cache), so that the resident size stays close to the
// file's. n_threads threads share the work. Throws std::bad_alloc.
void repack_weights(Weights& w, bool file_mmapped, unsigned n_threads);

}  // namespace cyllm::model
