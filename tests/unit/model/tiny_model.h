// Small random-weight models written with gguf::Writer, and a slow reference forward pass
// (double precision, full recomputation over all positions, no KV cache) to check the
// engine's forward pass against. Shared by the model tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "cyllm/gguf.h"

namespace cyllm::test {

struct TinySpec {
  std::string arch = "llama";  // llama, qwen2 (QKV biases), qwen3 (Q/K norms); others: as is
  std::uint32_t n_vocab = 300;
  std::uint32_t n_vocab_tokens = 0;  // entries of tokenizer.ggml.tokens; 0: n_vocab
  std::uint32_t n_embd = 64;
  std::uint32_t n_layer = 2;
  std::uint32_t n_head = 4;
  std::uint32_t n_head_kv = 2;
  std::uint32_t head_dim = 16;  // written as key_length when != n_embd / n_head
  std::uint32_t n_ff = 96;
  std::uint32_t n_ctx = 128;
  float rms_eps = 1e-5f;
  float rope_base = 10000.f;
  float rope_scale_factor = 1.f;  // linear scaling when != 1
  bool tied = false;              // no output.weight
  gguf::TensorType type = gguf::TensorType::F32;  // matrices and token_embd
  std::uint32_t seed = 1;
  // For the error tests: tensors to leave out, and one tensor to write with a wrong shape.
  std::set<std::string> skip;
  std::string misshape;

  bool biases() const { return arch == "qwen2"; }
  bool qk_norm() const { return arch == "qwen3"; }
};

// A deterministic generator (same numbers on every platform).
class Lcg {
 public:
  explicit Lcg(std::uint32_t seed) : s_(seed * 2654435761u + 12345u) {}
  // Uniform in [-a, a).
  float uniform(float a) {
    s_ = s_ * 6364136223846793005ull + 1442695040888963407ull;
    return a * (static_cast<float>(s_ >> 40) / 8388608.f - 1.f);
  }

 private:
  std::uint64_t s_;
};

// Byte-level SentencePiece-style vocabulary: <unk>, <s>, </s>, the 256 byte tokens
// <0xXX>, then filler pieces up to n_vocab.
inline void add_byte_vocab(gguf::Writer& w, std::uint32_t n_vocab) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<std::int32_t> types = {2, 3, 3};  // unknown, control, control
  char buf[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    tokens.push_back(buf);
    types.push_back(6);  // byte
  }
  for (std::uint32_t i = 0; tokens.size() < n_vocab; ++i) {
    tokens.push_back("\xe2\x96\x81t" + std::to_string(i));  // "▁t<i>"
    types.push_back(1);  // normal
  }
  std::vector<float> scores(tokens.size());
  for (std::size_t i = 0; i < scores.size(); ++i) scores[i] = -static_cast<float>(i);
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_strings("tokenizer.ggml.tokens", tokens);
  w.set_f32s("tokenizer.ggml.scores", scores);
  w.set_i32s("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.unknown_token_id", 0);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
}

