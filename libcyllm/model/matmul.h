// Matrix products of the forward pass over weights of any GGUF type, on a ThreadPool.
//
// Q8_0, Q4_0, Q4_K, Q6_K, F16 and F32 weights use the SIMD kernels of kernels/ (chosen per CPU; the
// activation rows are quantized to Q8 blocks once per product for the quantized types);
// the other types dequantize each weight row once per call (so once per prompt batch) and
// use float dot products. Rows of the weight are split across the pool's workers in chunks
// handed out dynamically.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "cyllm/gguf.h"
#include "cyllm/model.h"
#include "cyllm_config.h"
#include "model/kernels/kernels.h"
#include "model/weights.h"

namespace cyllm::model {

struct OnednnScratch;  // model/matmul_onednn.cpp

// Scratch of matmul: the quantized activations and one dequantized weight row per worker.
class MatmulContext {
 public:
  // Throws std::bad_alloc.
  // reference: dequantize every weight row to f32 (no direct kernels).
  MatmulContext(ThreadPool& pool, const kernels::Table& k, std::size_t max_cols, bool reference = false)
      : pool_(&pool), k_(&k), max_cols_(max_cols), reference_(reference),
        rows_(std::size_t{pool.size()} * max_cols), enc_(std::size_t{pool.size()} * 2 * max_cols) {}
  bool reference() const { return reference_; }
  ThreadPool& pool() const { return *pool_; }
  const kernels::Table& k() const { return *k_; }
  std::size_t max_cols() const { return max_cols_; }
  float* row(unsigned worker) { return rows_.data() + std::size_t{worker} * max_cols_; }
  // At least n blocks (throws std::bad_alloc).
  kernels::BlockQ8* q8(std::size_t n) {
    if (xq_.size() < n) xq_.resize(n);
    return xq_.data();
  }
  // Room for one encoded row of `bytes` (<= 2 * max_cols) for the worker.
  std::byte* encoded_row(unsigned worker, std::size_t bytes) {
    CYLLM_ASSERT(bytes <= 2 * max_cols_);
    return enc_.data() + std::size_t{worker} * 2 * max_cols_;
  }
  // At least n floats for the padded activation rows of the float kernels.
  float* padded(std::size_t n) {  // 64-byte aligned
    if (xf_.size() < n + 16) xf_.resize(n + 16);
    const auto a = reinterpret_cast<std::uintptr_t>(xf_.data());
    return xf_.data() + ((64 - a % 64) % 64) / sizeof(float);
  }
  kernels::BlockQ8K* q8k(std::size_t n) {
    if (xk_.size() < n) xk_.resize(n);
    return xk_.data();
  }
#if CYLLM_HAVE_ONEDNN
  // Opt-in: matmul hands float-weight batches to oneDNN where it measured faster (see its
  // dispatch). Off by default: oneDNN orders the sums otherwise than the native kernels,
  // so a sequence would no longer get bit-identical outputs alone and in a batch.
  void set_onednn(bool on) { onednn_on_ = on; }
  bool onednn_on() const { return onednn_on_; }
  // oneDNN's engine and stream and the widened F16 rows, made on first use (matmul_onednn.cpp).
  OnednnScratch& onednn();
#endif

 private:
  ThreadPool* pool_;
  const kernels::Table* k_;
  std::size_t max_cols_;
  bool reference_;
  std::vector<float> rows_;
  std::vector<std::byte> enc_;  // x8 rows back in the GGUF encoding, per worker
  std::vector<kernels::BlockQ8> xq_;
  std::vector<kernels::BlockQ8K> xk_;
  std::vector<float> xf_;
  std::shared_ptr<OnednnScratch> onednn_;
  bool onednn_on_ = false;
};

// True when matmul has a direct kernel for this weight type (else it dequantizes rows).
bool has_kernel(gguf::TensorType t);

// y[t][r] = sum_k W[r][k] * x[t][k]  for t < n_tokens, r < w.n_rows.
//   x: [n_tokens][w.n_cols]
//   y: [n_tokens][w.n_rows]
// May grow the context's quantized-activation buffer (std::bad_alloc).
void matmul(const WeightMatrix& w, const float* x, std::size_t n_tokens, float* y, MatmulContext& ctx);

// matmul on this library's own kernels only (what matmul does without oneDNN).
void matmul_native(const WeightMatrix& w, const float* x, std::size_t n_tokens, float* y, MatmulContext& ctx);

}  // namespace cyllm::model
