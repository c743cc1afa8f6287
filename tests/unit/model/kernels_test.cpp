// Every SIMD kernel against its scalar twin (random data, shapes with tails), the scalar
// twins against the dequantized float math, and the thread pool.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "cyllm/gguf.h"
#include "cyllm/model.h"
#include "gguf/half.h"
#include "model/kernels/kernels.h"
#include "model/repack.h"
#include "tiny_model.h"

using cyllm::gguf::TensorType;
namespace k = cyllm::model::kernels;

namespace {

std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float scale = 1.f) {
  cyllm::test::Lcg rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = rng.uniform(scale);
  return v;
}

// rows x cols weights of type t, and the same weights dequantized.
struct Weights {
  std::vector<std::byte> data;
  std::size_t row_bytes;
  std::vector<float> deq;
};

Weights make_weights(TensorType t, std::size_t rows, std::size_t cols, std::uint32_t seed) {
  Weights w;
  w.row_bytes = cyllm::gguf::row_bytes(t, cols);
  w.data.resize(rows * w.row_bytes);
  w.deq.resize(rows * cols);
  const auto src = random_floats(rows * cols, seed, 0.5f);
  for (std::size_t r = 0; r < rows; ++r) {
    REQUIRE(cyllm::gguf::quantize_row(t, src.data() + r * cols, w.data.data() + r * w.row_bytes,
                                      static_cast<std::int64_t>(cols)));
    cyllm::gguf::dequantize_row(t, w.data.data() + r * w.row_bytes, w.deq.data() + r * cols,
                                static_cast<std::int64_t>(cols));
  }
  return w;
}

// The fast tables this CPU can run (none on a CPU without AVX2: then only the twins run).
std::vector<const k::Table*> fast_tables() {
  std::vector<const k::Table*> out;
  const k::Isa best = k::detect_isa();
  if (best == k::Isa::Avx2 || best == k::Isa::Avx512) out.push_back(&k::table(k::Isa::Avx2));
  if (best == k::Isa::Avx512) out.push_back(&k::table(k::Isa::Avx512));
  if (out.empty()) MESSAGE("this CPU has no AVX2: only the scalar kernels are tested");
  return out;
}

bool close(float a, float b, float scale) { return std::fabs(a - b) <= 1e-4f * scale + 1e-5f; }

}  // namespace

TEST_CASE("the CPU's kernel set is named and the scalar table is always there") {
  const k::Isa isa = k::detect_isa();
  MESSAGE("kernels: " << std::string(k::isa_name(isa)));
  CHECK(k::table(isa).isa == isa);
  CHECK(k::table(k::Isa::Scalar).isa == k::Isa::Scalar);
  CHECK(std::string(k::isa_name(k::Isa::Avx512)) == "avx512-vnni");
}

TEST_CASE("quantize_q8: SIMD and scalar give the same blocks") {
  const k::Table& ref = k::table(k::Isa::Scalar);
  for (std::size_t cols : {32u, 64u, 2048u}) {
    auto x = random_floats(cols, static_cast<std::uint32_t>(cols), 3.f);
    std::fill(x.begin(), x.begin() + 32, 0.f);  // an all-zero block
    if (cols > 32) x[40] = 1e4f;                // one large value
    std::vector<k::BlockQ8> a(cols / 32), b(cols / 32);
    ref.quantize_q8(x.data(), a.data(), cols);
    CHECK(a[0].d == 0.f);
    CHECK(a[0].sum == 0);
    for (std::size_t i = 0; i < cols; ++i)  // within half a step of the input
      CHECK(std::fabs(a[i / 32].d * a[i / 32].qs[i % 32] - x[i]) <= a[i / 32].d * 0.5f + 1e-6f);
    for (const k::Table* t : fast_tables()) {
      CAPTURE(k::isa_name(t->isa));
      t->quantize_q8(x.data(), b.data(), cols);
      for (std::size_t i = 0; i < a.size(); ++i) {
        CHECK(a[i].d == b[i].d);
        CHECK(a[i].sum == b[i].sum);
        CHECK(std::memcmp(a[i].qs, b[i].qs, 32) == 0);
      }
    }
  }
}

