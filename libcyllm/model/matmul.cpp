#include "model/matmul.h"

#include <algorithm>

#include "model/repack.h"
#if CYLLM_HAVE_ONEDNN
#include "model/matmul_onednn.h"
#endif

namespace cyllm::model {

bool has_kernel(gguf::TensorType t) {
  using T = gguf::TensorType;
  return t == T::Q8_0 || t == T::Q4_0 || t == T::Q4_K || t == T::Q6_K || t == T::F16 || t == T::F32;
}

namespace {

#if CYLLM_HAVE_ONEDNN
// The smallest batches that model::matmul hands to oneDNN (see matmul() for the figures).
constexpr std::size_t kOnednnMinTokensF32 = 16;
constexpr std::size_t kOnednnMinTokensF16 = 256;
#endif

// Quantizes the activation rows, on the pool's workers for a prompt or a batch.
template <class F>
void quantize_rows(ThreadPool& pool, std::size_t n_tokens, F one) {
  if (n_tokens < 8) {
    for (std::size_t t = 0; t < n_tokens; ++t) one(t);
    return;
  }
  pool.parallel_for(n_tokens, 4, [&](unsigned, std::size_t b, std::size_t e) {
    for (std::size_t t = b; t < e; ++t) one(t);
  });
}

}  // namespace

void matmul(const WeightMatrix& w, const float* x, std::size_t n_tokens, float* y, MatmulContext& ctx) {
#if CYLLM_HAVE_ONEDNN
  using T = gguf::TensorType;
  // oneDNN where it wins, measured by bench/gemm_bench (2 threads, AMD EPYC with AVX-512
  // VNNI/BF16, Debian's oneDNN 2.6.3; GFLOP/s over the five TinyLlama-1.1B shapes, 256x2048
  // to 32000x2048, median of 3-5 runs; a session's batches are at most kMaxBatch = 64):
  //   tokens | ours-f32  oneDNN f32 in place | ours-f16 (X8)  oneDNN f32, F16 widened per block
  //     512  | 132-149   363-384 (x2.5-2.8)  | 206-245        175-232 (x0.8-1.0)
  //     256  | 119-136   322-352 (x2.4-3.0)  |
  //      64  | 120-130   292-311 (x2.3-2.5)  | 202-278        108-119 (x0.4-0.6)
  //      16  |  85-140   163-219 (x1.3-2.0)  |
  // (ours-f16 in the file's layout, before repacking: 142-166 at 512 and 64 tokens; oneDNN
  // f32 on weights reordered once to its blocked layout, which would need a copy at load:
  // 335-422, 10-40% above in place.)
  // Its outputs differ from ours by <= 1.4e-6 of the largest output (summation order).
  // Still, only a context that opts in (set_onednn) sends F32 weights from 16 tokens on to
  // oneDNN: by default every output is formed as for one sequence alone, so a request
  // gets the same tokens alone as among concurrent ones (README), and a batch of 16
  // sequences on oneDNN would round otherwise than one sequence on our kernels. F16
  // weights stay on our kernels: repacked (the default) they are never sent, and in the
  // file's layout only from 256 tokens, which a session never batches: oneDNN 2.6 has no
  // f16 matmul without AVX512-FP16, so each block of rows is widened to f32 per call.
  // Not used at all:
  //  - bf16 (weights converted once, activations per call): 450-780 GFLOP/s, 2-3.8x
  //    ours-f16 (X8), but F16 -> bf16 drops 3 mantissa bits and the activations lose 16:
  //    outputs off by 1.9-2.8e-3 of the largest (<= 6.4e-7 for f32 with F16 widened).
  //    That changes what users get, so it could only be an opt-in (not wired).
  //  - int8 for Q8_0/Q4_0 (and the K-quants): each block of 32 (16) inputs has its own
  //    weight scale and each activation block its own; oneDNN 2.6's int8 matmul scales
  //    whole output columns (or the whole tensor), so its int32 sums cannot run across
  //    blocks: it would take one GEMM per 32 inputs.
  // Debian's libdnnl runs on OpenMP (libgomp), beside the ThreadPool, not on it; its
  // threads spin a while after each product while our pool starts the next step (not
  // seen by gemm_bench, which times products alone).
  const bool onednn_wins = (w.type == T::F32 && n_tokens >= kOnednnMinTokensF32) ||
                           (w.type == T::F16 && n_tokens >= kOnednnMinTokensF16);
  if (ctx.onednn_on() && !ctx.reference() && !w.x8 && onednn_wins) {
    matmul_onednn(w, x, n_tokens, y, ctx);
    return;
  }
#endif
  matmul_native(w, x, n_tokens, y, ctx);
}

void matmul_native(const WeightMatrix& w, const float* x, std::size_t n_tokens, float* y, MatmulContext& ctx) {
  const std::size_t n_cols = w.n_cols, n_rows = w.n_rows;
  const kernels::Table& k = ctx.k();
  ThreadPool& pool = ctx.pool();
  // Below this many multiply-adds per worker a thread costs more than it saves.
  constexpr std::size_t kMinWorkPerChunk = 1 << 15;
  const std::size_t work = n_cols * n_rows * n_tokens;
  const std::size_t workers = std::clamp<std::size_t>(work / kMinWorkPerChunk, 1, pool.size());
  // About 8 chunks per worker (so that a worker slowed by another process is helped by
  // the others), each a multiple of 16 rows (the kernels' tiles: 4 rows; 8 or 16 for x8 weights).
  std::size_t grain = workers == 1 ? n_rows : (n_rows + workers * 8 - 1) / (workers * 8);
  grain = std::max<std::size_t>(16, (grain + 15) / 16 * 16);

  using T = gguf::TensorType;
  if (!ctx.reference() && (w.type == T::Q8_0 || w.type == T::Q4_0)) {
    const std::size_t nb = n_cols / 32;
    kernels::BlockQ8* xq = ctx.q8(nb * n_tokens);
    quantize_rows(pool, n_tokens, [&](std::size_t t) { k.quantize_q8(x + t * n_cols, xq + t * nb, n_cols); });
    const kernels::GemmQFn fn = w.x8 ? (w.type == T::Q8_0 ? k.q8_0x8 : k.q4_0x8) : (w.type == T::Q8_0 ? k.q8_0 : k.q4_0);
    pool.parallel_for(n_rows, grain, [&](unsigned, std::size_t b, std::size_t e) {
      fn(w.data, w.row_bytes, b, e, xq, nb, n_tokens, y + b, n_rows);
    });
    return;
  }
  if (!ctx.reference() && (w.type == T::Q4_K || w.type == T::Q6_K)) {
    const std::size_t nb = n_cols / 256;
    kernels::BlockQ8K* xq = ctx.q8k(nb * n_tokens);
    quantize_rows(pool, n_tokens, [&](std::size_t t) { kernels::quantize_q8k(x + t * n_cols, xq + t * nb, n_cols); });
    const kernels::GemmKFn fn = w.type == T::Q4_K ? (w.x8 ? k.q4_Kx8 : k.q4_K) : k.q6_K;
    pool.parallel_for(n_rows, grain, [&](unsigned, std::size_t b, std::size_t e) {
      fn(w.data, w.row_bytes, b, e, xq, nb, n_tokens, y + b, n_rows);
    });
    return;
  }
  if (!ctx.reference() && (w.type == T::F16 || w.type == T::F32)) {
    const kernels::GemmFFn fn = w.type == T::F16 ? (w.x8 ? k.f16x8 : k.f16) : k.f32;
    // Rows of a batch 64 bytes further apart than their length, from a 64-byte boundary:
    // rows a multiple of 4 KiB apart (2048 floats, say) would share L1 sets.
    const float* xs = x;
    std::size_t ldx = n_cols;
    if (n_tokens > 1) {
      ldx = n_cols + 16;
      float* p = ctx.padded(n_tokens * ldx);
      for (std::size_t t = 0; t < n_tokens; ++t) std::copy(x + t * n_cols, x + (t + 1) * n_cols, p + t * ldx);
      xs = p;
    }
    pool.parallel_for(n_rows, grain, [&](unsigned, std::size_t b, std::size_t e) {
      fn(w.data, w.row_bytes, b, e, xs, ldx, n_cols, n_tokens, y + b, n_rows);
    });
    return;
  }
  CYLLM_ASSERT(n_cols <= ctx.max_cols());
  pool.parallel_for(n_rows, grain, [&](unsigned worker, std::size_t b, std::size_t e) {
    float* row = ctx.row(worker);
    for (std::size_t r = b; r < e; ++r) {
      const std::byte* enc = w.data + r * w.row_bytes;
      if (w.x8) {
        std::byte* out = ctx.encoded_row(worker, w.row_bytes);
        unpack_row_x8(w.type, w.data, w.row_bytes, r, out);
        enc = out;
      }
      gguf::dequantize_row(w.type, enc, row, static_cast<std::int64_t>(n_cols));
      for (std::size_t t = 0; t < n_tokens; ++t) y[t * n_rows + r] = k.dot_f32(row, x + t * n_cols, n_cols);
    }
  });
}

}  // namespace cyllm::model
