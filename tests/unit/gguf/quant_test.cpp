// Quantization formats: hand-built blocks decode to known values (every type with a
// decoder), round-to-nearest quantization round-trips within each format's error bound,
// and f16/bf16 conversions are exact.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cyllm/gguf.h"

using namespace cyllm::gguf;

namespace {

using Bytes = std::vector<std::uint8_t>;

void put16(Bytes& b, std::size_t at, std::uint16_t v) { std::memcpy(b.data() + at, &v, 2); }

std::vector<float> decode(TensorType t, const Bytes& b, int n) {
  std::vector<float> y(static_cast<std::size_t>(n), -999.0f);
  dequantize_row(t, b.data(), y.data(), n);
  return y;
}

constexpr std::uint16_t kHalfOne = 0x3C00, kHalfHalf = 0x3800, kHalfQuarter = 0x3400,
                        kHalfMinusOne = 0xBC00, kHalfTwo = 0x4000;

}  // namespace

TEST_CASE("q4_0: nibbles minus 8 times d; low nibbles first") {
  Bytes b(18);
  put16(b, 0, kHalfHalf);
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<std::uint8_t>(j | ((15 - j) << 4));
  auto y = decode(TensorType::Q4_0, b, 32);
  CHECK(y[0] == -4.0f);    // 0.5 * (0 - 8)
  CHECK(y[8] == 0.0f);
  CHECK(y[15] == 3.5f);
  CHECK(y[16] == 3.5f);    // high nibble of byte 0 = 15
  CHECK(y[31] == -4.0f);
  for (int j = 0; j < 16; ++j) {
    CHECK(y[j] == 0.5f * static_cast<float>(j - 8));
    CHECK(y[j + 16] == 0.5f * static_cast<float>(7 - j));
  }
}

TEST_CASE("q4_1: nibbles times d plus m") {
  Bytes b(20);
  put16(b, 0, kHalfQuarter);
  put16(b, 2, kHalfMinusOne);
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<std::uint8_t>(j | (3 << 4));
  auto y = decode(TensorType::Q4_1, b, 32);
  CHECK(y[0] == -1.0f);
  CHECK(y[4] == 0.0f);
  CHECK(y[15] == 2.75f);
  for (int j = 16; j < 32; ++j) CHECK(y[j] == -0.25f);
}

TEST_CASE("q5_0 and q5_1: the fifth bit of element j is bit j of qh") {
  Bytes b(22, 0);
  put16(b, 0, kHalfOne);
  const std::uint32_t qh = 0x80000001u;  // element 0 and element 31 get +16
  std::memcpy(b.data() + 2, &qh, 4);
  for (int j = 0; j < 16; ++j) b[6 + j] = static_cast<std::uint8_t>(0xF0 | (j & 15));
  auto y = decode(TensorType::Q5_0, b, 32);
  CHECK(y[0] == 0.0f);      // (0 | 16) - 16
  CHECK(y[1] == -15.0f);    // 1 - 16
  CHECK(y[15] == -1.0f);
  CHECK(y[16] == -1.0f);    // 15 - 16
  CHECK(y[30] == -1.0f);
  CHECK(y[31] == 15.0f);    // (15 | 16) - 16

  Bytes c(24, 0);
  put16(c, 0, kHalfTwo);
  put16(c, 2, kHalfMinusOne);
  const std::uint32_t qh1 = 0x00010002u;  // elements 1 and 16
  std::memcpy(c.data() + 4, &qh1, 4);
  for (int j = 0; j < 16; ++j) c[8 + j] = static_cast<std::uint8_t>(1 | (2 << 4));
  auto z = decode(TensorType::Q5_1, c, 32);
  CHECK(z[0] == 1.0f);      // 2*1 - 1
  CHECK(z[1] == 33.0f);     // 2*17 - 1
  CHECK(z[16] == 35.0f);    // 2*18 - 1
  CHECK(z[17] == 3.0f);     // 2*2 - 1
}