TEST_CASE("quantized gemm: every SIMD kernel agrees with its scalar twin, and the twin with the float math") {
  const k::Table& ref = k::table(k::Isa::Scalar);
  for (TensorType type : {TensorType::Q8_0, TensorType::Q4_0}) {
    for (std::size_t rows : {1u, 3u, 6u, 13u}) {
      // 8256 and 8288 columns (258 and 259 blocks): rows longer than a 4 KiB page, even and
      // odd block counts.
      for (std::size_t cols : {32u, 96u, 256u, 8256u, 8288u}) {
        for (std::size_t n : {1u, 3u, 4u, 9u}) {
          CAPTURE(static_cast<int>(type));
          CAPTURE(rows);
          CAPTURE(cols);
          CAPTURE(n);
          const Weights w = make_weights(type, rows, cols, static_cast<std::uint32_t>(rows * 7 + cols + n));
          const auto x = random_floats(n * cols, static_cast<std::uint32_t>(n + 99));
          const std::size_t nb = cols / 32;
          std::vector<k::BlockQ8> xq(n * nb);
          for (std::size_t t = 0; t < n; ++t) ref.quantize_q8(x.data() + t * cols, xq.data() + t * nb, cols);
          const auto fn_ref = type == TensorType::Q8_0 ? ref.q8_0 : ref.q4_0;
          // A sub-range of rows, written at y + 0 with stride ldy = rows.
          const std::size_t r0 = rows > 2 ? 1 : 0, r1 = rows;
          std::vector<float> y_ref(n * rows, -1.f), y(n * rows, -1.f);
          fn_ref(w.data.data(), w.row_bytes, r0, r1, xq.data(), nb, n, y_ref.data(), rows);
          for (std::size_t t = 0; t < n; ++t)
            for (std::size_t r = r0; r < r1; ++r) {
              double exact = 0, scale = 0;
              for (std::size_t c = 0; c < cols; ++c) {
                exact += double{w.deq[r * cols + c]} * x[t * cols + c];
                scale += std::fabs(double{w.deq[r * cols + c]} * x[t * cols + c]);
              }
              // 8-bit activations: within ~1% of the sum of |terms|.
              CHECK(std::fabs(y_ref[t * rows + (r - r0)] - exact) <= 0.01 * scale + 1e-6);
            }
          for (const k::Table* tab : fast_tables()) {
            CAPTURE(k::isa_name(tab->isa));
            std::fill(y.begin(), y.end(), -1.f);
            (type == TensorType::Q8_0 ? tab->q8_0 : tab->q4_0)(w.data.data(), w.row_bytes, r0, r1, xq.data(), nb, n,
                                                                y.data(), rows);
            for (std::size_t i = 0; i < y.size(); ++i) CHECK(close(y[i], y_ref[i], 1.f + std::fabs(y_ref[i])));
          }
        }
      }
    }
  }
}

