// The tensors of a llama-family transformer, bound in place to a GGUF file's data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cyllm/error.h"
#include "cyllm/gguf.h"
#include "cyllm/model.h"

namespace cyllm::model {

// A 2-D weight of the file, used in place: n_rows rows of n_cols elements of `type`.
// Rows are dequantized on the fly by the matmul.
struct WeightMatrix {
  gguf::TensorType type = gguf::TensorType::F32;
  std::uint64_t n_cols = 0;     // ne[0]: the input size
  std::uint64_t n_rows = 0;     // ne[1]: the output size
  std::uint64_t row_bytes = 0;  // bytes of one encoded row
  const std::byte* data = nullptr;

  const std::byte* row(std::uint64_t r) const { return data + r * row_bytes; }
  bool empty() const { return data == nullptr; }
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
};

// Binds every tensor the architecture needs. BadModel names a missing tensor or one of the
// wrong shape (quoting the expected and actual shape); GgufUnsupportedType names a tensor
// of a type the engine cannot compute.
Result<Weights> bind_weights(const gguf::File& file, const HParams& hp);

}  // namespace cyllm::model
