// The scalar twins: the same sums as the SIMD kernels, in plain C++. Also the fallback on
// CPUs without AVX2 and the kernels of CYLLM_KERNELS=scalar.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "gguf/half.h"
#include "model/kernels/kernels.h"

namespace cyllm::model::kernels {
namespace {

using u8 = std::uint8_t;

void quantize_q8(const float* x, BlockQ8* out, std::size_t n_cols) {
  for (std::size_t b = 0; b < n_cols / 32; ++b) {
    const float* v = x + b * 32;
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    BlockQ8& o = out[b];
    o.d = d;
    o.sum = 0;
    for (int j = 0; j < 32; ++j) {
      o.qs[j] = static_cast<std::int8_t>(std::nearbyint(v[j] * id));
      o.sum += o.qs[j];
    }
  }
}

// One weight row against one activation row, per block: d_w * d_x * integer dot.
template <int kBytes, int (*Dot)(const u8*, const BlockQ8&)>
void gemm_q(const std::byte* w, std::size_t row_bytes, std::size_t r0, std::size_t r1, const BlockQ8* x,
            std::size_t nb, std::size_t n, float* y, std::size_t ldy) {
  for (std::size_t t = 0; t < n; ++t)
    for (std::size_t r = r0; r < r1; ++r) {
      const u8* wr = reinterpret_cast<const u8*>(w + r * row_bytes);
      float acc = 0;
      for (std::size_t b = 0; b < nb; ++b) {
        const u8* wb = wr + b * kBytes;
        const BlockQ8& xb = x[t * nb + b];
        acc += gguf::fp16_to_fp32(gguf::load_u16(wb)) * xb.d * static_cast<float>(Dot(wb, xb));
      }
      y[t * ldy + (r - r0)] = acc;
    }
}

int dot_q8_0(const u8* wb, const BlockQ8& x) {
  int s = 0;
  for (int j = 0; j < 32; ++j) s += static_cast<std::int8_t>(wb[2 + j]) * x.qs[j];
  return s;
}

int dot_q4_0(const u8* wb, const BlockQ8& x) {
  int s = 0;
  for (int j = 0; j < 16; ++j) {
    s += (wb[2 + j] & 15) * x.qs[j];
    s += (wb[2 + j] >> 4) * x.qs[j + 16];
  }
  return s - 8 * x.sum;
}

// Weights in model/repack.h's X8 layout: each row's integer dot per block, then one fused
// multiply-add with d_w * d_x, as each lane of the SIMD kernels does (bit-identical).
template <bool kQ4>
void gemm_x8(const std::byte* w, std::size_t row_bytes, std::size_t r0, std::size_t r1, const BlockQ8* x,
             std::size_t nb, std::size_t n, float* y, std::size_t ldy) {
  constexpr std::size_t kGroupBlock = kQ4 ? 144 : 272;
  for (std::size_t t = 0; t < n; ++t)
    for (std::size_t r = r0; r < r1; ++r) {
      const std::size_t i = r % 8;
      const u8* g = reinterpret_cast<const u8*>(w + r / 8 * 8 * row_bytes);
      float acc = 0;
      for (std::size_t b = 0; b < nb; ++b) {
        const u8* blk = g + b * kGroupBlock;
        const BlockQ8& xb = x[t * nb + b];
        int s = 0;
        for (int p = 0; p < (kQ4 ? 4 : 8); ++p)
          for (int j = 0; j < 4; ++j) {
            const u8 q = blk[16 + 32 * p + 4 * i + j];
            if (kQ4)
              s += (q & 15) * xb.qs[4 * p + j] + (q >> 4) * xb.qs[16 + 4 * p + j];
            else
              s += static_cast<std::int8_t>(q ^ 0x80) * xb.qs[4 * p + j];
          }
        if (kQ4) s -= 8 * xb.sum;
        acc = std::fma(static_cast<float>(s), gguf::fp16_to_fp32(gguf::load_u16(blk + 2 * i)) * xb.d, acc);
      }
      y[t * ldy + (r - r0)] = acc;
    }
}

void scale_min_k4(int j, const u8* s, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// One Q4_K block against one Q8K block: d * dx * sum_j sc_j (q . x)_j - dmin * dx * sum_j m_j sum(x)_j.
float dot_q4_K(const u8* b, const BlockQ8K& x) {
  const u8* scales = b + 4;
  const u8* qs = b + 16;
  int isum = 0, msum = 0;
  for (int i = 0; i < 4; ++i) {
    int sc0, m0, sc1, m1;
    scale_min_k4(2 * i, scales, sc0, m0);
    scale_min_k4(2 * i + 1, scales, sc1, m1);
    int d0 = 0, d1 = 0;
    for (int l = 0; l < 32; ++l) {
      d0 += (qs[32 * i + l] & 15) * x.qs[64 * i + l];
      d1 += (qs[32 * i + l] >> 4) * x.qs[64 * i + 32 + l];
    }
    isum += sc0 * d0 + sc1 * d1;
    msum += m0 * (x.bsums[4 * i] + x.bsums[4 * i + 1]) + m1 * (x.bsums[4 * i + 2] + x.bsums[4 * i + 3]);
  }
  const float d = gguf::fp16_to_fp32(gguf::load_u16(b)), dmin = gguf::fp16_to_fp32(gguf::load_u16(b + 2));
  return d * x.d * static_cast<float>(isum) - dmin * x.d * static_cast<float>(msum);
}

// Q4_K weights in the X8 layout, as each lane of the SIMD kernels computes it (to the
// bit): per block, the mins' sum against the activation sums, then the sub-blocks' scaled
// integer dots, each folded into the row's float sum with one fma.
void gemm_q4_Kx8(const std::byte* w, std::size_t, std::size_t r0, std::size_t r1, const BlockQ8K* x,
                 std::size_t nb, std::size_t n, float* y, std::size_t ldy) {
  constexpr std::size_t kGroupBlock = 1184;
  for (std::size_t t = 0; t < n; ++t)
    for (std::size_t r = r0; r < r1; ++r) {
      const std::size_t i = r % 8;
      const u8* g = reinterpret_cast<const u8*>(w) + r / 8 * nb * kGroupBlock;
      float acc = 0;
      for (std::size_t b = 0; b < nb; ++b) {
        const u8* blk = g + b * kGroupBlock;
        const BlockQ8K& xb = x[t * nb + b];
        int msum = 0, isum = 0;
        for (int j = 0; j < 8; ++j) msum += blk[96 + 16 * (j / 2) + 2 * i + j % 2] * (xb.bsums[2 * j] + xb.bsums[2 * j + 1]);
        for (int j = 0; j < 8; ++j) {
          int s = 0;
          for (int p = 0; p < 8; ++p)
            for (int l = 0; l < 4; ++l) {
              const u8 q = blk[160 + 256 * (j / 2) + 32 * p + 4 * i + l];
              s += (j % 2 ? q >> 4 : q & 15) * xb.qs[32 * j + 4 * p + l];
            }
          isum += s * blk[32 + 8 * j + i];
        }
        const float d = gguf::fp16_to_fp32(gguf::load_u16(blk + 2 * i));
        const float dmin = gguf::fp16_to_fp32(gguf::load_u16(blk + 16 + 2 * i));
        acc = std::fma(-static_cast<float>(msum), dmin * xb.d, acc);
        acc = std::fma(static_cast<float>(isum), d * xb.d, acc);
      }
      y[t * ldy + (r - r0)] = acc;
    }
}

// One Q6_K block: d * dx * sum_g sc_g ((q . x)_g - 32 sum(x)_g) over 16 groups of 16.
float dot_q6_K(const u8* b, const BlockQ8K& x) {
  const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192);
  int isum = 0, bias = 0;
  for (int n = 0; n < 2; ++n) {
    const u8* ql = b + 64 * n;
    const u8* qh = b + 128 + 32 * n;
    for (int k = 0; k < 4; ++k) {
      int g[2] = {0, 0};
      for (int l = 0; l < 32; ++l) {
        const int lo = k == 0 ? ql[l] & 15 : k == 1 ? ql[l + 32] & 15 : k == 2 ? ql[l] >> 4 : ql[l + 32] >> 4;
        const int q = lo | (((qh[l] >> (2 * k)) & 3) << 4);
        g[l / 16] += q * x.qs[128 * n + 32 * k + l];
      }
      const int s0 = 8 * n + 2 * k;
      isum += sc[s0] * g[0] + sc[s0 + 1] * g[1];
    }
  }
  for (int s = 0; s < 16; ++s) bias += sc[s] * x.bsums[s];
  const float d = gguf::fp16_to_fp32(gguf::load_u16(b + 208));
  return d * x.d * static_cast<float>(isum) - d * 32.f * x.d * static_cast<float>(bias);
}

template <int kBytes, float (*Dot)(const u8*, const BlockQ8K&)>
void gemm_k(const std::byte* w, std::size_t row_bytes, std::size_t r0, std::size_t r1, const BlockQ8K* x,
            std::size_t nb, std::size_t n, float* y, std::size_t ldy) {
  for (std::size_t t = 0; t < n; ++t)
    for (std::size_t r = r0; r < r1; ++r) {
      const u8* wr = reinterpret_cast<const u8*>(w + r * row_bytes);
      float acc = 0;
      for (std::size_t b = 0; b < nb; ++b) acc += Dot(wr + b * kBytes, x[t * nb + b]);
      y[t * ldy + (r - r0)] = acc;
    }
}

float dot_f32(const float* a, const float* b, std::size_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
  float sum = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

float dot_f16(const float* q, const std::uint16_t* k, std::size_t n) {
  float s = 0;
  for (std::size_t i = 0; i < n; ++i) s += q[i] * gguf::fp16_to_fp32(k[i]);
  return s;
}

void axpy_f16(float* y, float a, const std::uint16_t* v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] += a * gguf::fp16_to_fp32(v[i]);
}

void scores_f16(const float* q, std::size_t G, std::size_t hd, const std::uint16_t* k, std::size_t ld,
                std::size_t n_pos, float scale, float* s) {
  for (std::size_t j = 0; j < n_pos; ++j)
    for (std::size_t g = 0; g < G; ++g) s[j * G + g] = scale * dot_f16(q + g * hd, k + j * ld, hd);
}

void mix_f16(const float* p, std::size_t G, std::size_t hd, const std::uint16_t* v, std::size_t ld, std::size_t n_pos,
             float* out) {
  std::fill(out, out + G * hd, 0.f);
  for (std::size_t j = 0; j < n_pos; ++j)
    for (std::size_t g = 0; g < G; ++g) axpy_f16(out + g * hd, p[j * G + g], v + j * ld, hd);
}

void axpy_f32(float* y, float a, const float* v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] += a * v[i];
}

template <bool kHalf>
void gemm_f(const std::byte* w, std::size_t row_bytes, std::size_t r0, std::size_t r1, const float* x,
            std::size_t ldx, std::size_t n_cols, std::size_t n, float* y, std::size_t ldy) {
  for (std::size_t t = 0; t < n; ++t)
    for (std::size_t r = r0; r < r1; ++r) {
      const std::byte* wr = w + r * row_bytes;
      y[t * ldy + (r - r0)] = kHalf ? dot_f16(x + t * ldx, reinterpret_cast<const std::uint16_t*>(wr), n_cols)
                                    : dot_f32(x + t * ldx, reinterpret_cast<const float*>(wr), n_cols);
    }
}

// F16 weights in the X8 layout: per output, lanes of 16 columns (two halves of 8 on AVX2),
// one chain of products each, summed as the SIMD kernels' V16::sum. Not the same bits as
// every SIMD order (the tests compare with a tolerance), but the same layout read back.
void gemm_f16x8(const std::byte* w, std::size_t row_bytes, std::size_t r0, std::size_t r1, const float* x,
                std::size_t ldx, std::size_t n_cols, std::size_t n, float* y, std::size_t ldy) {
  for (std::size_t t = 0; t < n; ++t)
    for (std::size_t r = r0; r < r1; ++r) {
      const auto* g = reinterpret_cast<const std::uint16_t*>(w + r / 8 * 8 * row_bytes) + 16 * (r % 8);
      float lane[16] = {};
      for (std::size_t c = 0; c < n_cols; c += 16)
        for (int l = 0; l < 16; ++l)
          lane[l] = std::fma(gguf::fp16_to_fp32(g[8 * c + l]), x[t * ldx + c + l], lane[l]);
      float s = 0;
      for (float v : lane) s += v;
      y[t * ldy + (r - r0)] = s;
    }
}

const Table kScalar = {Isa::Scalar, quantize_q8, gemm_q<34, dot_q8_0>, gemm_q<18, dot_q4_0>,
                       gemm_x8<false>, gemm_x8<true>,
                       gemm_k<144, dot_q4_K>, gemm_k<210, dot_q6_K>, gemm_q4_Kx8,
                       gemm_f<true>, gemm_f<false>, gemm_f16x8, scores_f16, mix_f16, dot_f16, axpy_f16, dot_f32, axpy_f32};

}  // namespace

