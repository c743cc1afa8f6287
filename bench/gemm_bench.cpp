// bench/gemm: the prompt-processing GEMMs of the native CPU engine (model::matmul's own
// kernels over F16 and F32 weights, on a ThreadPool) against oneDNN's matmul primitive.
//   gemm_bench [n_threads=2] [runs=5] [tokens=512,64,16]
// Shapes are TinyLlama-1.1B's projections (weight rows x cols: wq/wo 2048x2048, wk/wv
// 256x2048, gate/up 5632x2048, down 2048x5632, output 32000x2048).
// Columns (GFLOP/s = 2 * rows * cols * tokens / median seconds of `runs`, after one warm-up):
//   ours-f16, ours-f32  the native kernels (k.f16 / k.f32 through model::matmul) on the
//                       weights in the file's layout
//   ours-x8             F16 repacked at load to X8 (model/repack.h), what the engine
//                       runs by default (k.f16x8)
//   dnn-f16, dnn-f32    model::matmul_onednn: oneDNN f32 matmul on the weights in place
//                       (F16 rows widened to f32 per block of rows, inside the timing)
//   dnn-f32r            oneDNN f32 with the weights reordered once (outside the timing) to
//                       the blocked layout it prefers: its best case, which needs a copy at load
//   dnn-bf16            oneDNN bf16 weights (converted and reordered once) x bf16
//                       activations (converted per call, inside the timing), f32 output
// Ratios are oneDNN / ours: f16 = dnn-f16 / ours-x8, f32 = dnn-f32 / ours-f32, bf16 =
// dnn-bf16 / ours-x8. err-* is the largest |oneDNN - ours| over the largest |ours| of the
// product (ours-f16 for dnn-f16 and dnn-bf16, ours-f32 for dnn-f32). The weights are
// f16-representable (N(0, 0.02) rounded through f16), so F16 and F32 weights hold the same
// values; activations are N(0, 1). oneDNN (Debian's libdnnl 2.6) runs on its own OpenMP
// threads, n_threads of them; ours on a model::ThreadPool of n_threads. Not a test.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "cyllm/model.h"
#include "gguf/half.h"
#include "model/kernels/kernels.h"
#include "model/matmul.h"
#include "model/matmul_onednn.h"
#include "model/repack.h"
#include "model/weights.h"

using namespace cyllm;

namespace {

struct Shape {
  const char* name;
  std::size_t n_rows, n_cols;  // weight: n_rows outputs of n_cols inputs
};

const Shape kShapes[] = {
    {"wq/wo", 2048, 2048}, {"wk/wv", 256, 2048}, {"gate/up", 5632, 2048},
    {"down", 2048, 5632},  {"output", 32000, 2048},
};

template <class F>
double median_seconds(int runs, F&& fn) {
  fn();  // warm-up: first touch of the outputs, oneDNN's scratchpad, the pool's threads
  std::vector<double> s;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

// max |a - b| / max |b|
double scaled_error(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, static_cast<double>(std::fabs(a[i] - b[i])));
    den = std::max(den, static_cast<double>(std::fabs(b[i])));
  }
  return den > 0 ? num / den : num;
}

// y[M][N] = x[M][K] * W^T for W stored as our rows ([N][K] row-major, oneDNN's {K, N} `ba`).
// The weights are reordered once to the layout the primitive asks for; the activations,
// when the primitive takes bf16, are converted by a reorder inside run().
class DnnlGemm {
 public:
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;

  DnnlGemm(dnnl::engine& eng, dnnl::stream& strm, dt type, std::size_t M, std::size_t K, std::size_t N,
           const float* w_rows, float* x, float* y)
      : strm_(&strm) {
    const dnnl::memory::dim m = static_cast<dnnl::memory::dim>(M), k = static_cast<dnnl::memory::dim>(K),
                            n = static_cast<dnnl::memory::dim>(N);
    const dnnl::memory::desc src_md({m, k}, type, tag::ab);
    const dnnl::memory::desc w_any({k, n}, type, tag::any);
    const dnnl::memory::desc dst_md({m, n}, dt::f32, tag::ab);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, w_any, dst_md), eng);
    impl_ = pd.impl_info_str();
    prim_ = dnnl::matmul(pd);

    // Weights: f32 rows -> (type, the primitive's layout), once.
    dnnl::memory w_plain({{k, n}, dt::f32, tag::ba}, eng, const_cast<float*>(w_rows));
    w_ = dnnl::memory(pd.weights_desc(), eng);
    dnnl::reorder(w_plain, w_).execute(strm, w_plain, w_);
    strm.wait();

    x_f32_ = dnnl::memory({{m, k}, dt::f32, tag::ab}, eng, x);
    y_ = dnnl::memory(dst_md, eng, y);
    if (type == dt::f32) {
      x_ = x_f32_;
    } else {
      x_ = dnnl::memory(src_md, eng);
      to_src_ = dnnl::reorder(x_f32_, x_);
    }
  }

  void run() {
    if (to_src_) to_src_->execute(*strm_, x_f32_, x_);
    prim_.execute(*strm_, {{DNNL_ARG_SRC, x_}, {DNNL_ARG_WEIGHTS, w_}, {DNNL_ARG_DST, y_}});
    strm_->wait();
  }
  const std::string& impl() const { return impl_; }

 private:
  dnnl::stream* strm_;
  dnnl::matmul prim_;
  std::optional<dnnl::reorder> to_src_;
  dnnl::memory w_, x_f32_, x_, y_;
  std::string impl_;
};

}  // namespace

