#include "model/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
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

float dot(const float* a, const float* b, std::size_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
  float sum = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

float round_to_f16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  const std::uint32_t sign = u & 0x80000000u;
  const std::uint32_t abs = u & 0x7fffffffu;
  if (abs >= 0x7f800000u) return x;  // inf / nan
  float a;
  std::memcpy(&a, &abs, 4);
  float r;
  if (a >= 65520.f) {
    r = INFINITY;
  } else if (a < 6.103515625e-05f) {
    // Subnormal half: a multiple of 2^-24; rint rounds to nearest even.
    r = std::nearbyint(a * 16777216.f) / 16777216.f;
  } else {
    // Normal half: 10 mantissa bits, i.e. drop 13 of float's 23 with round-to-nearest-even.
    std::uint32_t v = abs;
    v += 0x0fffu + ((v >> 13) & 1u);
    v &= ~0x1fffu;
    std::memcpy(&r, &v, 4);
  }
  std::uint32_t ru;
  std::memcpy(&ru, &r, 4);
  ru |= sign;
  std::memcpy(&r, &ru, 4);
  return r;
}

float round_to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return x;  // nan
  u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

namespace {

// Q8_0: blocks of 32, d = amax / 127 stored as f16, q = round(x / d).
void round_q8_0(float* x, std::size_t n) {
  for (std::size_t b = 0; b + 32 <= n; b += 32) {
    float amax = 0;
    for (std::size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b + j]));
    const float d = amax / 127.f;
    const float id = d != 0 ? 1.f / d : 0.f;
    const float dh = round_to_f16(d);
    for (std::size_t j = 0; j < 32; ++j) x[b + j] = dh * std::round(x[b + j] * id);
  }
}

// Q8_K: blocks of 256, scale from the signed element of largest magnitude, f32 scale.
void round_q8_k(float* x, std::size_t n) {
  for (std::size_t b = 0; b + 256 <= n; b += 256) {
    float amax = 0, max = 0;
    for (std::size_t j = 0; j < 256; ++j) {
      const float ax = std::fabs(x[b + j]);
      if (ax > amax) {
        amax = ax;
        max = x[b + j];
      }
    }
    if (amax == 0) {
      std::fill(x + b, x + b + 256, 0.f);
      continue;
    }
    const float iscale = -127.f / max;
    const float d = 1.f / iscale;
    for (std::size_t j = 0; j < 256; ++j) {
      const float q = std::min(127.f, std::nearbyint(iscale * x[b + j]));
      x[b + j] = d * q;
    }
  }
}

}  // namespace

void round_activations(gguf::TensorType t, float* x, std::size_t n_rows, std::size_t n_cols) {
  using T = gguf::TensorType;
  const std::size_t n = n_rows * n_cols;
  switch (t) {
    case T::F32:
      return;
    case T::F16:
      for (std::size_t i = 0; i < n; ++i) x[i] = round_to_f16(x[i]);
      return;
    case T::BF16:
      for (std::size_t i = 0; i < n; ++i) x[i] = round_to_bf16(x[i]);
      return;
    case T::Q4_0: case T::Q4_1: case T::Q5_0: case T::Q5_1: case T::Q8_0: case T::Q8_1:
      if (n_cols % 32 == 0)
        for (std::size_t r = 0; r < n_rows; ++r) round_q8_0(x + r * n_cols, n_cols);
      return;
    case T::Q2_K: case T::Q3_K: case T::Q4_K: case T::Q5_K: case T::Q6_K: case T::Q8_K:
      if (n_cols % 256 == 0)
        for (std::size_t r = 0; r < n_rows; ++r) round_q8_k(x + r * n_cols, n_cols);
      return;
  }
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