TEST_CASE("X8 repacking: every row comes back unchanged, and the x8 kernels give the plain kernels' sums") {
  const k::Table& ref = k::table(k::Isa::Scalar);
  CHECK(cyllm::model::x8_supported(TensorType::Q4_0, 16, 32));
  CHECK_FALSE(cyllm::model::x8_supported(TensorType::Q4_0, 12, 32));
  CHECK_FALSE(cyllm::model::x8_supported(TensorType::Q6_K, 16, 256));
  for (TensorType type : {TensorType::Q8_0, TensorType::Q4_0}) {
    for (std::size_t rows : {8u, 24u}) {
      for (std::size_t cols : {32u, 96u, 8288u}) {
        CAPTURE(static_cast<int>(type));
        CAPTURE(rows);
        CAPTURE(cols);
        const Weights w = make_weights(type, rows, cols, static_cast<std::uint32_t>(rows + cols));
        std::vector<std::byte> x8(w.data.size());
        cyllm::model::repack_x8(type, w.data.data(), w.row_bytes, rows, x8.data());
        CHECK(x8 != w.data);
        std::vector<std::byte> row(w.row_bytes);
        for (std::size_t r = 0; r < rows; ++r) {
          cyllm::model::unpack_row_x8(type, x8.data(), w.row_bytes, r, row.data());
          CHECK(std::memcmp(row.data(), w.data.data() + r * w.row_bytes, w.row_bytes) == 0);
        }
        const std::size_t nb = cols / 32;
        // 1 (decoding), 3 and 4 (the short tiles), 13 and 70 (full tiles, a second slice).
        for (std::size_t n : {1u, 3u, 4u, 13u, 70u}) {
          CAPTURE(n);
          const auto x = random_floats(n * cols, static_cast<std::uint32_t>(n + 7));
          std::vector<k::BlockQ8> xq(n * nb);
          for (std::size_t t = 0; t < n; ++t) ref.quantize_q8(x.data() + t * cols, xq.data() + t * nb, cols);
          // Groups 1.. of the rows when there are several, written at y + 0 with stride rows.
          const std::size_t r0 = rows > 8 ? 8 : 0;
          std::vector<float> y_plain(n * rows, -1.f), y_ref(n * rows, -1.f), y(n * rows, -1.f);
          (type == TensorType::Q8_0 ? ref.q8_0 : ref.q4_0)(w.data.data(), w.row_bytes, r0, rows, xq.data(), nb, n,
                                                            y_plain.data(), rows);
          (type == TensorType::Q8_0 ? ref.q8_0x8 : ref.q4_0x8)(x8.data(), w.row_bytes, r0, rows, xq.data(), nb, n,
                                                                y_ref.data(), rows);
          for (std::size_t t = 0; t < n; ++t)
            for (std::size_t r = r0; r < rows; ++r) {
              const std::size_t i = t * rows + (r - r0);
              CHECK(close(y_ref[i], y_plain[i], 1.f + std::fabs(y_plain[i])));
            }
          for (const k::Table* tab : fast_tables()) {
            CAPTURE(k::isa_name(tab->isa));
            std::fill(y.begin(), y.end(), -1.f);
            (type == TensorType::Q8_0 ? tab->q8_0x8 : tab->q4_0x8)(x8.data(), w.row_bytes, r0, rows, xq.data(), nb,
                                                                    n, y.data(), rows);
            // The same integer dots and the same fma per block: equal to the bit.
            CHECK(std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(float)) == 0);
          }
        }
      }
    }
  }
}