inline gguf::Writer make_tiny_model(const TinySpec& s) {
  gguf::Writer w;
  const std::string a = s.arch + ".";
  w.set_string("general.architecture", s.arch);
  w.set_string("general.name", "tiny-" + s.arch);
  w.set_u32(a + "context_length", s.n_ctx);
  w.set_u32(a + "embedding_length", s.n_embd);
  w.set_u32(a + "block_count", s.n_layer);
  w.set_u32(a + "feed_forward_length", s.n_ff);
  w.set_u32(a + "attention.head_count", s.n_head);
  w.set_u32(a + "attention.head_count_kv", s.n_head_kv);
  if (s.head_dim * s.n_head != s.n_embd) {
    w.set_u32(a + "attention.key_length", s.head_dim);
    w.set_u32(a + "attention.value_length", s.head_dim);
  }
  w.set_f32(a + "attention.layer_norm_rms_epsilon", s.rms_eps);
  w.set_f32(a + "rope.freq_base", s.rope_base);
  if (s.rope_scale_factor != 1.f) {
    w.set_string(a + "rope.scaling.type", "linear");
    w.set_f32(a + "rope.scaling.factor", s.rope_scale_factor);
  }
  add_byte_vocab(w, s.n_vocab_tokens ? s.n_vocab_tokens : s.n_vocab);

  Lcg rng(s.seed);
  auto add = [&](const std::string& name, std::vector<std::uint64_t> ne, gguf::TensorType type, float scale,
                 float offset) {
    if (s.skip.count(name)) return;
    std::uint64_t n = 1;
    for (auto d : ne) n *= d;
    std::vector<float> v(n);
    for (float& x : v) x = offset + rng.uniform(scale);
    if (name == s.misshape) {  // same element count, transposed
      if (ne.size() == 2) std::swap(ne[0], ne[1]);
      else ne = {ne[0] / 2, 2};
    }
    w.add_tensor(name, ne, type, v);
  };
  const gguf::TensorType f32 = gguf::TensorType::F32;
  const std::uint64_t q_dim = std::uint64_t{s.n_head} * s.head_dim;
  const std::uint64_t kv_dim = std::uint64_t{s.n_head_kv} * s.head_dim;
  const float in_scale = 1.7f / std::sqrt(static_cast<float>(s.n_embd));
  add("token_embd.weight", {s.n_embd, s.n_vocab}, s.type, 1.f, 0.f);
  add("output_norm.weight", {s.n_embd}, f32, 0.2f, 1.f);
  if (!s.tied) add("output.weight", {s.n_embd, s.n_vocab}, s.type, in_scale, 0.f);
  for (std::uint32_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {s.n_embd}, f32, 0.2f, 1.f);
    add(p + "attn_q.weight", {s.n_embd, q_dim}, s.type, in_scale, 0.f);
    add(p + "attn_k.weight", {s.n_embd, kv_dim}, s.type, in_scale, 0.f);
    add(p + "attn_v.weight", {s.n_embd, kv_dim}, s.type, in_scale, 0.f);
    add(p + "attn_output.weight", {q_dim, s.n_embd}, s.type, 1.7f / std::sqrt(static_cast<float>(q_dim)), 0.f);
    if (s.biases()) {
      add(p + "attn_q.bias", {q_dim}, f32, 0.5f, 0.f);
      add(p + "attn_k.bias", {kv_dim}, f32, 0.5f, 0.f);
      add(p + "attn_v.bias", {kv_dim}, f32, 0.5f, 0.f);
    }
    if (s.qk_norm()) {
      add(p + "attn_q_norm.weight", {s.head_dim}, f32, 0.3f, 1.f);
      add(p + "attn_k_norm.weight", {s.head_dim}, f32, 0.3f, 1.f);
    }
    add(p + "ffn_norm.weight", {s.n_embd}, f32, 0.2f, 1.f);
    add(p + "ffn_gate.weight", {s.n_embd, s.n_ff}, s.type, in_scale, 0.f);
    add(p + "ffn_up.weight", {s.n_embd, s.n_ff}, s.type, in_scale, 0.f);
    add(p + "ffn_down.weight", {s.n_ff, s.n_embd}, s.type, 1.7f / std::sqrt(static_cast<float>(s.n_ff)), 0.f);
  }
  return w;
}

// ---- Reference forward pass ----------------------------------------------------------

// A tensor of the file as doubles (row-major, ne[0] fastest).
inline std::vector<double> tensor_values(const gguf::File& f, const std::string& name) {
  const gguf::TensorInfo* t = f.tensor(name);
  if (!t) return {};
  const std::uint64_t cols = t->ne[0], rows = t->n_rows();
  std::vector<float> row(cols);
  std::vector<double> out;
  out.reserve(cols * rows);
  const std::uint64_t rb = gguf::row_bytes(t->type, cols);
  for (std::uint64_t r = 0; r < rows; ++r) {
    gguf::dequantize_row(t->type, t->data + r * rb, row.data(), static_cast<std::int64_t>(cols));
    out.insert(out.end(), row.begin(), row.end());
  }
  return out;
}

// y = W x for W with `rows` rows of x.size() columns.
inline std::vector<double> ref_matvec(const std::vector<double>& W, const std::vector<double>& x, std::size_t rows) {
  std::vector<double> y(rows, 0.0);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < x.size(); ++c) y[r] += W[r * x.size() + c] * x[c];
  return y;
}

inline std::vector<double> ref_rmsnorm(const std::vector<double>& x, const std::vector<double>& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double scale = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] * scale * w[i];
  return y;
}

// Rotates one head vector v (length head_dim) for position pos.
inline void ref_rope(double* v, std::size_t head_dim, std::size_t pos, const TinySpec& s) {
  const bool neox = s.arch != "llama";
  const std::size_t half = head_dim / 2;
  for (std::size_t i = 0; i < half; ++i) {
    const double freq = std::pow(static_cast<double>(s.rope_base), -2.0 * static_cast<double>(i) / head_dim);
    const double theta = static_cast<double>(pos) / s.rope_scale_factor * freq;
    double& a = neox ? v[i] : v[2 * i];
    double& b = neox ? v[i + half] : v[2 * i + 1];
    const double x0 = a, x1 = b;
    a = x0 * std::cos(theta) - x1 * std::sin(theta);
    b = x0 * std::sin(theta) + x1 * std::cos(theta);
  }
}

