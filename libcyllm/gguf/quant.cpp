// Reference (scalar) dequantization and round-to-nearest quantization of the ggml block
// formats. These loops define the numbers; fast kernels elsewhere must match them.
//
// Block layouts (little-endian; "f16" is an IEEE half):
//   q4_0 (32 elems, 18 B): f16 d | u8 qs[16]      x[j] = d*((qs[j]&15)-8), x[j+16] = d*((qs[j]>>4)-8)
//   q4_1 (32, 20):  f16 d, f16 m | u8 qs[16]       x = d*q + m
//   q5_0 (32, 22):  f16 d | u8 qh[4] | u8 qs[16]   5th bit of x[j] is bit j of qh (j<32); q-16
//   q5_1 (32, 24):  f16 d, f16 m | qh[4] | qs[16]  x = d*q + m
//   q8_0 (32, 34):  f16 d | i8 qs[32]              x = d*q
//   q8_1 (32, 36):  f16 d, f16 s (= d*sum q) | i8 qs[32]
//   q4_K (256, 144): f16 d, f16 dmin | u8 scales[12] | u8 qs[128]
//     8 sub-blocks of 32; sub-block j has a 6-bit scale sc_j and 6-bit min m_j:
//       j<4: sc = scales[j]&63,  m = scales[j+4]&63
//       j>=4: sc = (scales[j+4]&15) | (scales[j-4]>>6)<<4,  m = (scales[j+4]>>4) | (scales[j]>>6)<<4
//     x = d*sc_j*q - dmin*m_j. Each 64 elements use 32 bytes of qs: low nibbles for the
//     first 32 (sub-block 2i), high nibbles for the next 32 (sub-block 2i+1).
//   q5_K (256, 176): as q4_K plus u8 qh[32] before qs; the 5th bit of element l of
//     sub-block j is bit j of qh[l].
//   q6_K (256, 210): u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d; 16 sub-blocks of 16,
//     x = d*scales[s]*(q-32), q = 4 bits from ql + 2 bits from qh; per 128 elements
//     (64 ql, 32 qh, 8 scales), element l (l<32) of the four 32-element quarters takes
//     ql[l]&15, ql[l+32]&15, ql[l]>>4, ql[l+32]>>4 and bits 0-1, 2-3, 4-5, 6-7 of qh[l].
//   q8_K (256, 292): f32 d | i8 qs[256] | i16 bsums[16]
//   q2_K (256, 84): u8 scales[16] | u8 qs[64] | f16 d, f16 dmin; 16 sub-blocks of 16,
//     scales[s] = 4-bit scale | 4-bit min << 4; x = d*sc*q - dmin*m, q 2 bits. Element
//     e = 128n + 32k + l (l<32) has q = (qs[32n+l] >> 2k) & 3 and sub-block 8n + 2k + l/16.
//   q3_K (256, 110): u8 hmask[32] | u8 qs[64] | u8 scales[12] | f16 d; the same 2-bit
//     planes as q2_K, minus 4 where bit (4n+k) of hmask[l] is clear; sixteen 6-bit scales
//     (minus 32): low nibbles in scales[0..7] (s<8) or their high nibbles (s>=8), the
//     top 2 bits in scales[8..11] (see scale_q3_K).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cyllm/gguf.h"
#include "gguf/half.h"

