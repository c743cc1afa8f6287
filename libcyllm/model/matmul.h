// Matrix products over weights stored in any GGUF type, and a minimal parallel loop.
//
// Design goals: obviously correct and reasonably fast without SIMD intrinsics; each
// weight row is dequantized once per call (so once per prompt batch, not once per token).
// Activations stay f32. llama.cpp's CPU backend rounds them to f16 / Q8_0 / Q8_K first;
// emulating that was measured on the tiny-llama parity files and did not bring the logits
// closer to llama.cpp's (F16 0.0016 -> 0.0022, Q6_K 0.031 -> 0.040, others unchanged), so
// it is not done.
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
//   x: [n_tokens][w.n_cols]
//   y: [n_tokens][w.n_rows]
// Rows are split across the scratch's workers; each row is dequantized once.
void matmul(const WeightMatrix& w, const float* x, std::size_t n_tokens, float* y,
            MatmulScratch& scratch);

// Float dot product accumulated in 8 partial sums.
float dot(const float* a, const float* b, std::size_t n);

}  // namespace cyllm::model
