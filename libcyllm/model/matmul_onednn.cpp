#include "model/matmul_onednn.h"

#include <dlfcn.h>
#include <immintrin.h>

#include <algorithm>
#include <memory>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "gguf/half.h"

namespace cyllm::model {

// The engine and stream of one MatmulContext, and the f32 rows of one F16 block.
struct OnednnScratch {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  std::vector<float> block;
};

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using dims = dnnl::memory::dims;

// F16 weight rows widened per block: 1 MiB of f32 (128 rows of 2048), which stays in L2
// while oneDNN multiplies it by the whole batch.
constexpr std::size_t kBlockBytes = std::size_t{1} << 20;

dnnl::memory::dim dim(std::size_t n) { return static_cast<dnnl::memory::dim>(n); }

// y[M][ldy] columns [0, n) = x[M][K] * (rows w[n][ldw])^T, all f32.
void gemm_block(OnednnScratch& s, const float* w, std::size_t ldw, std::size_t n, const float* x, std::size_t M,
                std::size_t K, float* y, std::size_t ldy) {
  const dnnl::memory::dim m = dim(M), k = dim(K), nn = dim(n);
  const dnnl::memory::desc src_md({m, k}, dt::f32, tag::ab);
  const dnnl::memory::desc w_md({k, nn}, dt::f32, dims{1, dim(ldw)});
  const dnnl::memory::desc dst_md({m, nn}, dt::f32, dims{dim(ldy), 1});
  // oneDNN keeps created primitives in its cache (keyed by the descriptors), so a batch
  // size seen before costs a lookup, not a JIT compilation.
  const dnnl::matmul prim(dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_md, dst_md), s.eng));
  dnnl::memory src(src_md, s.eng, const_cast<float*>(x)), wm(w_md, s.eng, const_cast<float*>(w)), dst(dst_md, s.eng, y);
  prim.execute(s.strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, dst}});
}

// out[r][K] = f16 rows in[r * ld][K], r in [r0, r1) (on the pool's workers).
// (oneDNN 2.6's own f16 -> f32 reorder is its reference code on CPUs without AVX512-FP16:
// 35 GFLOP/s for the whole product at 512 tokens, 226-263 with this; gemm_bench.)
__attribute__((target("avx2,f16c"))) void widen_f16c(const std::uint16_t* in, std::size_t ld, std::size_t r0,
                                                     std::size_t r1, std::size_t K, float* out) {
  for (std::size_t r = r0; r < r1; ++r) {
    const std::uint16_t* src = in + r * ld;
    float* dst = out + r * K;
    std::size_t k = 0;
    for (; k + 8 <= K; k += 8)
      _mm256_storeu_ps(dst + k, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + k))));
    for (; k < K; ++k) dst[k] = gguf::fp16_to_fp32(src[k]);
  }
}

void widen_portable(const std::uint16_t* in, std::size_t ld, std::size_t r0, std::size_t r1, std::size_t K,
                    float* out) {
  for (std::size_t r = r0; r < r1; ++r)
    for (std::size_t k = 0; k < K; ++k) out[r * K + k] = gguf::fp16_to_fp32(in[r * ld + k]);
}

}  // namespace

void onednn_set_threads(int n) {
  // Debian's libdnnl runs on libgomp, loaded with it; looked up at run time so that the
  // library needs no OpenMP of its own at build time (clang's would be libomp: a second
  // runtime in the process). A oneDNN built on another runtime has no such symbol.
  using SetFn = void (*)(int);
  static const auto set = reinterpret_cast<SetFn>(::dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (set) set(n);
}

OnednnScratch& MatmulContext::onednn() {
  if (!onednn_) onednn_ = std::make_shared<OnednnScratch>();
  return *onednn_;
}

void matmul_onednn(const WeightMatrix& w, const float* x, std::size_t n_tokens, float* y, MatmulContext& ctx) {
  using T = gguf::TensorType;
  CYLLM_ASSERT(!w.x8 && (w.type == T::F32 || w.type == T::F16));
  const std::size_t K = w.n_cols, N = w.n_rows;
  OnednnScratch& s = ctx.onednn();
  onednn_set_threads(static_cast<int>(ctx.pool().size()));
  try {
    if (w.type == T::F32) {
      gemm_block(s, reinterpret_cast<const float*>(w.data), w.row_bytes / sizeof(float), N, x, n_tokens, K, y, N);
    } else {
      const std::size_t rows = std::max<std::size_t>(16, kBlockBytes / (K * sizeof(float)));
      if (s.block.size() < rows * K) s.block.resize(rows * K);
      // The AVX2 and AVX-512 kernel tables imply F16C (clang has no "f16c" for
      // __builtin_cpu_supports).
      const bool f16c = ctx.k().isa != kernels::Isa::Scalar;
      for (std::size_t r0 = 0; r0 < N; r0 += rows) {
        const std::size_t n = std::min(rows, N - r0);
        const auto* enc = reinterpret_cast<const std::uint16_t*>(w.data + r0 * w.row_bytes);
        ctx.pool().parallel_for(n, 8, [&](unsigned, std::size_t b, std::size_t e) {
          if (f16c) widen_f16c(enc, w.row_bytes / 2, b, e, K, s.block.data());
          else widen_portable(enc, w.row_bytes / 2, b, e, K, s.block.data());
        });
        gemm_block(s, s.block.data(), K, n, x, n_tokens, K, y + r0, N);
        s.strm.wait();  // before the next block overwrites this one
      }
    }
    s.strm.wait();
  } catch (const dnnl::error& e) {
    assert_fail(e.what(), __FILE__, __LINE__);  // a shape or type oneDNN was not given
  }
}

}  // namespace cyllm::model