namespace cyllm::gguf {

namespace {

using u8 = std::uint8_t;

float h(const u8* p) { return fp16_to_fp32(load_u16(p)); }
void put_h(u8* p, float f) {
  const std::uint16_t v = fp32_to_fp16(f);
  std::memcpy(p, &v, 2);
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

// ---- dequantization, one block at a time ----

void deq_q4_0(const u8* b, float* y) {
  const float d = h(b);
  const u8* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>((qs[j] & 15) - 8);
    y[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
  }
}

void deq_q4_1(const u8* b, float* y) {
  const float d = h(b), m = h(b + 2);
  const u8* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(qs[j] & 15) + m;
    y[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
  }
}

void deq_q5(const u8* b, float* y, bool has_min) {
  const float d = h(b), m = has_min ? h(b + 2) : 0.0f;
  const u8* p = b + (has_min ? 4 : 2);
  const std::uint32_t qh = load_u32(p);
  const u8* qs = p + 4;
  const int bias = has_min ? 0 : 16;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 15) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = d * static_cast<float>(lo - bias) + m;
    y[j + 16] = d * static_cast<float>(hi - bias) + m;
  }
}

void deq_q8(const u8* b, float* y, int header) {
  const float d = h(b);
  const auto* qs = reinterpret_cast<const std::int8_t*>(b + header);
  for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(qs[j]);
}

void deq_q4_K(const u8* b, float* y) {
  const float d = h(b), dmin = h(b + 2);
  const u8* scales = b + 4;
  const u8* qs = b + 16;
  for (int i = 0; i < 4; ++i) {  // 64 elements, 32 bytes of qs each
    int sc0, m0, sc1, m1;
    scale_min_k4(2 * i, scales, sc0, m0);
    scale_min_k4(2 * i + 1, scales, sc1, m1);
    const float d0 = d * static_cast<float>(sc0), mm0 = dmin * static_cast<float>(m0);
    const float d1 = d * static_cast<float>(sc1), mm1 = dmin * static_cast<float>(m1);
    for (int l = 0; l < 32; ++l) {
      y[64 * i + l] = d0 * static_cast<float>(qs[32 * i + l] & 15) - mm0;
      y[64 * i + 32 + l] = d1 * static_cast<float>(qs[32 * i + l] >> 4) - mm1;
    }
  }
}

void deq_q5_K(const u8* b, float* y) {
  const float d = h(b), dmin = h(b + 2);
  const u8* scales = b + 4;
  const u8* qh = b + 16;
  const u8* qs = b + 48;
  for (int i = 0; i < 4; ++i) {
    int sc0, m0, sc1, m1;
    scale_min_k4(2 * i, scales, sc0, m0);
    scale_min_k4(2 * i + 1, scales, sc1, m1);
    const float d0 = d * static_cast<float>(sc0), mm0 = dmin * static_cast<float>(m0);
    const float d1 = d * static_cast<float>(sc1), mm1 = dmin * static_cast<float>(m1);
    for (int l = 0; l < 32; ++l) {
      const int lo = (qs[32 * i + l] & 15) | (((qh[l] >> (2 * i)) & 1) << 4);
      const int hi = (qs[32 * i + l] >> 4) | (((qh[l] >> (2 * i + 1)) & 1) << 4);
      y[64 * i + l] = d0 * static_cast<float>(lo) - mm0;
      y[64 * i + 32 + l] = d1 * static_cast<float>(hi) - mm1;
    }
  }
}

void deq_q6_K(const u8* b, float* y) {
  const u8* ql = b;
  const u8* qh = b + 128;
  const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192);
  const float d = h(b + 208);
  for (int n = 0; n < 2; ++n) {  // 128 elements each
    for (int l = 0; l < 32; ++l) {
      const int s = l / 16;
      const int q1 = ((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[s] * q1);
      y[l + 32] = d * static_cast<float>(sc[s + 2] * q2);
      y[l + 64] = d * static_cast<float>(sc[s + 4] * q3);
      y[l + 96] = d * static_cast<float>(sc[s + 6] * q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

void deq_q2_K(const u8* b, float* y) {
  const u8* scales = b;
  const u8* qs = b + 16;
  const float d = h(b + 80), dmin = h(b + 82);
  for (int n = 0; n < 2; ++n)
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l) {
        const int s = scales[8 * n + 2 * k + l / 16];
        const int q = (qs[32 * n + l] >> (2 * k)) & 3;
        y[128 * n + 32 * k + l] = d * static_cast<float>((s & 15) * q) - dmin * static_cast<float>(s >> 4);
      }
}

// The 6-bit scale s (0..15) of a q3_K block, minus 32: the low 4 bits are nibble s/8 of
// scales[s%8], the top 2 bits are bits 2*(s/4) of scales[8 + s%4].
int scale_q3_K(const u8* scales, int s) {
  const int lo = s < 8 ? scales[s] & 15 : scales[s - 8] >> 4;
  const int hi = (scales[8 + s % 4] >> (2 * (s / 4))) & 3;
  return (lo | (hi << 4)) - 32;
}

void deq_q3_K(const u8* b, float* y) {
  const u8* hmask = b;
  const u8* qs = b + 32;
  const u8* scales = b + 96;
  const float d = h(b + 108);
  for (int n = 0; n < 2; ++n)
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l) {
        const int sc = scale_q3_K(scales, 8 * n + 2 * k + l / 16);
        const int q = ((qs[32 * n + l] >> (2 * k)) & 3) - ((hmask[l] >> (4 * n + k)) & 1 ? 0 : 4);
        y[128 * n + 32 * k + l] = d * static_cast<float>(sc * q);
      }
}

void deq_q8_K(const u8* b, float* y) {
  const float d = bits_float(load_u32(b));
  const auto* qs = reinterpret_cast<const std::int8_t*>(b + 4);
  for (int j = 0; j < 256; ++j) y[j] = d * static_cast<float>(qs[j]);
}

// ---- round-to-nearest quantization, one block at a time ----

int nearest(float x) { return static_cast<int>(std::nearbyint(x)); }

// The value of largest magnitude, with its sign.
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j)
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  return max;
}

// Symmetric 4/5-bit: d = max / -(2^(bits-1)) maps the extreme value to code 0 exactly.
void q_sym(const float* x, u8* b, int bits) {
  const int levels = 1 << bits, bias = levels / 2;
  put_h(b, signed_absmax(x, 32) / static_cast<float>(-bias));
  const float d = h(b);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  int q[32];
  for (int j = 0; j < 32; ++j) q[j] = std::clamp(nearest(x[j] * id) + bias, 0, levels - 1);
  u8* qs = b + (bits == 5 ? 6 : 2);
  std::uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<u8>((q[j] & 15) | ((q[j + 16] & 15) << 4));
    qh |= static_cast<std::uint32_t>(q[j] >> 4) << j;
    qh |= static_cast<std::uint32_t>(q[j + 16] >> 4) << (j + 16);
  }
  if (bits == 5) std::memcpy(b + 2, &qh, 4);
}

