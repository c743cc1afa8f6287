#include "model/matmul.h"

#include <algorithm>
#include <cmath>
#include <system_error>
#include <thread>

namespace cyllm::model {

void parallel_for(unsigned n_workers, std::size_t n,
                  const std::function<void(unsigned, std::size_t, std::size_t)>& fn) {
  if (n == 0) return;
  const unsigned workers = static_cast<unsigned>(std::max<std::size_t>(1, std::min<std::size_t>(n_workers, n)));
  if (workers == 1) {
    fn(0, 0, n);
    return;
  }
  auto chunk = [&](unsigned w) {
    return std::pair<std::size_t, std::size_t>{n * w / workers, n * (w + 1) / workers};
  };
  std::vector<std::thread> threads;
  std::vector<unsigned> not_started;
  try {
    threads.reserve(workers - 1);
  } catch (...) {
  }
  for (unsigned w = 1; w < workers; ++w) {
    auto [b, e] = chunk(w);
    try {
      threads.emplace_back([&fn, w, b = b, e = e] { fn(w, b, e); });
    } catch (...) {  // std::system_error (no more threads) or bad_alloc: run it here
      not_started.push_back(w);
    }
  }
  auto [b0, e0] = chunk(0);
  fn(0, b0, e0);
  for (unsigned w : not_started) {
    auto [b, e] = chunk(w);
    fn(w, b, e);
  }
  for (std::thread& t : threads) t.join();
}

// The innermost loop of every matmul: optimised even in debug builds (GCC), so that
// sanitizer runs of the model tests stay fast.
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("O2")))
#endif
float dot(const float* a, const float* b, std::size_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
  float sum = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void matmul(const WeightMatrix& w, const float* x, std::size_t n_tokens, float* y,
            MatmulScratch& scratch) {
  CYLLM_ASSERT(w.n_cols <= scratch.max_cols());
  const std::size_t n_cols = w.n_cols, n_rows = w.n_rows;
  // Below this many multiply-adds a thread costs more than it saves.
  constexpr std::size_t kMinWorkPerThread = 1 << 15;
  const std::size_t work = n_cols * n_rows * n_tokens;
  const unsigned workers =
      static_cast<unsigned>(std::min<std::size_t>(scratch.n_workers(), std::max<std::size_t>(1, work / kMinWorkPerThread)));
  parallel_for(workers, n_rows, [&](unsigned worker, std::size_t begin, std::size_t end) {
    float* row = scratch.row(worker);
    for (std::size_t r = begin; r < end; ++r) {
      const float* wr = row;
      if (w.type == gguf::TensorType::F32) {
        wr = reinterpret_cast<const float*>(w.row(r));
      } else {
        gguf::dequantize_row(w.type, w.row(r), row, static_cast<std::int64_t>(n_cols));
      }
      for (std::size_t t = 0; t < n_tokens; ++t) y[t * n_rows + r] = dot(wr, x + t * n_cols, n_cols);
    }
  });
}

}  // namespace cyllm::model