int main(int argc, char** argv) {
  const int n_threads = argc > 1 ? std::max(1, std::atoi(argv[1])) : 2;
  const int runs = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
  model::onednn_set_threads(n_threads);

  auto pool = model::ThreadPool::create({static_cast<unsigned>(n_threads), false});
  if (!pool.ok()) {
    std::fprintf(stderr, "gemm_bench: cannot start the thread pool\n");
    return 1;
  }
  const model::kernels::Table& k = model::kernels::table(model::kernels::detect_isa());
  std::size_t max_cols = 0;
  for (const Shape& s : kShapes) max_cols = std::max(max_cols, s.n_cols);
  model::MatmulContext ctx(**pool, k, max_cols);

  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const dnnl_version_t* v = dnnl::version();
  std::printf("gemm_bench: %d threads, median of %d runs; our kernels: %s; oneDNN %d.%d.%d (%s threads)\n",
              n_threads, runs, model::kernels::isa_name(k.isa), v->major, v->minor, v->patch,
              v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other");
  std::printf("%-8s %6s %11s | %8s %8s %8s %8s %8s %8s %8s | %5s %5s %5s | %7s %7s %7s   (GFLOP/s)\n", "shape",
              "tokens", "rows x cols", "ours-f16", "ours-x8", "ours-f32", "dnn-f16", "dnn-f32", "dnn-f32r", "dnn-bf16", "f16",
              "f32", "bf16", "err-f16", "err-f32", "err-bf16");

  std::vector<std::size_t> token_counts;
  {
    std::istringstream in(argc > 3 ? argv[3] : "512,64,16");
    for (std::string t; std::getline(in, t, ',');)
      if (std::atoi(t.c_str()) > 0) token_counts.push_back(static_cast<std::size_t>(std::atoi(t.c_str())));
  }
  std::mt19937 rng(42);
  std::normal_distribution<float> wdist(0.f, 0.02f), xdist(0.f, 1.f);
  std::string impls;
  for (std::size_t n_tokens : token_counts) {
    for (const Shape& s : kShapes) {
      const std::size_t R = s.n_rows, C = s.n_cols;
      std::vector<float> w32(R * C);
      std::vector<std::uint16_t> w16(R * C);
      for (std::size_t i = 0; i < w32.size(); ++i) {
        w16[i] = gguf::fp32_to_fp16(wdist(rng));
        w32[i] = gguf::fp16_to_fp32(w16[i]);
      }
      std::vector<float> x(n_tokens * C);
      for (float& f : x) f = xdist(rng);

      const model::WeightMatrix m16{.type = gguf::TensorType::F16, .n_cols = C, .n_rows = R, .row_bytes = C * 2,
                                    .data = reinterpret_cast<const std::byte*>(w16.data())};
      const model::WeightMatrix m32{.type = gguf::TensorType::F32, .n_cols = C, .n_rows = R, .row_bytes = C * 4,
                                    .data = reinterpret_cast<const std::byte*>(w32.data())};
      std::vector<std::uint16_t> w16x8(R * C);
      model::repack_x8(gguf::TensorType::F16, reinterpret_cast<const std::byte*>(w16.data()), C * 2, R,
                       reinterpret_cast<std::byte*>(w16x8.data()));
      const model::WeightMatrix m16x8{.type = gguf::TensorType::F16, .n_cols = C, .n_rows = R, .row_bytes = C * 2,
                                      .data = reinterpret_cast<const std::byte*>(w16x8.data()), .x8 = true};
      std::vector<float> y16x8(n_tokens * R);
      std::vector<float> y16(n_tokens * R), y32(n_tokens * R), yo16(n_tokens * R), yo32(n_tokens * R),
          yr32(n_tokens * R), yb16(n_tokens * R);
      // model::matmul itself may hand float weights to oneDNN (the dispatch this bench
      // decides); time the native kernels by calling them as matmul does.
      const double t16 = median_seconds(runs, [&] { model::matmul_native(m16, x.data(), n_tokens, y16.data(), ctx); });
      const double t16x8 =
          median_seconds(runs, [&] { model::matmul_native(m16x8, x.data(), n_tokens, y16x8.data(), ctx); });
      const double t32 = median_seconds(runs, [&] { model::matmul_native(m32, x.data(), n_tokens, y32.data(), ctx); });
      const double to16 = median_seconds(runs, [&] { model::matmul_onednn(m16, x.data(), n_tokens, yo16.data(), ctx); });
      const double to32 = median_seconds(runs, [&] { model::matmul_onednn(m32, x.data(), n_tokens, yo32.data(), ctx); });
      DnnlGemm dr32(eng, strm, dnnl::memory::data_type::f32, n_tokens, C, R, w32.data(), x.data(), yr32.data());
      const double tr32 = median_seconds(runs, [&] { dr32.run(); });
      DnnlGemm db16(eng, strm, dnnl::memory::data_type::bf16, n_tokens, C, R, w32.data(), x.data(), yb16.data());
      const double tb16 = median_seconds(runs, [&] { db16.run(); });

      const double gflop = 2.0 * static_cast<double>(R * C * n_tokens) * 1e-9;
      std::printf(
          "%-8s %6zu %5zux%-5zu | %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f | %5.2f %5.2f %5.2f | %7.1e %7.1e %7.1e\n",
          s.name, n_tokens, R, C, gflop / t16, gflop / t16x8, gflop / t32, gflop / to16, gflop / to32, gflop / tr32,
          gflop / tb16, t16x8 / to16, t32 / to32, t16x8 / tb16, scaled_error(yo16, y16x8), scaled_error(yo32, y32),
          scaled_error(yb16, y16x8));
      std::fflush(stdout);
      const std::string line = "  f32 (reordered): " + dr32.impl() + ", bf16: " + db16.impl() + "\n";
      if (impls.find(line) == std::string::npos) impls += line;
    }
  }
  std::printf("oneDNN implementations:\n%s", impls.c_str());
  return 0;
}