// Next-token logits after `tokens`, recomputing every position from scratch.
inline std::vector<double> reference_logits(const gguf::File& f, const TinySpec& s,
                                            const std::vector<std::int32_t>& tokens) {
  const std::size_t T = tokens.size(), d = s.n_embd, hd = s.head_dim;
  const std::size_t nh = s.n_head, nkv = s.n_head_kv;
  const std::vector<double> embd = tensor_values(f, "token_embd.weight");
  std::vector<std::vector<double>> X(T);
  for (std::size_t t = 0; t < T; ++t)
    X[t].assign(embd.begin() + static_cast<std::ptrdiff_t>(tokens[t] * d),
                embd.begin() + static_cast<std::ptrdiff_t>((tokens[t] + 1) * d));

  for (std::uint32_t l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    auto W = [&](const char* n) { return tensor_values(f, p + n); };
    const auto attn_norm = W("attn_norm.weight"), wq = W("attn_q.weight"), wk = W("attn_k.weight"),
               wv = W("attn_v.weight"), wo = W("attn_output.weight"), bq = W("attn_q.bias"),
               bk = W("attn_k.bias"), bv = W("attn_v.bias"), qn = W("attn_q_norm.weight"),
               kn = W("attn_k_norm.weight"), ffn_norm = W("ffn_norm.weight"), wg = W("ffn_gate.weight"),
               wu = W("ffn_up.weight"), wd = W("ffn_down.weight");
    std::vector<std::vector<double>> Q(T), K(T), V(T);
    for (std::size_t t = 0; t < T; ++t) {
      const auto h = ref_rmsnorm(X[t], attn_norm, s.rms_eps);
      Q[t] = ref_matvec(wq, h, nh * hd);
      K[t] = ref_matvec(wk, h, nkv * hd);
      V[t] = ref_matvec(wv, h, nkv * hd);
      for (std::size_t i = 0; i < bq.size(); ++i) Q[t][i] += bq[i];
      for (std::size_t i = 0; i < bk.size(); ++i) K[t][i] += bk[i];
      for (std::size_t i = 0; i < bv.size(); ++i) V[t][i] += bv[i];
      for (std::size_t h0 = 0; h0 < nh; ++h0) {
        if (!qn.empty()) {
          std::vector<double> head(Q[t].begin() + static_cast<std::ptrdiff_t>(h0 * hd),
                                   Q[t].begin() + static_cast<std::ptrdiff_t>((h0 + 1) * hd));
          head = ref_rmsnorm(head, qn, s.rms_eps);
          std::copy(head.begin(), head.end(), Q[t].begin() + static_cast<std::ptrdiff_t>(h0 * hd));
        }
        ref_rope(Q[t].data() + h0 * hd, hd, t, s);
      }
      for (std::size_t h0 = 0; h0 < nkv; ++h0) {
        if (!kn.empty()) {
          std::vector<double> head(K[t].begin() + static_cast<std::ptrdiff_t>(h0 * hd),
                                   K[t].begin() + static_cast<std::ptrdiff_t>((h0 + 1) * hd));
          head = ref_rmsnorm(head, kn, s.rms_eps);
          std::copy(head.begin(), head.end(), K[t].begin() + static_cast<std::ptrdiff_t>(h0 * hd));
        }
        ref_rope(K[t].data() + h0 * hd, hd, t, s);
      }
    }
    for (std::size_t t = 0; t < T; ++t) {
      std::vector<double> att(nh * hd, 0.0);
      for (std::size_t h0 = 0; h0 < nh; ++h0) {
        const std::size_t kvh = h0 / (nh / nkv);
        std::vector<double> w(t + 1);
        double mx = -1e300, sum = 0;
        for (std::size_t j = 0; j <= t; ++j) {
          double sc = 0;
          for (std::size_t i = 0; i < hd; ++i) sc += Q[t][h0 * hd + i] * K[j][kvh * hd + i];
          w[j] = sc / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, w[j]);
        }
        for (double& x : w) sum += (x = std::exp(x - mx));
        for (std::size_t j = 0; j <= t; ++j)
          for (std::size_t i = 0; i < hd; ++i) att[h0 * hd + i] += w[j] / sum * V[j][kvh * hd + i];
      }
      const auto o = ref_matvec(wo, att, d);
      for (std::size_t i = 0; i < d; ++i) X[t][i] += o[i];
      const auto h = ref_rmsnorm(X[t], ffn_norm, s.rms_eps);
      auto g = ref_matvec(wg, h, s.n_ff);
      const auto u = ref_matvec(wu, h, s.n_ff);
      for (std::size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
      const auto dn = ref_matvec(wd, g, d);
      for (std::size_t i = 0; i < d; ++i) X[t][i] += dn[i];
    }
  }
  const auto h = ref_rmsnorm(X[T - 1], tensor_values(f, "output_norm.weight"), s.rms_eps);
  const auto out = tensor_values(f, s.tied ? "token_embd.weight" : "output.weight");
  return ref_matvec(out, h, s.n_vocab);
}

}  // namespace cyllm::test