TEST_CASE("X8 repacking of Q4_K: rows come back unchanged, and the x8 kernels give the plain kernels' sums") {
  const k::Table& ref = k::table(k::Isa::Scalar);
  CHECK(cyllm::model::x8_supported(TensorType::Q4_K, 8, 256));
  CHECK_FALSE(cyllm::model::x8_supported(TensorType::Q4_K, 12, 256));
  CHECK(cyllm::model::x8_row_bytes(TensorType::Q4_K, 144 * 3) == 148 * 3);
  for (std::size_t rows : {8u, 24u}) {
    for (std::size_t cols : {256u, 768u}) {
      CAPTURE(rows);
      CAPTURE(cols);
      const Weights w = make_weights(TensorType::Q4_K, rows, cols, static_cast<std::uint32_t>(rows * 7 + cols));
      const std::size_t x8_bytes = rows * cyllm::model::x8_row_bytes(TensorType::Q4_K, w.row_bytes);
      std::vector<std::byte> x8(x8_bytes);
      cyllm::model::repack_x8(TensorType::Q4_K, w.data.data(), w.row_bytes, rows, x8.data());
      std::vector<std::byte> row(w.row_bytes);
      for (std::size_t r = 0; r < rows; ++r) {
        cyllm::model::unpack_row_x8(TensorType::Q4_K, x8.data(), w.row_bytes, r, row.data());
        CHECK(std::memcmp(row.data(), w.data.data() + r * w.row_bytes, w.row_bytes) == 0);
      }
      const std::size_t nb = cols / 256;
      // 1 (decoding), 2, 3, 5 (the short tiles), 13 and 70 (full tiles of 8, a second slice).
      for (std::size_t n : {1u, 2u, 3u, 5u, 13u, 70u}) {
        CAPTURE(n);
        const auto x = random_floats(n * cols, static_cast<std::uint32_t>(n + 5));
        std::vector<k::BlockQ8K> xq(n * nb);
        for (std::size_t t = 0; t < n; ++t) k::quantize_q8k(x.data() + t * cols, xq.data() + t * nb, cols);
        const std::size_t r0 = rows > 8 ? 8 : 0;
        std::vector<float> y_plain(n * rows, -1.f), y_ref(n * rows, -1.f), y(n * rows, -1.f);
        ref.q4_K(w.data.data(), w.row_bytes, r0, rows, xq.data(), nb, n, y_plain.data(), rows);
        ref.q4_Kx8(x8.data(), w.row_bytes, r0, rows, xq.data(), nb, n, y_ref.data(), rows);
        for (std::size_t i = 0; i < (rows - r0) * n; ++i) {
          const std::size_t t = i / (rows - r0), r = i % (rows - r0);
          CHECK(close(y_ref[t * rows + r], y_plain[t * rows + r], 1.f + std::fabs(y_plain[t * rows + r])));
        }
        for (const k::Table* tab : fast_tables()) {
          CAPTURE(k::isa_name(tab->isa));
          std::fill(y.begin(), y.end(), -1.f);
          tab->q4_Kx8(x8.data(), w.row_bytes, r0, rows, xq.data(), nb, n, y.data(), rows);
          // The same integer sums and the same two fma per block: equal to the bit.
          CHECK(std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(float)) == 0);
        }
      }
    }
  }
}

TEST_CASE("X8 repacking of F16: rows come back unchanged, and the x8 kernels give the plain kernels' sums") {
  const k::Table& ref = k::table(k::Isa::Scalar);
  CHECK(cyllm::model::x8_supported(TensorType::F16, 8, 16));
  CHECK_FALSE(cyllm::model::x8_supported(TensorType::F16, 8, 24));
  CHECK_FALSE(cyllm::model::x8_supported(TensorType::F16, 4, 16));
  CHECK_FALSE(cyllm::model::x8_supported(TensorType::F32, 8, 16));
  for (std::size_t rows : {8u, 24u}) {
    for (std::size_t cols : {16u, 48u, 2064u}) {
      CAPTURE(rows);
      CAPTURE(cols);
      const Weights w = make_weights(TensorType::F16, rows, cols, static_cast<std::uint32_t>(rows * 3 + cols));
      std::vector<std::byte> x8(w.data.size());
      cyllm::model::repack_x8(TensorType::F16, w.data.data(), w.row_bytes, rows, x8.data());
      if (cols > 16) CHECK(x8 != w.data);  // one piece per row: the same bytes
      std::vector<std::byte> row(w.row_bytes);
      for (std::size_t r = 0; r < rows; ++r) {
        cyllm::model::unpack_row_x8(TensorType::F16, x8.data(), w.row_bytes, r, row.data());
        CHECK(std::memcmp(row.data(), w.data.data() + r * w.row_bytes, w.row_bytes) == 0);
      }
      // 1 (decoding), 2, 3, 5 (the short tiles), 13 and 70 (full tiles, several slices).
      for (std::size_t n : {1u, 2u, 3u, 5u, 13u, 70u}) {
        CAPTURE(n);
        const auto x = random_floats(n * cols, static_cast<std::uint32_t>(n + 3));
        const std::size_t r0 = rows > 8 ? 8 : 0;
        std::vector<float> y_plain(n * rows, -1.f), y_ref(n * rows, -1.f), y(n * rows, -1.f);
        ref.f16(w.data.data(), w.row_bytes, r0, rows, x.data(), cols, cols, n, y_plain.data(), rows);
        ref.f16x8(x8.data(), w.row_bytes, r0, rows, x.data(), cols, cols, n, y_ref.data(), rows);
        for (std::size_t i = 0; i < (rows - r0) * n; ++i) {
          const std::size_t t = i / (rows - r0), r = i % (rows - r0);
          CHECK(close(y_ref[t * rows + r], y_plain[t * rows + r], 1.f + std::fabs(y_plain[t * rows + r])));
        }
        for (const k::Table* tab : fast_tables()) {
          CAPTURE(k::isa_name(tab->isa));
          std::fill(y.begin(), y.end(), -1.f);
          tab->f16x8(x8.data(), w.row_bytes, r0, rows, x.data(), cols, cols, n, y.data(), rows);
          for (std::size_t i = 0; i < y.size(); ++i) CHECK(close(y[i], y_ref[i], 1.f + std::fabs(y_ref[i])));
        }
      }
    }
  }
}