// Asymmetric 4/5-bit: x = d*q + m with m = min, d = (max-min)/(levels-1).
void q_asym(const float* x, u8* b, int bits) {
  const int levels = 1 << bits;
  float lo = x[0], hi = x[0];
  for (int j = 1; j < 32; ++j) {
    lo = std::min(lo, x[j]);
    hi = std::max(hi, x[j]);
  }
  put_h(b, (hi - lo) / static_cast<float>(levels - 1));
  put_h(b + 2, lo);
  const float d = h(b), m = h(b + 2);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  int q[32];
  for (int j = 0; j < 32; ++j) q[j] = std::clamp(nearest((x[j] - m) * id), 0, levels - 1);
  u8* qs = b + (bits == 5 ? 8 : 4);
  std::uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<u8>((q[j] & 15) | ((q[j + 16] & 15) << 4));
    qh |= static_cast<std::uint32_t>(q[j] >> 4) << j;
    qh |= static_cast<std::uint32_t>(q[j + 16] >> 4) << (j + 16);
  }
  if (bits == 5) std::memcpy(b + 4, &qh, 4);
}

void q_q8_0(const float* x, u8* b) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  put_h(b, amax / 127.0f);
  const float d = h(b);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < 32; ++j) {
    const auto q = static_cast<std::int8_t>(std::clamp(nearest(x[j] * id), -127, 127));
    std::memcpy(b + 2 + j, &q, 1);
  }
}

