// oneDNN's f32 matmul for the float weights of a prompt batch (compiled only when meson
// finds oneDNN: CYLLM_HAVE_ONEDNN).
//
// Design goals: the same results as the native kernels up to f32 rounding (no bf16, no
// change of what users get), weights used in place (no copy at load): F32 rows are
// oneDNN's {K, N} weights in `ba` order as they lie; F16 rows are widened to f32 (exact)
// a block of rows at a time (F16C, on the pool's workers), each block multiplied as it comes.
// Non-goals: quantized weights (Q8_0/Q4_0/K-quants scale each block of 16-32 inputs; a
// oneDNN 2.6 int8 matmul scales whole output columns, so the sums would have to stop at
// every block); decoding (one row: the native kernels stream the weights as fast).
// model::matmul decides which products come here (figures at its dispatch).
// oneDNN 2.6 from Debian runs on OpenMP threads, not on the ThreadPool: the calling
// thread sets OpenMP's thread count to the pool's size for the call (onednn_set_threads).
#pragma once

#include <cstddef>

#include "model/matmul.h"

namespace cyllm::model {

// y[t][r] = sum_k W[r][k] * x[t][k] by oneDNN; w.type F16 or F32 in the file's layout.
// Throws std::bad_alloc; a oneDNN failure is a bug (CYLLM_ASSERT).
void matmul_onednn(const WeightMatrix& w, const float* x, std::size_t n_tokens, float* y, MatmulContext& ctx);

// The number of threads oneDNN's products use (its OpenMP runtime's, found at run time).
void onednn_set_threads(int n);

}  // namespace cyllm::model