TEST_CASE("K-quant gemm (Q4_K, Q6_K): every SIMD kernel agrees with its scalar twin, and the twin with the float math") {
  const k::Table& ref = k::table(k::Isa::Scalar);
  for (TensorType type : {TensorType::Q4_K, TensorType::Q6_K}) {
    for (std::size_t rows : {1u, 3u, 6u}) {
      for (std::size_t cols : {256u, 512u}) {
        // 1: decoding; 4, 6: short tiles; 13: a full tile of 8 and a tail; 70: a second slice.
        for (std::size_t n : {1u, 4u, 6u, 13u, 70u}) {
          CAPTURE(static_cast<int>(type));
          CAPTURE(rows);
          CAPTURE(cols);
          CAPTURE(n);
          const Weights w = make_weights(type, rows, cols, static_cast<std::uint32_t>(rows * 5 + cols + n));
          const auto x = random_floats(n * cols, static_cast<std::uint32_t>(n + 11));
          const std::size_t nb = cols / 256;
          std::vector<k::BlockQ8K> xq(n * nb);
          for (std::size_t t = 0; t < n; ++t) k::quantize_q8k(x.data() + t * cols, xq.data() + t * nb, cols);
          const auto fn_ref = type == TensorType::Q4_K ? ref.q4_K : ref.q6_K;
          std::vector<float> y_ref(n * rows), y(n * rows);
          fn_ref(w.data.data(), w.row_bytes, 0, rows, xq.data(), nb, n, y_ref.data(), rows);
          for (std::size_t t = 0; t < n; ++t)
            for (std::size_t r = 0; r < rows; ++r) {
              double exact = 0, scale = 0;
              for (std::size_t c = 0; c < cols; ++c) {
                exact += double{w.deq[r * cols + c]} * x[t * cols + c];
                scale += std::fabs(double{w.deq[r * cols + c]} * x[t * cols + c]);
              }
              CHECK(std::fabs(y_ref[t * rows + r] - exact) <= 0.01 * scale + 1e-6);
            }
          for (const k::Table* tab : fast_tables()) {
            CAPTURE(k::isa_name(tab->isa));
            (type == TensorType::Q4_K ? tab->q4_K : tab->q6_K)(w.data.data(), w.row_bytes, 0, rows, xq.data(), nb, n,
                                                               y.data(), rows);
            for (std::size_t i = 0; i < y.size(); ++i) CHECK(close(y[i], y_ref[i], 1.f + std::fabs(y_ref[i])));
          }
        }
      }
    }
  }
}

