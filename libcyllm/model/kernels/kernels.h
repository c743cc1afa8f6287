// Matrix kernels of the forward pass, one table per instruction set, chosen at run time.
//
// Quantized weights (Q8_0, Q4_0, Q4_K, Q6_K) are not dequantized: the activation rows are
// quantized once per projection to BlockQ8 (32 int8 with an f32 scale and their sum; for
// the K-quants BlockQ8K, 256 int8 with sums per 16) and each weight block is dotted with
// them in integers (AVX-512 VNNI vpdpbusd, AVX2 vpmaddubsw), scaled
// to float per block. Float weights (F16, F32) are dotted with f32 activations (F16C,
// FMA). Every kernel has a scalar twin (the Scalar table) that computes the same sums in
// plain C++; the tests check that each fast kernel agrees with it.
//
// Matrix-matrix: gemm_*(w, ..., x, n, y) computes rows [r0, r1) of the weight against n
// activation rows; several activation rows share each loaded weight block (tiles of
// 2 weight rows x 4 activation rows), so a prompt reads the weights once per 4 tokens
// from cache, not once per token from memory.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cyllm::model::kernels {

enum class Isa { Scalar, Avx2, Avx512 };

// The best instruction set of this CPU (cpuid): Avx512 needs AVX-512 F/BW/VL/VNNI with
// FMA and F16C, Avx2 needs AVX2/FMA/F16C.
Isa detect_isa();
const char* isa_name(Isa isa);  // "scalar", "avx2", "avx512-vnni"

struct BlockQ8 {
  float d;            // scale: x ~= d * qs
  std::int32_t sum;   // sum of qs
  std::int8_t qs[32];
};

// The activation blocks of the K-quants: 256 int8 with an f32 scale and the sums of each 16.
struct BlockQ8K {
  float d;
  std::int8_t qs[256];
  std::int16_t bsums[16];
};

// x[n_cols] (n_cols a multiple of 256) -> n_cols / 256 blocks, as quantize_q8 per 32.
void quantize_q8k(const float* x, BlockQ8K* out, std::size_t n_cols);

// x[n_cols] (n_cols a multiple of 32) -> n_cols / 32 blocks: d = max|x| / 127,
// qs = round-to-nearest-even(x / d).
using QuantizeFn = void (*)(const float* x, BlockQ8* out, std::size_t n_cols);
// y[t * ldy + r - r0] = dot(W row r, x row t) for r in [r0, r1), t < n.
// w: weight rows of row_bytes; x: n rows of nb blocks (quantized) or n_cols floats.
using GemmQFn = void (*)(const std::byte* w, std::size_t row_bytes, std::size_t r0, std::size_t r1,
                         const BlockQ8* x, std::size_t nb, std::size_t n, float* y, std::size_t ldy);
using GemmKFn = void (*)(const std::byte* w, std::size_t row_bytes, std::size_t r0, std::size_t r1,
                         const BlockQ8K* x, std::size_t nb, std::size_t n, float* y, std::size_t ldy);
// Float kernels: x holds n rows of n_cols floats, ldx apart (matmul pads the rows of a
// batch so that they are not a multiple of 4 KiB apart: rows that map to the same L1 sets
// evict each other).
using GemmFFn = void (*)(const std::byte* w, std::size_t row_bytes, std::size_t r0, std::size_t r1,
                         const float* x, std::size_t ldx, std::size_t n_cols, std::size_t n, float* y,
                         std::size_t ldy);

struct Table {
  Isa isa;
  QuantizeFn quantize_q8;
  GemmQFn q8_0;
  GemmQFn q4_0;
  // The same on weights repacked to model/repack.h's X8 layout (r0, r1 multiples of 8;
  // row_bytes that of one row in the GGUF encoding).
  GemmQFn q8_0x8;
  GemmQFn q4_0x8;
  GemmKFn q4_K;
  GemmKFn q6_K;
  // Q4_K weights in the X8 layout (r0, r1 multiples of 8; nb blocks of 256 per row).
  GemmKFn q4_Kx8;
  GemmFFn f16;
  GemmFFn f32;
  // F16 weights in the X8 layout (r0, r1 multiples of 8; n_cols a multiple of 16; row_bytes
  // that of one row): each output is one chain of multiply-adds over the 16-column pieces
  // in order, then one fixed sum of its lanes, whatever the tile.
  GemmFFn f16x8;
  // Attention over an f16 cache, for the G query heads that share one KV head (GQA):
  //   scores_f16: s[j * G + g] = scale * dot(q[g * hd ..], k[j * ld ..])  for j < n_pos
  //   mix_f16:    out[g * hd + d] = sum_j p[j * G + g] * v[j * ld + d]   (out overwritten)
  // Each K and V row is converted from f16 once for all G heads.
  void (*scores_f16)(const float* q, std::size_t G, std::size_t hd, const std::uint16_t* k, std::size_t ld,
                     std::size_t n_pos, float scale, float* s);
  void (*mix_f16)(const float* p, std::size_t G, std::size_t hd, const std::uint16_t* v, std::size_t ld,
                  std::size_t n_pos, float* out);
  // One head at a time: dot(q, k) and y += a * v.
  float (*dot_f16)(const float* q, const std::uint16_t* k, std::size_t n);
  void (*axpy_f16)(float* y, float a, const std::uint16_t* v, std::size_t n);
  float (*dot_f32)(const float* a, const float* b, std::size_t n);
  void (*axpy_f32)(float* y, float a, const float* v, std::size_t n);
};

// The table of `isa` (Scalar when the build has no such kernels).
const Table& table(Isa isa);

// Per-ISA tables (defined in kernels_<isa>.cpp; null when not built for this target).
const Table* scalar_table();
const Table* avx2_table();
const Table* avx512_table();

}  // namespace cyllm::model::kernels