const Table* scalar_table() { return &kScalar; }

void quantize_q8k(const float* x, BlockQ8K* out, std::size_t n_cols) {
  for (std::size_t b = 0; b < n_cols / 256; ++b) {
    const float* v = x + b * 256;
    float amax = 0;
    for (int j = 0; j < 256; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127.f;
    const float id = d != 0.f ? 1.f / d : 0.f;
    BlockQ8K& o = out[b];
    o.d = d;
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int j = 16 * g; j < 16 * g + 16; ++j) {
        o.qs[j] = static_cast<std::int8_t>(std::nearbyint(v[j] * id));
        s += o.qs[j];
      }
      o.bsums[g] = static_cast<std::int16_t>(s);
    }
  }
}

Isa detect_isa() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  // F16C has no __builtin_cpu_supports name in older compilers; every AVX2 CPU has it.
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") && avx512_table())
    return Isa::Avx512;
  if (avx2 && avx2_table()) return Isa::Avx2;
#endif
  return Isa::Scalar;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512-vnni";
    case Isa::Avx2: return "avx2";
    case Isa::Scalar: break;
  }
  return "scalar";
}

const Table& table(Isa isa) {
  const Table* t = isa == Isa::Avx512 ? avx512_table() : isa == Isa::Avx2 ? avx2_table() : nullptr;
  return t ? *t : kScalar;
}

}  // namespace cyllm::model::kernels