TEST_CASE("q8_0 and q8_1: signed bytes times d") {
  Bytes b(34);
  put16(b, 0, kHalfHalf);
  for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(j * 8 - 128));
  auto y = decode(TensorType::Q8_0, b, 32);
  CHECK(y[0] == -64.0f);
  CHECK(y[16] == 0.0f);
  CHECK(y[31] == 60.0f);
  Bytes c(36);
  put16(c, 0, kHalfTwo);
  put16(c, 2, 0);
  for (int j = 0; j < 32; ++j) c[4 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(-j));
  auto z = decode(TensorType::Q8_1, c, 32);
  CHECK(z[0] == 0.0f);
  CHECK(z[31] == -62.0f);
}

namespace {

// Packs eight 6-bit scales and mins the way q4_K/q5_K store them.
void pack_scales(std::uint8_t* s, const int sc[8], const int m[8]) {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<std::uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<std::uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<std::uint8_t>((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
}

}  // namespace

TEST_CASE("q4_K: 6-bit scales and mins, 64 elements per 32 bytes of nibbles") {
  Bytes b(144, 0);
  put16(b, 0, kHalfHalf);     // d
  put16(b, 2, kHalfQuarter);  // dmin
  const int sc[8] = {1, 2, 3, 63, 17, 33, 50, 63};
  const int m[8] = {0, 4, 8, 12, 16, 47, 32, 63};
  pack_scales(b.data() + 4, sc, m);
  // Sub-block pair i uses qs[32i..32i+31]: low nibble = l % 16, high nibble = 15 - l % 16.
  for (int i = 0; i < 4; ++i)
    for (int l = 0; l < 32; ++l) b[16 + 32 * i + l] = static_cast<std::uint8_t>((l % 16) | ((15 - l % 16) << 4));
  auto y = decode(TensorType::Q4_K, b, 256);
  for (int j = 0; j < 8; ++j) {
    CAPTURE(j);
    for (int l = 0; l < 32; ++l) {
      const int q = j % 2 == 0 ? l % 16 : 15 - l % 16;
      CHECK(y[32 * j + l] == 0.5f * static_cast<float>(sc[j] * q) - 0.25f * static_cast<float>(m[j]));
    }
  }
  // Spot values, computed by hand.
  CHECK(y[1] == 0.5f);                 // sub-block 0: 0.5*1*1 - 0
  CHECK(y[32] == 15.0f - 1.0f);        // sub-block 1: 0.5*2*15 - 0.25*4
  CHECK(y[32 * 5 + 2] == 0.5f * 33 * 13 - 0.25f * 47);
  CHECK(y[255] == 0.0f - 0.25f * 63);  // sub-block 7, q = 15 - 15
}

TEST_CASE("q5_K: like q4_K with bit j of qh[l] as the fifth bit of sub-block j") {
  Bytes b(176, 0);
  put16(b, 0, kHalfOne);
  put16(b, 2, kHalfOne);
  const int sc[8] = {1, 1, 2, 2, 16, 16, 63, 63};
  const int m[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  pack_scales(b.data() + 4, sc, m);
  for (int l = 0; l < 32; ++l) b[16 + l] = static_cast<std::uint8_t>(l % 2 == 0 ? 0x55 : 0xAA);
  for (int l = 0; l < 128; ++l) b[48 + l] = 0x21;  // low nibble 1, high nibble 2
  auto y = decode(TensorType::Q5_K, b, 256);
  for (int j = 0; j < 8; ++j) {
    CAPTURE(j);
    for (int l = 0; l < 32; ++l) {
      const int hi = ((l % 2 == 0 ? 0x55 : 0xAA) >> j) & 1;
      const int q = (j % 2 == 0 ? 1 : 2) + 16 * hi;
      CHECK(y[32 * j + l] == static_cast<float>(sc[j] * q - m[j]));
    }
  }
  CHECK(y[0] == 17.0f);          // sc 1, q = 1 + 16 (bit 0 of 0x55), m 0
  CHECK(y[1] == 1.0f);           // bit 0 of 0xAA is 0
  CHECK(y[33] == 18.0f - 1.0f);  // sub-block 1: bit 1 of 0xAA
}

TEST_CASE("q6_K: 4 low bits from ql, 2 high bits from qh, signed 8-bit scales") {
  Bytes b(210, 0);
  // Quant values (0..63, stored) chosen per element, then packed as q6_K does.
  std::vector<int> q(256);
  for (int i = 0; i < 256; ++i) q[i] = (i * 7 + 3) % 64;
  for (int n = 0; n < 2; ++n)
    for (int l = 0; l < 32; ++l) {
      const int* qq = q.data() + 128 * n;
      b[64 * n + l] = static_cast<std::uint8_t>((qq[l] & 15) | ((qq[l + 64] & 15) << 4));
      b[64 * n + l + 32] = static_cast<std::uint8_t>((qq[l + 32] & 15) | ((qq[l + 96] & 15) << 4));
      b[128 + 32 * n + l] = static_cast<std::uint8_t>((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) |
                                                      ((qq[l + 64] >> 4) << 4) | ((qq[l + 96] >> 4) << 6));
    }
  for (int s = 0; s < 16; ++s) b[192 + s] = static_cast<std::uint8_t>(static_cast<std::int8_t>(s * 9 - 70));
  put16(b, 208, kHalfQuarter);
  auto y = decode(TensorType::Q6_K, b, 256);
  for (int i = 0; i < 256; ++i) {
    CAPTURE(i);
    CHECK(y[i] == 0.25f * static_cast<float>((i / 16 * 9 - 70) * (q[i] - 32)));
  }
  // By hand: element 0 has q = 3 -> -29, scale -70: 0.25 * 2030.
  CHECK(y[0] == 507.5f);
  // Element 255: q = (255*7+3) % 64 = 60 -> 28; scale 15*9-70 = 65.
  CHECK(y[255] == 455.0f);
}

TEST_CASE("q8_K: f32 d times signed bytes") {
  Bytes b(292, 0);
  const float d = 0.125f;
  std::memcpy(b.data(), &d, 4);
  for (int j = 0; j < 256; ++j) b[4 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(j - 128));
  auto y = decode(TensorType::Q8_K, b, 256);
  CHECK(y[0] == -16.0f);
  CHECK(y[255] == 127 * 0.125f);
}

TEST_CASE("q2_K: 2-bit planes, 4-bit scale and min per 16 elements") {
  Bytes b(84, 0);
  for (int s = 0; s < 16; ++s) b[s] = static_cast<std::uint8_t>((s % 16) | ((15 - s) << 4));
  std::vector<int> q(256);
  for (int e = 0; e < 256; ++e) q[e] = (e * 5 + e / 64) % 4;
  // Element 128n + 32k + l keeps its 2 bits at bit 2k of qs[32n + l].
  for (int e = 0; e < 256; ++e) b[16 + 32 * (e / 128) + e % 32] |= static_cast<std::uint8_t>(q[e] << (2 * ((e / 32) % 4)));
  put16(b, 80, kHalfHalf);     // d
  put16(b, 82, kHalfQuarter);  // dmin
  auto y = decode(TensorType::Q2_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    CAPTURE(e);
    const int s = e / 16;  // sub-blocks run in element order
    CHECK(y[e] == 0.5f * static_cast<float>(s * q[e]) - 0.25f * static_cast<float>(15 - s));
  }
  CHECK(y[0] == -3.75f);  // sub-block 0: scale 0, min 15
  CHECK(y[255] == 15.0f);  // sub-block 15: scale 15, min 0; q = (1275 + 3) % 4 = 2
}

TEST_CASE("q3_K: 2-bit planes with a high-bit mask, 6-bit signed scales") {
  Bytes b(110, 0);
  // Scales s - 32 for s = 0..15: choose the 6-bit value 4*s + 3 (so 3..63), packed as
  // q3_K does: low nibbles in bytes 0..7 (s < 8) or their high nibbles (s >= 8), the top
  // two bits at bit 2*(s/4) of byte 8 + s%4.
  std::uint8_t* sc = b.data() + 96;
  auto six = [](int s) { return 4 * s + 3; };
  for (int s = 0; s < 16; ++s) {
    const int v = six(s);
    sc[s % 8] |= static_cast<std::uint8_t>((v & 15) << (s < 8 ? 0 : 4));
    sc[8 + s % 4] |= static_cast<std::uint8_t>((v >> 4) << (2 * (s / 4)));
  }
  std::vector<int> q(256), high(256);
  for (int e = 0; e < 256; ++e) {
    q[e] = (e * 3 + 1) % 4;
    high[e] = (e / 7) % 2;
    const int n = e / 128, k = (e / 32) % 4, l = e % 32;
    b[32 + 32 * n + l] |= static_cast<std::uint8_t>(q[e] << (2 * k));
    b[l] |= static_cast<std::uint8_t>(high[e] << (4 * n + k));
  }
  put16(b, 108, kHalfQuarter);
  auto y = decode(TensorType::Q3_K, b, 256);
  for (int e = 0; e < 256; ++e) {
    CAPTURE(e);
    const int value = q[e] - (high[e] ? 0 : 4);
    CHECK(y[e] == 0.25f * static_cast<float>((six(e / 16) - 32) * value));
  }
  // By hand: element 0 has q = 1, high bit 0 -> 1 - 4 = -3, scale 3 - 32 = -29.
  CHECK(y[0] == 0.25f * 87);
}

TEST_CASE("f16 and bf16 conversions are exact and round to nearest even") {
  // Every half bit pattern (NaNs excepted) survives half -> float -> half.
  std::vector<std::uint16_t> all(65536);
  for (std::uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<std::uint16_t>(i);
  std::vector<float> f(65536);
  dequantize_row(TensorType::F16, all.data(), f.data(), 65536);
  std::vector<std::uint16_t> back(65536);
  REQUIRE(quantize_row(TensorType::F16, f.data(), back.data(), 65536));
  int mismatches = 0;
  for (std::uint32_t i = 0; i < 65536; ++i) {
    const bool nan = (i & 0x7C00) == 0x7C00 && (i & 0x3FF) != 0;
    if (nan) {
      CHECK(std::isnan(f[i]));
    } else if (back[i] != all[i]) {
      ++mismatches;
    }
  }
  CHECK(mismatches == 0);
  CHECK(f[0x3C00] == 1.0f);
  CHECK(f[0x0001] == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(f[0x7BFF] == 65504.0f);
  CHECK(std::isinf(f[0xFC00]));

  const float in[] = {1.0f + std::ldexp(1.0f, -11), 1.0f + 3 * std::ldexp(1.0f, -11), 65520.0f,
                      std::ldexp(1.0f, -25), std::ldexp(1.5f, -25), -0.0f};
  std::uint16_t out[6];
  REQUIRE(quantize_row(TensorType::F16, in, out, 6));
  CHECK(out[0] == 0x3C00);  // tie -> even
  CHECK(out[1] == 0x3C02);  // tie -> even (up)
  CHECK(out[2] == 0x7C00);  // rounds to inf
  CHECK(out[3] == 0x0000);  // half the smallest subnormal: tie -> 0
  CHECK(out[4] == 0x0001);
  CHECK(out[5] == 0x8000);

  const float bin[] = {1.0f, 1.0f + std::ldexp(1.0f, -8), 1.0f + 3 * std::ldexp(1.0f, -8), -2.5f};
  std::uint16_t bout[4];
  REQUIRE(quantize_row(TensorType::BF16, bin, bout, 4));
  CHECK(bout[0] == 0x3F80);
  CHECK(bout[1] == 0x3F80);  // tie -> even
  CHECK(bout[2] == 0x3F82);
  float bf[4];
  dequantize_row(TensorType::BF16, bout, bf, 4);
  CHECK(bf[3] == -2.5f);
}

TEST_CASE("round-to-nearest quantization round-trips within each format's bound") {
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int n = 256 * 64;
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  x[5] = 6.0f;  // an outlier
  x[300] = -7.0f;

  struct Case {
    TensorType t;
    double max_rel;   // max |error| / max |x| of its block
    double mean_rel;  // mean |error| / mean |x|
  };
  // Bounds: q4_0 can clip the far end by one step (amax/8); the others are half a step
  // (for q4_1/q5_1 a step is (max-min)/15 or /31, up to 2*amax/15 or /31) plus the
  // rounding of the stored scales.
  const Case cases[] = {
      {TensorType::F32, 0, 0},          {TensorType::F16, 0.0005, 0.0005},
      {TensorType::BF16, 0.004, 0.004}, {TensorType::Q8_0, 0.0045, 0.01},
      {TensorType::Q4_0, 0.126, 0.12},  {TensorType::Q4_1, 0.068, 0.12},
      {TensorType::Q5_0, 0.063, 0.06},  {TensorType::Q5_1, 0.033, 0.06},
      {TensorType::Q4_K, 0.08, 0.15},   {TensorType::Q5_K, 0.04, 0.08},
      {TensorType::Q6_K, 0.02, 0.04},
  };
  for (const Case& c : cases) {
    const TypeTraits& tr = traits(c.t);
    CAPTURE(tr.name);
    std::vector<std::uint8_t> q(row_bytes(c.t, n));
    REQUIRE(quantize_row(c.t, x.data(), q.data(), n));
    std::vector<float> y(n);
    dequantize_row(c.t, q.data(), y.data(), n);
    const int block = tr.block_elems == 1 ? 32 : static_cast<int>(tr.block_elems);
    double worst = 0, sum_err = 0, sum_abs = 0;
    for (int b0 = 0; b0 < n; b0 += block) {
      double amax = 0;
      for (int i = b0; i < b0 + block; ++i) amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
      for (int i = b0; i < b0 + block; ++i) {
        const double e = std::fabs(static_cast<double>(y[i]) - x[i]);
        worst = std::max(worst, e / amax);
        sum_err += e;
        sum_abs += std::fabs(x[i]);
      }
    }
    MESSAGE(tr.name << ": max err/block amax " << worst << ", mean err/mean |x| " << sum_err / sum_abs);
    CHECK(worst <= c.max_rel);
    CHECK(sum_err / sum_abs <= c.mean_rel);
  }
}

TEST_CASE("quantize_row refuses what it cannot encode") {
  std::vector<float> x(256, 1.0f);
  std::vector<std::uint8_t> out(1024);
  for (TensorType t : {TensorType::Q8_1, TensorType::Q8_K, TensorType::Q2_K, TensorType::Q3_K})
    CHECK_FALSE(quantize_row(t, x.data(), out.data(), 256));
  CHECK_FALSE(quantize_row(TensorType::Q4_0, x.data(), out.data(), 33));
  CHECK_FALSE(quantize_row(TensorType::Q4_K, x.data(), out.data(), 128));
  // All zeros encode to zeros without dividing by zero.
  std::vector<float> zeros(256, 0.0f), y(256, 1.0f);
  for (TensorType t : {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1,
                       TensorType::Q8_0, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
    REQUIRE(quantize_row(t, zeros.data(), out.data(), 256));
    dequantize_row(t, out.data(), y.data(), 256);
    for (float v : y) CHECK(v == 0.0f);
  }
}
