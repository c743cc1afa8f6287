// Session: the KV cache and the forward pass of the llama family (llama, qwen2, qwen3).
//
// The forward pass follows llama2.c's run.c `forward`, generalised to a batch of tokens so
// that a prompt is evaluated with each weight row dequantized once. Shapes use
//   n       tokens in this batch (<= kMaxBatch)
//   q_dim   n_head * head_dim,   kv_dim   n_head_kv * head_dim
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <new>
#include <thread>

#include "model/matmul.h"
#include "model/model_impl.h"

namespace cyllm::model {
namespace {

// Prompt tokens evaluated per forward call: bounds the activation memory while keeping
// nearly all of the benefit of reusing each dequantized weight row.
constexpr std::size_t kMaxBatch = 64;

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using FloatBuffer = std::unique_ptr<float[], FreeDeleter>;

// out = x / rms(x) * weight, over n elements (sum of squares in double, as ggml does).
void rmsnorm(float* out, const float* x, const float* weight, std::size_t n, float eps) {
  double ss = 0;
  for (std::size_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = 1.f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  for (std::size_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

class SessionImpl final : public Session {
 public:
  SessionImpl(std::shared_ptr<const Model> owner, const ModelImpl& model, std::uint32_t n_ctx,
              unsigned n_threads)
      : owner_(std::move(owner)), m_(model), hp_(model.hparams()), w_(model.weights()),
        n_ctx_(n_ctx), n_threads_(n_threads) {}

  // Allocates the KV cache and every buffer eval needs; false when memory is short.
  bool allocate();

  Result<void> eval(std::span<const tokenizer::TokenId> tokens) override { return run(tokens, false); }
  Result<void> eval_all(std::span<const tokenizer::TokenId> tokens) override { return run(tokens, true); }
  std::span<const float> logits() const override { return logits_; }
  std::span<const float> all_logits() const override { return all_logits_; }
  std::uint32_t n_past() const override { return n_past_; }
  std::uint32_t n_ctx() const override { return n_ctx_; }
  void truncate(std::uint32_t n) override { n_past_ = std::min(n, n_past_); }
  const Model& model() const override { return m_; }

 private:
  Result<void> run(std::span<const tokenizer::TokenId> tokens, bool all);
  // Runs tokens[0..n) at positions pos0.. through every layer, filling the KV cache.
  // Logits: none (logits == nullptr), of the last token only ([n_vocab]), or of every
  // token (`all`: [n][n_vocab]).
  void forward(const tokenizer::TokenId* tokens, std::size_t n, std::uint32_t pos0, float* logits, bool all);
  // y[n][w.n_rows] = x[n][w.n_cols] @ w^T
  void project(const WeightMatrix& w, const float* x, std::size_t n, float* y);
  // y[t][i] += b[i] when b is present.
  static void add_bias(float* y, const std::vector<float>& b, std::size_t n);
  // Rotates pairs of each head of x ([n][n_heads * head_dim]) by the batch's angles.
  void rope(float* x, std::size_t n, std::uint32_t n_heads) const;
  void attention(std::size_t layer, std::size_t n, std::uint32_t pos0);

  float* k_at(std::size_t layer, std::size_t pos) { return k_cache_.get() + (layer * n_ctx_ + pos) * kv_dim(); }
  float* v_at(std::size_t layer, std::size_t pos) { return v_cache_.get() + (layer * n_ctx_ + pos) * kv_dim(); }
  std::size_t q_dim() const { return std::size_t{hp_.n_head} * hp_.head_dim; }
  std::size_t kv_dim() const { return std::size_t{hp_.n_head_kv} * hp_.head_dim; }

  std::shared_ptr<const Model> owner_;  // keeps the model alive
  const ModelImpl& m_;
  const HParams& hp_;
  const Weights& w_;
  std::uint32_t n_ctx_;
  unsigned n_threads_;
  std::uint32_t n_past_ = 0;

  FloatBuffer k_cache_;  // [n_layer][n_ctx][kv_dim]
  FloatBuffer v_cache_;  // [n_layer][n_ctx][kv_dim]
  std::vector<float> logits_;  // [n_vocab]
  std::vector<float> all_logits_;  // [n][n_vocab] after eval_all
  // Activations of one batch.
  std::vector<float> x_;       // [n][n_embd] residual stream
  std::vector<float> xb_;      // [n][max(n_embd, q_dim)] normed input / block output
  std::vector<float> q_;       // [n][q_dim]
  std::vector<float> k_;       // [n][kv_dim]
  std::vector<float> v_;       // [n][kv_dim]
  std::vector<float> att_;     // [n][q_dim] attention output
  std::vector<float> hb_;      // [n][n_ff] gate
  std::vector<float> hb2_;     // [n][n_ff] up
  std::vector<float> rope_cos_, rope_sin_;  // [n][n_rot / 2]
  std::vector<float> scores_;  // [n_threads][n_ctx] attention weights per worker
  std::unique_ptr<MatmulScratch> mm_;
};

bool SessionImpl::allocate() {
  const std::uint64_t kv_elems_per_layer = std::uint64_t{n_ctx_} * kv_dim();
  if (kv_elems_per_layer / n_ctx_ != kv_dim()) return false;
  const std::uint64_t kv_elems = kv_elems_per_layer * hp_.n_layer;
  if (kv_elems / hp_.n_layer != kv_elems_per_layer || kv_elems > SIZE_MAX / sizeof(float) / 2) return false;
  // malloc, not zero-filled: positions are written before they are read, and untouched
  // pages of a large context cost no memory.
  k_cache_.reset(static_cast<float*>(std::malloc(kv_elems * sizeof(float))));
  v_cache_.reset(static_cast<float*>(std::malloc(kv_elems * sizeof(float))));
  if (!k_cache_ || !v_cache_) return false;
  try {
    const std::size_t nb = std::min<std::size_t>(kMaxBatch, n_ctx_);
    const std::size_t n_embd = hp_.n_embd, n_ff = hp_.n_ff;
    const std::size_t max_cols = std::max({n_embd, q_dim(), n_ff});
    logits_.assign(hp_.n_vocab, 0.f);
    x_.resize(nb * n_embd);
    xb_.resize(nb * std::max(n_embd, q_dim()));
    q_.resize(nb * q_dim());
    k_.resize(nb * kv_dim());
    v_.resize(nb * kv_dim());
    att_.resize(nb * q_dim());
    hb_.resize(nb * n_ff);
    hb2_.resize(nb * n_ff);
    rope_cos_.resize(nb * hp_.n_rot / 2);
    rope_sin_.resize(nb * hp_.n_rot / 2);
    scores_.resize(std::size_t{n_threads_} * n_ctx_);
    mm_ = std::make_unique<MatmulScratch>(n_threads_, max_cols);
  } catch (const std::bad_alloc&) {
    return false;
  }
  return true;
}

Result<void> SessionImpl::run(std::span<const tokenizer::TokenId> tokens, bool all) {
  if (tokens.empty()) return Error(Errc::InvalidArgument, "eval needs at least one token");
  if (tokens.size() > n_ctx_ - n_past_)
    return Error(Errc::InvalidArgument, "context overflow: " + std::to_string(n_past_) + " cached + " +
                                            std::to_string(tokens.size()) + " new tokens > n_ctx " +
                                            std::to_string(n_ctx_));
  for (tokenizer::TokenId id : tokens)
    if (id < 0 || static_cast<std::uint64_t>(id) >= hp_.n_vocab)
      return Error(Errc::InvalidArgument,
                   "token id " + std::to_string(id) + " is outside [0, " + std::to_string(hp_.n_vocab) + ")");
  const std::size_t n_vocab = hp_.n_vocab;
  if (all) {
    try {
      all_logits_.resize(tokens.size() * n_vocab);
    } catch (const std::bad_alloc&) {
      return Error(Errc::OutOfMemory, "cannot allocate the logits of " + std::to_string(tokens.size()) + " tokens");
    }
  }
  for (std::size_t done = 0; done < tokens.size();) {
    const std::size_t n = std::min(kMaxBatch, tokens.size() - done);
    float* out = all ? all_logits_.data() + done * n_vocab : (done + n == tokens.size() ? logits_.data() : nullptr);
    forward(tokens.data() + done, n, n_past_ + static_cast<std::uint32_t>(done), out, all);
    done += n;
  }
  if (all) std::copy(all_logits_.end() - static_cast<std::ptrdiff_t>(n_vocab), all_logits_.end(), logits_.begin());
  n_past_ += static_cast<std::uint32_t>(tokens.size());
  return {};
}

void SessionImpl::project(const WeightMatrix& w, const float* x, std::size_t n, float* y) {
  matmul(w, x, n, y, *mm_);
}

void SessionImpl::add_bias(float* y, const std::vector<float>& b, std::size_t n) {
  if (b.empty()) return;
  for (std::size_t t = 0; t < n; ++t)
    for (std::size_t i = 0; i < b.size(); ++i) y[t * b.size() + i] += b[i];
}

void SessionImpl::rope(float* x, std::size_t n, std::uint32_t n_heads) const {
  const std::size_t hd = hp_.head_dim, half = hp_.n_rot / 2;
  for (std::size_t t = 0; t < n; ++t) {
    const float* cs = rope_cos_.data() + t * half;
    const float* sn = rope_sin_.data() + t * half;
    for (std::size_t h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * hd;
      for (std::size_t i = 0; i < half; ++i) {
        // Normal (GPT-J / interleaved): pair (2i, 2i+1). NeoX: pair (i, i + n_rot/2).
        // Elements past n_rot are left as they are.
        const std::size_t a = hp_.rope == RopeStyle::Normal ? 2 * i : i;
        const std::size_t b = hp_.rope == RopeStyle::Normal ? 2 * i + 1 : i + half;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * cs[i] - x1 * sn[i];
        v[b] = x0 * sn[i] + x1 * cs[i];
      }
    }
  }
}

void SessionImpl::attention(std::size_t layer, std::size_t n, std::uint32_t pos0) {
  const std::size_t hd = hp_.head_dim, n_head = hp_.n_head;
  const std::size_t group = hp_.n_head / hp_.n_head_kv;  // query heads per KV head (GQA)
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  const std::size_t work = n * n_head * (pos0 + n) * hd;
  const unsigned workers = static_cast<unsigned>(std::min<std::size_t>(n_threads_, std::max<std::size_t>(1, work / 32768)));
  parallel_for(workers, n * n_head, [&](unsigned worker, std::size_t begin, std::size_t end) {
    float* sc = scores_.data() + std::size_t{worker} * n_ctx_;
    for (std::size_t item = begin; item < end; ++item) {
      const std::size_t t = item / n_head, h = item % n_head;
      const std::size_t pos = pos0 + t;        // causal: attend to positions 0..pos
      const std::size_t kv_off = (h / group) * hd;
      const float* q = q_.data() + (t * n_head + h) * hd;  // [head_dim]
      // scores[j] = q . k_j / sqrt(head_dim), softmax in float (sum in double).
      float max = -INFINITY;
      for (std::size_t j = 0; j <= pos; ++j) {
        sc[j] = dot(q, k_at(layer, j) + kv_off, hd) * scale;
        max = std::max(max, sc[j]);
      }
      double sum = 0;
      for (std::size_t j = 0; j <= pos; ++j) {
        sc[j] = std::exp(sc[j] - max);
        sum += sc[j];
      }
      const float inv = static_cast<float>(1.0 / sum);
      // out = sum_j softmax_j * v_j   [head_dim]
      float* out = att_.data() + (t * n_head + h) * hd;
      std::fill(out, out + hd, 0.f);
      for (std::size_t j = 0; j <= pos; ++j) {
        const float a = sc[j] * inv;
        const float* v = v_at(layer, j) + kv_off;
        for (std::size_t d = 0; d < hd; ++d) out[d] += a * v[d];
      }
    }
  });
}

void SessionImpl::forward(const tokenizer::TokenId* tokens, std::size_t n, std::uint32_t pos0,
                          float* logits, bool all) {
  const std::size_t n_embd = hp_.n_embd, n_ff = hp_.n_ff, hd = hp_.head_dim;
  const std::size_t kvd = kv_dim();
  const float eps = hp_.rms_eps;
  float* x = x_.data();
  float* xb = xb_.data();

  // Token embeddings: x[t] = token_embd[tokens[t]]        x: [n][n_embd]
  for (std::size_t t = 0; t < n; ++t)
    gguf::dequantize_row(w_.token_embd.type, w_.token_embd.row(static_cast<std::uint64_t>(tokens[t])),
                         x + t * n_embd, static_cast<std::int64_t>(n_embd));

  // RoPE angles of each position: theta_i = pos * freq_scale * base^(-2i/n_rot) / freq_factor_i
  const std::size_t half = hp_.n_rot / 2;
  for (std::size_t t = 0; t < n; ++t)
    for (std::size_t i = 0; i < half; ++i) {
      double theta = static_cast<double>(pos0 + t) * hp_.rope_freq_scale *
                     std::pow(static_cast<double>(hp_.rope_freq_base), -2.0 * static_cast<double>(i) / hp_.n_rot);
      if (!w_.rope_freqs.empty()) theta /= w_.rope_freqs[i];
      rope_cos_[t * half + i] = static_cast<float>(std::cos(theta));
      rope_sin_[t * half + i] = static_cast<float>(std::sin(theta));
    }

  for (std::size_t l = 0; l < hp_.n_layer; ++l) {
    const LayerWeights& lw = w_.layers[l];

    // Attention RMSNorm: xb = rmsnorm(x) * attn_norm     xb: [n][n_embd]
    for (std::size_t t = 0; t < n; ++t)
      rmsnorm(xb + t * n_embd, x + t * n_embd, lw.attn_norm.data(), n_embd, eps);

    // Q, K, V projections (+ biases: qwen2)   q: [n][q_dim]  k, v: [n][kv_dim]
    project(lw.wq, xb, n, q_.data());
    project(lw.wk, xb, n, k_.data());
    project(lw.wv, xb, n, v_.data());
    add_bias(q_.data(), lw.bq, n);
    add_bias(k_.data(), lw.bk, n);
    add_bias(v_.data(), lw.bv, n);

    // qwen3: RMSNorm of every Q and K head over head_dim, before RoPE.
    if (!lw.q_norm.empty()) {
      for (std::size_t i = 0; i < n * hp_.n_head; ++i)
        rmsnorm(q_.data() + i * hd, q_.data() + i * hd, lw.q_norm.data(), hd, eps);
      for (std::size_t i = 0; i < n * hp_.n_head_kv; ++i)
        rmsnorm(k_.data() + i * hd, k_.data() + i * hd, lw.k_norm.data(), hd, eps);
    }

    // RoPE on Q and K (normal for llama, NeoX for qwen2/qwen3).
    rope(q_.data(), n, hp_.n_head);
    rope(k_.data(), n, hp_.n_head_kv);

    // Append K, V to the cache at positions pos0..pos0+n-1.   cache: [n_ctx][kv_dim]
    for (std::size_t t = 0; t < n; ++t) {
      std::copy(k_.data() + t * kvd, k_.data() + (t + 1) * kvd, k_at(l, pos0 + t));
      std::copy(v_.data() + t * kvd, v_.data() + (t + 1) * kvd, v_at(l, pos0 + t));
    }

    // Causal GQA attention: att[t][h] = softmax(q k^T / sqrt(hd)) v   att: [n][q_dim]
    attention(l, n, pos0);

    // Output projection and residual: x += att @ wo^T     xb: [n][n_embd]
    project(lw.wo, att_.data(), n, xb);
    for (std::size_t i = 0; i < n * n_embd; ++i) x[i] += xb[i];

    // FFN RMSNorm: xb = rmsnorm(x) * ffn_norm
    for (std::size_t t = 0; t < n; ++t)
      rmsnorm(xb + t * n_embd, x + t * n_embd, lw.ffn_norm.data(), n_embd, eps);

    // SwiGLU: hb = silu(xb @ gate^T) * (xb @ up^T)     hb: [n][n_ff]
    project(lw.w_gate, xb, n, hb_.data());
    project(lw.w_up, xb, n, hb2_.data());
    for (std::size_t i = 0; i < n * n_ff; ++i) {
      const float g = hb_[i];
      hb_[i] = g / (1.f + std::exp(-g)) * hb2_[i];
    }

    // Down projection and residual: x += hb @ down^T
    project(lw.w_down, hb_.data(), n, xb);
    for (std::size_t i = 0; i < n * n_embd; ++i) x[i] += xb[i];
  }

  if (!logits) return;
  // Final RMSNorm and the output projection, of the last token ([n_vocab]) or of all
  // ([n][n_vocab]).
  const std::size_t first = all ? 0 : n - 1;
  for (std::size_t t = first; t < n; ++t)
    rmsnorm(xb + (t - first) * n_embd, x + t * n_embd, w_.output_norm.data(), n_embd, eps);
  project(w_.output, xb, n - first, logits);
}

}  // namespace

Result<void> eval_batch(std::span<const BatchEntry> entries) {
  if (entries.empty()) return Error(Errc::InvalidArgument, "eval_batch needs at least one entry");
  const Model* model = nullptr;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const BatchEntry& e = entries[i];
    const std::string where = "batch entry " + std::to_string(i);
    if (!e.session) return Error(Errc::InvalidArgument, where + " has no session");
    if (e.tokens.empty()) return Error(Errc::InvalidArgument, where + " has no tokens");
    if (!model) model = &e.session->model();
    if (&e.session->model() != model)
      return Error(Errc::InvalidArgument, where + " belongs to another model than entry 0");
    for (std::size_t j = 0; j < i; ++j)
      if (entries[j].session == e.session)
        return Error(Errc::InvalidArgument, where + " repeats the session of entry " + std::to_string(j));
    const Session& s = *e.session;
    if (e.tokens.size() > s.n_ctx() - s.n_past())
      return Error(Errc::InvalidArgument, where + ": context overflow: " + std::to_string(s.n_past()) +
                                              " cached + " + std::to_string(e.tokens.size()) +
                                              " new tokens > n_ctx " + std::to_string(s.n_ctx()));
    const std::uint32_t n_vocab = model->hparams().n_vocab;
    for (tokenizer::TokenId id : e.tokens)
      if (id < 0 || static_cast<std::uint64_t>(id) >= n_vocab)
        return Error(Errc::InvalidArgument, where + ": token id " + std::to_string(id) + " is outside [0, " +
                                                std::to_string(n_vocab) + ")");
  }
  // Checked above, so each eval below succeeds. (Serial for now: one pass over the
  // weights per sequence. The batched forward pass replaces this loop.)
  for (const BatchEntry& e : entries) CYLLM_TRY_VOID(e.session->eval(e.tokens));
  return {};
}

Result<std::unique_ptr<Session>> Session::create(std::shared_ptr<const Model> model,
                                                 const SessionOptions& opts) {
  if (!model) return Error(Errc::InvalidArgument, "no model");
  const auto* impl = dynamic_cast<const ModelImpl*>(model.get());
  if (!impl) return Error(Errc::InvalidArgument, "the model was not loaded by Model::load");
  const HParams& hp = impl->hparams();
  const std::uint32_t n_ctx = opts.n_ctx ? opts.n_ctx : hp.n_ctx_train;
  if (n_ctx == 0) return Error(Errc::InvalidArgument, "n_ctx is 0 and the model has no training context");
  unsigned n_threads = opts.n_threads ? opts.n_threads : std::thread::hardware_concurrency();
  n_threads = std::clamp(n_threads, 1u, 1024u);
  try {
    auto s = std::make_unique<SessionImpl>(model, *impl, n_ctx, n_threads);
    if (!s->allocate())
      return Error(Errc::OutOfMemory,
                   "cannot allocate the KV cache and buffers for n_ctx " + std::to_string(n_ctx) + " (" +
                       std::to_string(impl->kv_bytes_per_token() * n_ctx / (1024 * 1024)) + " MiB of KV cache)");
    return std::unique_ptr<Session>(std::move(s));
  } catch (const std::bad_alloc&) {
    return Error(Errc::OutOfMemory, "out of memory creating a session");
  }
}

}  // namespace cyllm::model
