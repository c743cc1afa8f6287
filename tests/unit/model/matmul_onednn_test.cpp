// model::matmul, when its context opts in, hands F32 weights of batches of 16 tokens or
// more (and F16 ones of 256 or more) to oneDNN (model/matmul_onednn.h); its products must
// stay those of the native kernels up to f32 rounding. Built only when meson finds oneDNN.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cyllm/gguf.h"
#include "cyllm/model.h"
#include "gguf/half.h"
#include "model/kernels/kernels.h"
#include "model/matmul.h"
#include "model/matmul_onednn.h"
#include "tiny_model.h"

using cyllm::gguf::TensorType;
namespace model = cyllm::model;

namespace {

// max |a - b| over max |b|
double scaled_error(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, static_cast<double>(std::fabs(a[i] - b[i])));
    den = std::max(den, static_cast<double>(std::fabs(b[i])));
  }
  return den > 0 ? num / den : num;
}

}  // namespace

TEST_CASE("oneDNN's matmul of F32 and F16 weights agrees with the native kernels") {
  auto pool = model::ThreadPool::create({2, false});
  REQUIRE(pool.ok());
  const model::kernels::Table& k = model::kernels::table(model::kernels::detect_isa());
  // 300 columns: not a multiple of the kernels' 16 (their scalar tail); 200 rows: blocks of
  // widened F16 rows end mid-matrix; an F16 row stride past the row's end (padding).
  const std::size_t rows = 200, cols = 300, pad = 4;
  model::MatmulContext ctx(**pool, k, cols);
  cyllm::test::Lcg rng(7);
  std::vector<float> w32(rows * cols);
  std::vector<std::uint16_t> w16(rows * (cols + pad));
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) {
      w16[r * (cols + pad) + c] = cyllm::gguf::fp32_to_fp16(rng.uniform(0.05f));
      w32[r * cols + c] = cyllm::gguf::fp16_to_fp32(w16[r * (cols + pad) + c]);
    }
  const model::WeightMatrix m32{.type = TensorType::F32, .n_cols = cols, .n_rows = rows, .row_bytes = cols * 4,
                                .data = reinterpret_cast<const std::byte*>(w32.data())};
  const model::WeightMatrix m16{.type = TensorType::F16, .n_cols = cols, .n_rows = rows,
                                .row_bytes = (cols + pad) * 2,
                                .data = reinterpret_cast<const std::byte*>(w16.data())};
  for (std::size_t n : {1u, 15u, 16u, 64u, 300u}) {
    CAPTURE(n);
    std::vector<float> x(n * cols);
    for (float& v : x) v = rng.uniform(1.f);
    for (const model::WeightMatrix* w : {&m32, &m16}) {
      CAPTURE(w == &m16);
      std::vector<float> native(n * rows), dnn(n * rows, NAN), dispatched(n * rows, NAN);
      model::matmul_native(*w, x.data(), n, native.data(), ctx);
      model::matmul_onednn(*w, x.data(), n, dnn.data(), ctx);
      // Without the opt-in matmul is the native kernels, to the bit.
      model::matmul(*w, x.data(), n, dispatched.data(), ctx);
      CHECK(dispatched == native);
      ctx.set_onednn(true);
      model::matmul(*w, x.data(), n, dispatched.data(), ctx);
      ctx.set_onednn(false);
      // The same f32 products summed in another order: a few units in the last place.
      CHECK(scaled_error(dnn, native) <= 1e-5);
      CHECK(scaled_error(dispatched, native) <= 1e-5);
      // Opted in, F32 from 16 tokens and F16 from 256 go to oneDNN, the rest to our kernels.
      const bool to_onednn = w == &m32 ? n >= 16 : n >= 256;
      CHECK((dispatched == dnn) == to_onednn);
      // And both against a double-precision sum.
      double worst = 0, scale = 0;
      for (std::size_t t = 0; t < n; ++t)
        for (std::size_t r = 0; r < rows; ++r) {
          double s = 0;
          for (std::size_t c = 0; c < cols; ++c) s += double{w32[r * cols + c]} * x[t * cols + c];
          worst = std::max(worst, std::fabs(dnn[t * rows + r] - s));
          scale = std::max(scale, std::fabs(s));
        }
      CHECK(worst <= 1e-5 * scale);
    }
  }
}