// q4_K / q5_K: per 32-element sub-block x ~ s*q - m (m >= 0, q in 0..levels-1), then s
// and m are themselves quantized to 6 bits against the block's d and dmin.
void q_k_asym(const float* x, u8* b, int bits) {
  const int levels = 1 << bits;
  float sub_scale[8], sub_min[8];
  for (int j = 0; j < 8; ++j) {
    float lo = 0.0f, hi = 0.0f;  // include 0 so that m >= 0
    for (int l = 0; l < 32; ++l) {
      lo = std::min(lo, x[32 * j + l]);
      hi = std::max(hi, x[32 * j + l]);
    }
    sub_scale[j] = (hi - lo) / static_cast<float>(levels - 1);
    sub_min[j] = -lo;
  }
  const float max_scale = *std::max_element(sub_scale, sub_scale + 8);
  const float max_min = *std::max_element(sub_min, sub_min + 8);
  put_h(b, max_scale / 63.0f);
  put_h(b + 2, max_min / 63.0f);
  const float d = h(b), dmin = h(b + 2);
  int ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    // Round the scale up rather than to nearest where that would clip the top code.
    ls[j] = d > 0.0f ? std::clamp(static_cast<int>(std::ceil(sub_scale[j] / d - 1e-3f)), 0, 63) : 0;
    lm[j] = dmin > 0.0f ? std::clamp(nearest(sub_min[j] / dmin), 0, 63) : 0;
  }
  u8* scales = b + 4;
  std::memset(scales, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      scales[j] = static_cast<u8>(ls[j]);
      scales[j + 4] = static_cast<u8>(lm[j]);
    } else {
      scales[j + 4] = static_cast<u8>((ls[j] & 15) | ((lm[j] & 15) << 4));
      scales[j - 4] |= static_cast<u8>((ls[j] >> 4) << 6);
      scales[j] |= static_cast<u8>((lm[j] >> 4) << 6);
    }
  }
  u8* qh = b + 16;
  u8* qs = b + (bits == 5 ? 48 : 16);
  if (bits == 5) std::memset(qh, 0, 32);
  for (int j = 0; j < 8; ++j) {
    const float s = d * static_cast<float>(ls[j]), m = dmin * static_cast<float>(lm[j]);
    const float is = s != 0.0f ? 1.0f / s : 0.0f;
    for (int l = 0; l < 32; ++l) {
      const int q = std::clamp(nearest((x[32 * j + l] + m) * is), 0, levels - 1);
      u8& byte = qs[32 * (j / 2) + l];
      if (j % 2 == 0)
        byte = static_cast<u8>(q & 15);
      else
        byte = static_cast<u8>(byte | ((q & 15) << 4));
      if (bits == 5) qh[l] = static_cast<u8>(qh[l] | ((q >> 4) << j));
    }
  }
}

// q6_K: per 16-element sub-block x ~ s*(q-32) with q-32 in -32..31, s = d*scale (i8).
void q_q6_K(const float* x, u8* b) {
  float sub_scale[16];
  for (int j = 0; j < 16; ++j) {
    float amax = 0.0f;
    for (int l = 0; l < 16; ++l) amax = std::max(amax, std::fabs(x[16 * j + l]));
    sub_scale[j] = amax / 31.0f;
  }
  const float max_scale = *std::max_element(sub_scale, sub_scale + 16);
  put_h(b + 208, max_scale / 127.0f);
  const float d = h(b + 208);
  auto* sc = reinterpret_cast<std::int8_t*>(b + 192);
  int q[256];
  for (int j = 0; j < 16; ++j) {
    const int ls = d > 0.0f ? std::clamp(static_cast<int>(std::ceil(sub_scale[j] / d - 1e-3f)), 0, 127) : 0;
    sc[j] = static_cast<std::int8_t>(ls);
    const float s = d * static_cast<float>(ls);
    const float is = s != 0.0f ? 1.0f / s : 0.0f;
    for (int l = 0; l < 16; ++l) q[16 * j + l] = std::clamp(nearest(x[16 * j + l] * is), -32, 31) + 32;
  }
  u8* ql = b;
  u8* qh = b + 128;
  for (int n = 0; n < 2; ++n) {
    const int* qq = q + 128 * n;
    for (int l = 0; l < 32; ++l) {
      ql[64 * n + l] = static_cast<u8>((qq[l] & 15) | ((qq[l + 64] & 15) << 4));
      ql[64 * n + l + 32] = static_cast<u8>((qq[l + 32] & 15) | ((qq[l + 96] & 15) << 4));
      qh[32 * n + l] = static_cast<u8>((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) | ((qq[l + 64] >> 4) << 4) |
                                       ((qq[l + 96] >> 4) << 6));
    }
  }
}

}  // namespace

