// Matrix products over weights stored in any GGUF type, and a minimal parallel loop.
//
// Design goals: obviously correct and reasonably fast without SIMD intrinsics; each
// weight row is dequantized once per call (so once per prompt batch, not once per token);
// numbers close to llama.cpp's CPU backend.
// Non-goals: peak speed (a later thread pool and SIMD kernels replace this).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "cyllm/gguf.h"
#include "model/weights.h"

namespace cyllm::model {

// Runs fn(worker, begin, end) over [0, n) split into contiguous chunks, one per worker,
// on up to n_workers std::threads (the caller's thread runs the first chunk). `worker` is
// in [0, n_workers) and identifies per-worker scratch. fn must not throw. When a thread
// cannot be started its chunk runs on the caller's thread instead.
void parallel_for(unsigned n_workers, std::size_t n,
                  const std::function<void(unsigned worker, std::size_t begin, std::size_t end)>& fn);

// Rounds activations the way llama.cpp's CPU backend encodes them before a dot product
// with weights of type `t` (F16 -> f16, BF16 -> bf16, 32-element quants -> Q8_0,
// K-quants -> Q8_K), in place, `n_cols` per row. F32 weights leave x unchanged. Doing this
// makes the float dot product equal (up to summation order) to llama.cpp's integer one.
void round_activations(gguf::TensorType t, float* x, std::size_t n_rows, std::size_t n_cols);

// Per-worker scratch of a matmul: one dequantized weight row each.
class MatmulScratch {
 public:
  // Throws std::bad_alloc.
  MatmulScratch(unsigned n_workers, std::size_t max_cols)
      : n_workers_(n_workers), max_cols_(max_cols), rows_(std::size_t{n_workers} * max_cols) {}
  unsigned n_workers() const { return n_workers_; }
  float* row(unsigned worker) { return rows_.data() + std::size_t{worker} * max_cols_; }
  std::size_t max_cols() const { return max_cols_; }

 private:
  unsigned n_workers_;
  std::size_t max_cols_;
  std::vector<float> rows_;
};

// y[t][r] = sum_k W[r][k] * x[t][k]  for t < n_tokens, r < w.n_rows.
//   x: [n_tokens][w.n_cols] (already passed through round_activations for w.type)
//   y: [n_tokens][w.n_rows]
// Rows are split across the scratch's workers; each row is dequantized once.
void matmul(const WeightMatrix& w, const float* x, std::size_t n_tokens, float* y,
            MatmulScratch& scratch);

// Float dot product with several partial sums (vectorizes without -ffast-math).
float dot(const float* a, const float* b, std::size_t n);

// IEEE half / bfloat16 round trips (round to nearest even), as the CPU converts.
float round_to_f16(float x);
float round_to_bf16(float x);

}  // namespace cyllm::model