TEST_CASE("float gemm (F16, F32 weights): every SIMD kernel agrees with its scalar twin") {
  const k::Table& ref = k::table(k::Isa::Scalar);
  for (TensorType type : {TensorType::F16, TensorType::F32}) {
    for (std::size_t rows : {1u, 5u, 10u}) {
      for (std::size_t cols : {7u, 16u, 67u}) {
        for (std::size_t n : {1u, 4u, 6u}) {
          CAPTURE(static_cast<int>(type));
          CAPTURE(rows);
          CAPTURE(cols);
          CAPTURE(n);
          const Weights w = make_weights(type, rows, cols, static_cast<std::uint32_t>(rows + cols * 3 + n));
          const auto x = random_floats(n * cols, static_cast<std::uint32_t>(n + 7));
          std::vector<float> y_ref(n * rows), y(n * rows);
          const auto fn_ref = type == TensorType::F16 ? ref.f16 : ref.f32;
          fn_ref(w.data.data(), w.row_bytes, 0, rows, x.data(), cols, cols, n, y_ref.data(), rows);
          for (std::size_t t = 0; t < n; ++t)
            for (std::size_t r = 0; r < rows; ++r) {
              double exact = 0;
              for (std::size_t c = 0; c < cols; ++c) exact += double{w.deq[r * cols + c]} * x[t * cols + c];
              CHECK(std::fabs(y_ref[t * rows + r] - exact) <= 1e-4 * (1 + std::fabs(exact)));
            }
          for (const k::Table* tab : fast_tables()) {
            CAPTURE(k::isa_name(tab->isa));
            (type == TensorType::F16 ? tab->f16 : tab->f32)(w.data.data(), w.row_bytes, 0, rows, x.data(), cols, cols,
                                                            n, y.data(), rows);
            for (std::size_t i = 0; i < y.size(); ++i) CHECK(close(y[i], y_ref[i], 1.f + std::fabs(y_ref[i])));
          }
        }
      }
    }
  }
}

// The server batches concurrent requests: a sequence must get the same logits alone and in
// a batch, so every kernel must form each output the same way for one activation row and
// for many (the tiles differ; the order of each sum must not).
TEST_CASE("every kernel gives each activation row the same bits alone as in a batch") {
  std::vector<const k::Table*> tables = fast_tables();
  tables.push_back(&k::table(k::Isa::Scalar));
  const std::size_t rows = 48, n = 70;  // 3 tiles of 16 rows; tiles of 8, 4 and 1 tokens, two slices
  for (TensorType type : {TensorType::Q8_0, TensorType::Q4_0, TensorType::Q4_K, TensorType::Q6_K, TensorType::F16,
                          TensorType::F32}) {
    for (bool x8 : {false, true}) {
      const bool k_quant = type == TensorType::Q4_K || type == TensorType::Q6_K;
      const bool q8 = type == TensorType::Q8_0 || type == TensorType::Q4_0;
      if (x8 && !q8 && type != TensorType::F16 && type != TensorType::Q4_K) continue;
      // 8448 columns: 33 K-quant blocks, 264 blocks of 32; for the floats, a slice of 7
      // activation rows (256 KiB) ends on a tail of 3 (F16 x8: 585 pieces of 16).
      const std::size_t cols = type == TensorType::F32 || type == TensorType::F16 ? (x8 ? 9360 : 9352) : 8448;
      CAPTURE(static_cast<int>(type));
      CAPTURE(x8);
      Weights w = make_weights(type, rows, cols, 5);
      if (x8) {
        std::vector<std::byte> packed(rows * cyllm::model::x8_row_bytes(type, w.row_bytes));
        cyllm::model::repack_x8(type, w.data.data(), w.row_bytes, rows, packed.data());
        w.data = std::move(packed);
      }
      const auto x = random_floats(n * cols, 11);
      std::vector<k::BlockQ8> xq(n * cols / 32);
      std::vector<k::BlockQ8K> xk(k_quant ? n * cols / 256 : 0);
      for (std::size_t t = 0; t < n; ++t) {
        k::table(k::Isa::Scalar).quantize_q8(x.data() + t * cols, xq.data() + t * cols / 32, cols);
        if (k_quant) k::quantize_q8k(x.data() + t * cols, xk.data() + t * cols / 256, cols);
      }
      for (const k::Table* tab : tables) {
        CAPTURE(k::isa_name(tab->isa));
        // y[t * rows + r] for tokens [t0, t0 + m)
        auto run = [&](std::size_t t0, std::size_t m, float* y) {
          const std::byte* wd = w.data.data();
          switch (type) {
            case TensorType::Q8_0:
            case TensorType::Q4_0: {
              const auto fn = x8 ? (type == TensorType::Q8_0 ? tab->q8_0x8 : tab->q4_0x8)
                                 : (type == TensorType::Q8_0 ? tab->q8_0 : tab->q4_0);
              fn(wd, w.row_bytes, 0, rows, xq.data() + t0 * cols / 32, cols / 32, m, y, rows);
              break;
            }
            case TensorType::Q4_K:
            case TensorType::Q6_K:
              (type == TensorType::Q4_K ? (x8 ? tab->q4_Kx8 : tab->q4_K) : tab->q6_K)(
                  wd, w.row_bytes, 0, rows, xk.data() + t0 * cols / 256, cols / 256, m, y, rows);
              break;
            default: {
              const auto fn = type == TensorType::F16 ? (x8 ? tab->f16x8 : tab->f16) : tab->f32;
              fn(wd, w.row_bytes, 0, rows, x.data() + t0 * cols, cols, cols, m, y, rows);
            }
          }
        };
        std::vector<float> batch(n * rows), one(rows);
        run(0, n, batch.data());
        for (std::size_t t : {0u, 7u, 8u, 63u, 64u, 69u}) {
          CAPTURE(t);
          run(t, 1, one.data());
          CHECK(std::memcmp(one.data(), batch.data() + t * rows, rows * sizeof(float)) == 0);
        }
      }
    }
  }
}