void dequantize_row(TensorType t, const void* src, float* dst, std::int64_t n) {
  const TypeTraits* tr = type_traits(static_cast<std::uint32_t>(t));
  CYLLM_ASSERT(tr != nullptr && n >= 0 && n % tr->block_elems == 0);
  const auto* s = static_cast<const u8*>(src);
  switch (t) {
    case TensorType::F32: std::memcpy(dst, src, static_cast<std::size_t>(n) * 4); return;
    case TensorType::F16:
      for (std::int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(load_u16(s + 2 * i));
      return;
    case TensorType::BF16:
      for (std::int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(load_u16(s + 2 * i));
      return;
    default: break;
  }
  const std::int64_t nb = n / tr->block_elems;
  for (std::int64_t i = 0; i < nb; ++i) {
    const u8* b = s + i * tr->block_bytes;
    float* y = dst + i * tr->block_elems;
    switch (t) {
      case TensorType::Q4_0: deq_q4_0(b, y); break;
      case TensorType::Q4_1: deq_q4_1(b, y); break;
      case TensorType::Q5_0: deq_q5(b, y, false); break;
      case TensorType::Q5_1: deq_q5(b, y, true); break;
      case TensorType::Q8_0: deq_q8(b, y, 2); break;
      case TensorType::Q8_1: deq_q8(b, y, 4); break;
      case TensorType::Q4_K: deq_q4_K(b, y); break;
      case TensorType::Q5_K: deq_q5_K(b, y); break;
      case TensorType::Q6_K: deq_q6_K(b, y); break;
      case TensorType::Q8_K: deq_q8_K(b, y); break;
      case TensorType::Q2_K: deq_q2_K(b, y); break;
      case TensorType::Q3_K: deq_q3_K(b, y); break;
      default: CYLLM_ASSERT(!"dequantize_row: unknown type");
    }
  }
}

bool quantize_row(TensorType t, const float* src, void* dst, std::int64_t n) {
  const TypeTraits* tr = type_traits(static_cast<std::uint32_t>(t));
  if (tr == nullptr || n < 0 || n % tr->block_elems != 0) return false;
  auto* d = static_cast<u8*>(dst);
  switch (t) {
    case TensorType::F32: std::memcpy(dst, src, static_cast<std::size_t>(n) * 4); return true;
    case TensorType::F16:
      for (std::int64_t i = 0; i < n; ++i) {
        const std::uint16_t v = fp32_to_fp16(src[i]);
        std::memcpy(d + 2 * i, &v, 2);
      }
      return true;
    case TensorType::BF16:
      for (std::int64_t i = 0; i < n; ++i) {
        const std::uint16_t v = fp32_to_bf16(src[i]);
        std::memcpy(d + 2 * i, &v, 2);
      }
      return true;
    case TensorType::Q4_0: case TensorType::Q4_1: case TensorType::Q5_0: case TensorType::Q5_1:
    case TensorType::Q8_0: case TensorType::Q4_K: case TensorType::Q5_K: case TensorType::Q6_K:
      break;
    default: return false;
  }
  const std::int64_t nb = n / tr->block_elems;
  for (std::int64_t i = 0; i < nb; ++i) {
    const float* x = src + i * tr->block_elems;
    u8* b = d + i * tr->block_bytes;
    switch (t) {
      case TensorType::Q4_0: q_sym(x, b, 4); break;
      case TensorType::Q5_0: q_sym(x, b, 5); break;
      case TensorType::Q4_1: q_asym(x, b, 4); break;
      case TensorType::Q5_1: q_asym(x, b, 5); break;
      case TensorType::Q8_0: q_q8_0(x, b); break;
      case TensorType::Q4_K: q_k_asym(x, b, 4); break;
      case TensorType::Q5_K: q_k_asym(x, b, 5); break;
      case TensorType::Q6_K: q_q6_K(x, b); break;
      default: return false;
    }
  }
  return true;
}

}  // namespace cyllm::gguf