TEST_CASE("attention helpers (dot and axpy over f16 and f32) agree with their twins") {
  const k::Table& ref = k::table(k::Isa::Scalar);
  for (std::size_t n : {5u, 16u, 64u, 70u}) {
    const auto q = random_floats(n, 1), v = random_floats(n, 2);
    std::vector<std::uint16_t> h(n);
    for (std::size_t i = 0; i < n; ++i) h[i] = cyllm::gguf::fp32_to_fp16(v[i]);
    std::vector<float> y0(q), y1(q), y2(q), y3(q);
    ref.axpy_f16(y0.data(), 0.7f, h.data(), n);
    ref.axpy_f32(y2.data(), 0.7f, v.data(), n);
    for (const k::Table* t : fast_tables()) {
      CAPTURE(k::isa_name(t->isa));
      CHECK(close(t->dot_f16(q.data(), h.data(), n), ref.dot_f16(q.data(), h.data(), n), 10.f));
      CHECK(close(t->dot_f32(q.data(), v.data(), n), ref.dot_f32(q.data(), v.data(), n), 10.f));
      y1 = q;
      t->axpy_f16(y1.data(), 0.7f, h.data(), n);
      y3 = q;
      t->axpy_f32(y3.data(), 0.7f, v.data(), n);
      for (std::size_t i = 0; i < n; ++i) {
        CHECK(close(y1[i], y0[i], 1.f));
        CHECK(close(y3[i], y2[i], 1.f));
      }
    }
  }
}

TEST_CASE("grouped attention over f16 (scores for G heads per K row, mix of V rows) agrees with its twin") {
  const k::Table& ref = k::table(k::Isa::Scalar);
  for (std::size_t G : {1u, 3u, 8u, 11u}) {
    for (std::size_t hd : {32u, 36u, 64u}) {
      for (std::size_t n_pos : {1u, 7u, 33u}) {
        CAPTURE(G);
        CAPTURE(hd);
        CAPTURE(n_pos);
        const std::size_t ld = hd * 2 + 8;  // rows of a wider cache: another KV head sits between
        const auto q = random_floats(G * hd, static_cast<std::uint32_t>(G * 100 + hd));
        const auto kf = random_floats(n_pos * ld, static_cast<std::uint32_t>(n_pos + 7));
        const auto vf = random_floats(n_pos * ld, static_cast<std::uint32_t>(n_pos + 9));
        std::vector<std::uint16_t> kh(kf.size()), vh(vf.size());
        for (std::size_t i = 0; i < kf.size(); ++i) kh[i] = cyllm::gguf::fp32_to_fp16(kf[i]);
        for (std::size_t i = 0; i < vf.size(); ++i) vh[i] = cyllm::gguf::fp32_to_fp16(vf[i]);
        std::vector<float> s_ref(n_pos * G), out_ref(G * hd, -1.f);
        ref.scores_f16(q.data(), G, hd, kh.data(), ld, n_pos, 0.125f, s_ref.data());
        // The twin against a plain dot of the float values the f16 rows hold.
        for (std::size_t j = 0; j < n_pos; ++j)
          for (std::size_t g = 0; g < G; ++g) {
            double e = 0;
            for (std::size_t d = 0; d < hd; ++d)
              e += double{q[g * hd + d]} * cyllm::gguf::fp16_to_fp32(kh[j * ld + d]);
            CHECK(close(s_ref[j * G + g], static_cast<float>(0.125 * e), 10.f));
          }
        const auto p = random_floats(n_pos * G, 3);
        ref.mix_f16(p.data(), G, hd, vh.data(), ld, n_pos, out_ref.data());
        for (const k::Table* t : fast_tables()) {
          CAPTURE(k::isa_name(t->isa));
          std::vector<float> s(n_pos * G, -1.f), out(G * hd, -1.f);
          t->scores_f16(q.data(), G, hd, kh.data(), ld, n_pos, 0.125f, s.data());
          for (std::size_t i = 0; i < s.size(); ++i) CHECK(close(s[i], s_ref[i], 10.f));
          t->mix_f16(p.data(), G, hd, vh.data(), ld, n_pos, out.data());
          for (std::size_t i = 0; i < out.size(); ++i) CHECK(close(out[i], out_ref[i], 10.f));
        }
      }
    }
  }
}

TEST_CASE("thread pool: every index once, any grain, shared by several threads") {
  CHECK(cyllm::model::effective_cpu_count() >= 1);
  CHECK(cyllm::model::effective_cpu_count() <= std::max(1u, std::thread::hardware_concurrency()));
  for (bool pin : {false, true}) {
    auto pool = cyllm::model::ThreadPool::create({3, pin});
    REQUIRE(pool.ok());
    CHECK((*pool)->size() == 3);
    for (std::size_t n : {0u, 1u, 7u, 1000u}) {
      for (std::size_t grain : {1u, 4u, 64u, 5000u}) {
        std::vector<std::atomic<int>> hits(n);
        std::atomic<bool> bad_worker{false};
        (*pool)->parallel_for(n, grain, [&](unsigned worker, std::size_t b, std::size_t e) {
          if (worker >= 3 || e - b > grain) bad_worker = true;
          for (std::size_t i = b; i < e; ++i) hits[i]++;
        });
        CHECK_FALSE(bad_worker.load());
        for (std::size_t i = 0; i < n; ++i) CHECK(hits[i].load() == 1);
      }
    }
  }
  // Two threads sharing one pool: jobs run one at a time, each completely.
  auto shared = cyllm::model::ThreadPool::create({2, false});
  REQUIRE(shared.ok());
  std::atomic<long> total{0};
  auto job = [&] {
    for (int rep = 0; rep < 200; ++rep)
      (*shared)->parallel_for(100, 3, [&](unsigned, std::size_t b, std::size_t e) { total += static_cast<long>(e - b); });
  };
  std::thread a(job), b(job);
  a.join();
  b.join();
  CHECK(total.load() == 2 * 200 * 100);
}
