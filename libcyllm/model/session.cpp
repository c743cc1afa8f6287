// Session: the KV cache and the forward pass of the llama family (llama, qwen2, qwen3).
//
// The forward pass follows llama2.c's run.c `forward`, generalised to a batch of tokens
// that may belong to several sequences (eval_batch): every projection runs once over all
// the batch's tokens (each weight row is read once for all of them), while RoPE positions,
// the KV cache and attention are per sequence. Shapes use
//   n       tokens in this batch (<= kMaxBatch)
//   q_dim   n_head * head_dim,   kv_dim   n_head_kv * head_dim
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>

#include "gguf/half.h"
#include "model/matmul.h"
#include "model/model_impl.h"

namespace cyllm::model {
namespace {

// Prompt tokens evaluated per forward call: bounds the activation memory while keeping
// nearly all of the benefit of reusing each dequantized weight row.
constexpr std::size_t kMaxBatch = 64;


// out = x / rms(x) * weight, over n elements (sum of squares in double, as ggml does).
void rmsnorm(float* out, const float* x, const float* weight, std::size_t n, float eps) {
  double ss = 0;
  for (std::size_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = 1.f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  for (std::size_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

// One layer-position row of K or V: kv_dim values of the cache's type. q8_0 rows hold, per
// KV head, ceil(head_dim / 32) f32 scales then head_dim int8 (blocks of 32, the last one
// shorter when head_dim is not a multiple of 32).
class KvCache {
 public:
  KvCache(KvType type, std::size_t n_layer, std::size_t n_ctx, std::size_t n_head_kv, std::size_t hd)
      : type_(type), n_ctx_(n_ctx), n_head_kv_(n_head_kv), hd_(hd), nbh_((hd + 31) / 32) {
    head_bytes_ = type == KvType::F32 ? hd * 4 : type == KvType::F16 ? hd * 2 : nbh_ * 4 + hd;
    row_bytes_ = head_bytes_ * n_head_kv;
    n_layer_ = n_layer;
  }
  // false when memory is short. malloc, not zero-filled: positions are written before
  // they are read, and untouched pages of a large context cost no memory.
  bool allocate() {
    const std::uint64_t per_layer = std::uint64_t{n_ctx_} * row_bytes_;
    if (n_ctx_ && per_layer / n_ctx_ != row_bytes_) return false;
    const std::uint64_t total = per_layer * n_layer_;
    if (n_layer_ && (total / n_layer_ != per_layer || total > SIZE_MAX / 2)) return false;
    k_.reset(static_cast<std::byte*>(std::malloc(total ? total : 1)));
    v_.reset(static_cast<std::byte*>(std::malloc(total ? total : 1)));
    return k_ && v_;
  }
  std::byte* k(std::size_t layer, std::size_t pos) const { return k_.get() + (layer * n_ctx_ + pos) * row_bytes_; }
  std::byte* v(std::size_t layer, std::size_t pos) const { return v_.get() + (layer * n_ctx_ + pos) * row_bytes_; }
  std::size_t head_bytes() const { return head_bytes_; }
  KvType type() const { return type_; }

  // Encodes one row of kv_dim floats.
  void store(const float* src, std::byte* dst) const {
    const std::size_t n = n_head_kv_ * hd_;
    if (type_ == KvType::F32) {
      std::memcpy(dst, src, n * 4);
    } else if (type_ == KvType::F16) {
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint16_t h = gguf::fp32_to_fp16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
    } else {
      for (std::size_t h = 0; h < n_head_kv_; ++h) {
        std::byte* head = dst + h * head_bytes_;
        auto* qs = reinterpret_cast<std::int8_t*>(head + nbh_ * 4);
        const float* x = src + h * hd_;
        for (std::size_t b = 0; b < nbh_; ++b) {
          const std::size_t lo = b * 32, hi = std::min(hd_, lo + 32);
          float amax = 0;
          for (std::size_t i = lo; i < hi; ++i) amax = std::max(amax, std::fabs(x[i]));
          const float d = amax / 127.f, id = d != 0.f ? 1.f / d : 0.f;
          std::memcpy(head + b * 4, &d, 4);
          for (std::size_t i = lo; i < hi; ++i) qs[i] = static_cast<std::int8_t>(std::nearbyint(x[i] * id));
        }
      }
    }
  }
  // q . head (head_dim elements at `head`).
  float dot(const kernels::Table& k, const float* q, const std::byte* head) const {
    if (type_ == KvType::F32) return k.dot_f32(q, reinterpret_cast<const float*>(head), hd_);
    if (type_ == KvType::F16) return k.dot_f16(q, reinterpret_cast<const std::uint16_t*>(head), hd_);
    const auto* qs = reinterpret_cast<const std::int8_t*>(head + nbh_ * 4);
    float s = 0;
    for (std::size_t b = 0; b < nbh_; ++b) {
      float d, p = 0;
      std::memcpy(&d, head + b * 4, 4);
      for (std::size_t i = b * 32; i < std::min(hd_, b * 32 + 32); ++i) p += q[i] * static_cast<float>(qs[i]);
      s += d * p;
    }
    return s;
  }
  // y += a * head.
  void axpy(const kernels::Table& k, float* y, float a, const std::byte* head) const {
    if (type_ == KvType::F32) return k.axpy_f32(y, a, reinterpret_cast<const float*>(head), hd_);
    if (type_ == KvType::F16) return k.axpy_f16(y, a, reinterpret_cast<const std::uint16_t*>(head), hd_);
    const auto* qs = reinterpret_cast<const std::int8_t*>(head + nbh_ * 4);
    for (std::size_t b = 0; b < nbh_; ++b) {
      float d;
      std::memcpy(&d, head + b * 4, 4);
      const float ad = a * d;
      for (std::size_t i = b * 32; i < std::min(hd_, b * 32 + 32); ++i) y[i] += ad * static_cast<float>(qs[i]);
    }
  }

 private:
  struct FreeDeleter {
    void operator()(std::byte* p) const { std::free(p); }
  };
  KvType type_;
  std::size_t n_layer_ = 0, n_ctx_, n_head_kv_, hd_, nbh_, head_bytes_ = 0, row_bytes_ = 0;
  std::unique_ptr<std::byte[], FreeDeleter> k_, v_;
};

// Activations of one batch of up to kMaxBatch tokens, and the matmul scratch.
struct Scratch {
  std::vector<float> x;       // [n][n_embd] residual stream
  std::vector<float> xb;      // [n][max(n_embd, q_dim)] normed input / block output
  std::vector<float> q;       // [n][q_dim]
  std::vector<float> k;       // [n][kv_dim]
  std::vector<float> v;       // [n][kv_dim]
  std::vector<float> att;     // [n][q_dim] attention output
  std::vector<float> hb;      // [n][n_ff] gate
  std::vector<float> hb2;     // [n][n_ff] up
  std::vector<float> rope_cos, rope_sin;  // [n][n_rot / 2]
  std::vector<float> scores;  // [pool size][scores_ctx * GQA group] attention weights per worker
  std::size_t scores_ctx = 0;
  std::unique_ptr<MatmulContext> mm;
};

class SessionImpl;

// A run of consecutive tokens of one sequence within a batch.
struct Segment {
  SessionImpl* s;
  const tokenizer::TokenId* tokens;
  std::size_t n;
  std::uint32_t pos0;
};
// Where the next-token logits after batch token `token` go ([n_vocab] floats).
struct LogitsRequest {
  std::size_t token;
  float* dst;
};

class SessionImpl final : public Session {
 public:
  SessionImpl(std::shared_ptr<const Model> owner, const ModelImpl& model, std::uint32_t n_ctx,
              std::shared_ptr<ThreadPool> pool, const kernels::Table& k, KvType kv_type, bool reference)
      : owner_(std::move(owner)), m_(model), hp_(model.hparams()), w_(model.weights()), n_ctx_(n_ctx),
        pool_(std::move(pool)), k_(k), reference_(reference),
        kv_(kv_type, hp_.n_layer, n_ctx, hp_.n_head_kv, hp_.head_dim) {}

  // Allocates the KV cache and every buffer eval needs; false when memory is short.
  bool allocate(bool onednn);

  Result<void> eval(std::span<const tokenizer::TokenId> tokens) override { return run(tokens, false); }
  Result<void> eval_all(std::span<const tokenizer::TokenId> tokens) override { return run(tokens, true); }
  std::span<const float> logits() const override { return logits_; }
  std::span<const float> all_logits() const override { return all_logits_; }
  std::uint32_t n_past() const override { return n_past_; }
  std::uint32_t n_ctx() const override { return n_ctx_; }
  void truncate(std::uint32_t n) override { n_past_ = std::min(n, n_past_); }
  const Model& model() const override { return m_; }
  const char* kernels_name() const override { return reference_ ? "reference" : kernels::isa_name(k_.isa); }

  // Runs the batch's segments (<= kMaxBatch tokens in all) through every layer with this
  // session's pool, kernels and scratch, writing each segment's KV cache at its
  // positions, then the requested logits. Advances no n_past: when it throws
  // std::bad_alloc the sessions are as before (cache rows past n_past are unused).
  void forward(const std::vector<Segment>& segs, const std::vector<LogitsRequest>& out);
  // Grows the scratch for attention over up to `ctx` positions (std::bad_alloc).
  void prepare(std::size_t ctx);
  void advance(std::size_t n) { n_past_ += static_cast<std::uint32_t>(n); }
  float* logits_data() { return logits_.data(); }

 private:
  Result<void> run(std::span<const tokenizer::TokenId> tokens, bool all);
  // y[n][w.n_rows] = x[n][w.n_cols] @ w^T
  void project(const WeightMatrix& w, const float* x, std::size_t n, float* y) { matmul(w, x, n, y, *sc_.mm); }
  // y[t][i] += b[i] when b is present.
  static void add_bias(float* y, const std::vector<float>& b, std::size_t n);
  // Rotates pairs of each head of x ([n][n_heads * head_dim]) by each token's angles.
  void rope(float* x, std::size_t n, std::uint32_t n_heads) const;
  void attention(const std::vector<Segment>& segs, std::size_t layer, std::size_t n);

  std::size_t q_dim() const { return std::size_t{hp_.n_head} * hp_.head_dim; }
  std::size_t kv_dim() const { return std::size_t{hp_.n_head_kv} * hp_.head_dim; }

  std::shared_ptr<const Model> owner_;  // keeps the model alive
  const ModelImpl& m_;
  const HParams& hp_;
  const Weights& w_;
  std::uint32_t n_ctx_;
  std::shared_ptr<ThreadPool> pool_;
  const kernels::Table& k_;
  bool reference_;
  std::uint32_t n_past_ = 0;

  KvCache kv_;                     // [n_layer][n_ctx][kv_dim] each of K and V
  std::vector<float> logits_;      // [n_vocab]
  std::vector<float> all_logits_;  // [n][n_vocab] after eval_all
  Scratch sc_;
  std::vector<std::pair<const SessionImpl*, std::uint32_t>> tok_;  // per batch token: sequence, position
};

bool SessionImpl::allocate(bool onednn) {
  if (!kv_.allocate()) return false;
  try {
    const std::size_t n_embd = hp_.n_embd, n_ff = hp_.n_ff;
    const std::size_t max_cols = std::max({n_embd, q_dim(), n_ff});
    logits_.assign(hp_.n_vocab, 0.f);
    sc_.x.resize(kMaxBatch * n_embd);
    sc_.xb.resize(kMaxBatch * std::max(n_embd, q_dim()));
    sc_.q.resize(kMaxBatch * q_dim());
    sc_.k.resize(kMaxBatch * kv_dim());
    sc_.v.resize(kMaxBatch * kv_dim());
    sc_.att.resize(kMaxBatch * q_dim());
    sc_.hb.resize(kMaxBatch * n_ff);
    sc_.hb2.resize(kMaxBatch * n_ff);
    sc_.rope_cos.resize(kMaxBatch * hp_.n_rot / 2);
    sc_.rope_sin.resize(kMaxBatch * hp_.n_rot / 2);
    tok_.reserve(kMaxBatch);
    sc_.mm = std::make_unique<MatmulContext>(*pool_, k_, max_cols, reference_);
    sc_.mm->set_onednn(onednn);
    prepare(n_ctx_ < 512 ? n_ctx_ : 512);
  } catch (const std::bad_alloc&) {
    return false;
  }
  return true;
}

void SessionImpl::prepare(std::size_t ctx) {
  if (ctx <= sc_.scores_ctx) return;
  const std::size_t group = hp_.n_head / hp_.n_head_kv;
  sc_.scores.resize(std::size_t{pool_->size()} * ctx * group);
  sc_.scores_ctx = ctx;
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
  try {
    if (all) all_logits_.resize(tokens.size() * n_vocab);
    prepare(n_past_ + tokens.size());
  } catch (const std::bad_alloc&) {
    return Error(Errc::OutOfMemory, "cannot allocate the logits of " + std::to_string(tokens.size()) + " tokens");
  }
  std::vector<Segment> segs(1);
  std::vector<LogitsRequest> out;
  for (std::size_t done = 0; done < tokens.size();) {
    const std::size_t n = std::min(kMaxBatch, tokens.size() - done);
    segs[0] = Segment{this, tokens.data() + done, n, n_past_ + static_cast<std::uint32_t>(done)};
    out.clear();
    if (all) {
      for (std::size_t t = 0; t < n; ++t) out.push_back({t, all_logits_.data() + (done + t) * n_vocab});
    } else if (done + n == tokens.size()) {
      out.push_back({n - 1, logits_.data()});
    }
    try {
      forward(segs, out);
    } catch (const std::bad_alloc&) {
      return Error(Errc::OutOfMemory, "out of memory evaluating " + std::to_string(tokens.size()) + " tokens");
    }
    done += n;
  }
  if (all) std::copy(all_logits_.end() - static_cast<std::ptrdiff_t>(n_vocab), all_logits_.end(), logits_.begin());
  n_past_ += static_cast<std::uint32_t>(tokens.size());
  return {};
}

void SessionImpl::add_bias(float* y, const std::vector<float>& b, std::size_t n) {
  if (b.empty()) return;
  for (std::size_t t = 0; t < n; ++t)
    for (std::size_t i = 0; i < b.size(); ++i) y[t * b.size() + i] += b[i];
}

void SessionImpl::rope(float* x, std::size_t n, std::uint32_t n_heads) const {
  const std::size_t hd = hp_.head_dim, half = hp_.n_rot / 2;
  for (std::size_t t = 0; t < n; ++t) {
    const float* cs = sc_.rope_cos.data() + t * half;
    const float* sn = sc_.rope_sin.data() + t * half;
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

void SessionImpl::attention(const std::vector<Segment>& segs, std::size_t layer, std::size_t n) {
  const std::size_t hd = hp_.head_dim, n_head = hp_.n_head;
  const std::size_t group = hp_.n_head / hp_.n_head_kv;  // query heads per KV head (GQA)
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  std::size_t work = 0;
  for (const Segment& s : segs) work += s.n * n_head * (s.pos0 + s.n) * hd;
  const std::size_t workers = std::clamp<std::size_t>(work / 32768, 1, pool_->size());
  if (kv_.type() == KvType::F16 && !reference_) {
    // One work item per (token, KV head): its `group` query heads share every K and V row
    // (converted from f16 once for all of them). scores: [position][head in group].
    const std::size_t n_kv = hp_.n_head_kv;
    const std::size_t items = n * n_kv;
    const std::size_t grain = workers == 1 ? items : std::max<std::size_t>(1, items / (workers * 4));
    const std::size_t ld = kv_dim();  // f16 elements from one position's row to the next
    pool_->parallel_for(items, grain, [&](unsigned worker, std::size_t begin, std::size_t end) {
      float* sc = sc_.scores.data() + std::size_t{worker} * sc_.scores_ctx * group;
      for (std::size_t item = begin; item < end; ++item) {
        const std::size_t t = item / n_kv, g = item % n_kv;
        const KvCache& kv = tok_[t].first->kv_;
        const std::size_t n_pos = std::size_t{tok_[t].second} + 1;  // causal: positions 0..pos
        const auto* k0 = reinterpret_cast<const std::uint16_t*>(kv.k(layer, 0) + g * kv.head_bytes());
        const auto* v0 = reinterpret_cast<const std::uint16_t*>(kv.v(layer, 0) + g * kv.head_bytes());
        const float* q = sc_.q.data() + (t * n_head + g * group) * hd;  // [group][head_dim]
        k_.scores_f16(q, group, hd, k0, ld, n_pos, scale, sc);
        // softmax per head over its positions (stride group), in float, summed in double
        for (std::size_t h = 0; h < group; ++h) {
          float max = -INFINITY;
          for (std::size_t j = 0; j < n_pos; ++j) max = std::max(max, sc[j * group + h]);
          double sum = 0;
          for (std::size_t j = 0; j < n_pos; ++j) {
            sc[j * group + h] = std::exp(sc[j * group + h] - max);
            sum += sc[j * group + h];
          }
          const float inv = static_cast<float>(1.0 / sum);
          for (std::size_t j = 0; j < n_pos; ++j) sc[j * group + h] *= inv;
        }
        k_.mix_f16(sc, group, hd, v0, ld, n_pos, sc_.att.data() + (t * n_head + g * group) * hd);
      }
    });
    return;
  }
  const std::size_t items = n * n_head;
  const std::size_t grain = workers == 1 ? items : std::max<std::size_t>(1, items / (workers * 4));
  pool_->parallel_for(items, grain, [&](unsigned worker, std::size_t begin, std::size_t end) {
    float* sc = sc_.scores.data() + std::size_t{worker} * sc_.scores_ctx * group;
    for (std::size_t item = begin; item < end; ++item) {
      const std::size_t t = item / n_head, h = item % n_head;
      const KvCache& kv = tok_[t].first->kv_;
      const std::size_t pos = tok_[t].second;  // causal: attend to positions 0..pos
      const std::size_t kv_off = (h / group) * kv.head_bytes();
      const float* q = sc_.q.data() + (t * n_head + h) * hd;  // [head_dim]
      // scores[j] = q . k_j / sqrt(head_dim), softmax in float (sum in double).
      float max = -INFINITY;
      for (std::size_t j = 0; j <= pos; ++j) {
        sc[j] = kv.dot(k_, q, kv.k(layer, j) + kv_off) * scale;
        max = std::max(max, sc[j]);
      }
      double sum = 0;
      for (std::size_t j = 0; j <= pos; ++j) {
        sc[j] = std::exp(sc[j] - max);
        sum += sc[j];
      }
      const float inv = static_cast<float>(1.0 / sum);
      // out = sum_j softmax_j * v_j   [head_dim]
      float* out = sc_.att.data() + (t * n_head + h) * hd;
      std::fill(out, out + hd, 0.f);
      for (std::size_t j = 0; j <= pos; ++j) kv.axpy(k_, out, sc[j] * inv, kv.v(layer, j) + kv_off);
    }
  });
}

void SessionImpl::forward(const std::vector<Segment>& segs, const std::vector<LogitsRequest>& out) {
  const std::size_t n_embd = hp_.n_embd, n_ff = hp_.n_ff, hd = hp_.head_dim;
  const std::size_t kvd = kv_dim();
  const float eps = hp_.rms_eps;
  float* x = sc_.x.data();
  float* xb = sc_.xb.data();

  // The batch's tokens in order: their sequence and position. x[t] = token_embd[token]
  tok_.clear();
  for (const Segment& s : segs)
    for (std::size_t i = 0; i < s.n; ++i) {
      gguf::dequantize_row(w_.token_embd.type, w_.token_embd.row(static_cast<std::uint64_t>(s.tokens[i])),
                           x + tok_.size() * n_embd, static_cast<std::int64_t>(n_embd));
      tok_.emplace_back(s.s, s.pos0 + static_cast<std::uint32_t>(i));
    }
  const std::size_t n = tok_.size();
  CYLLM_ASSERT(n <= kMaxBatch);

  // RoPE angles of each position: theta_i = pos * freq_scale * base^(-2i/n_rot) / freq_factor_i
  const std::size_t half = hp_.n_rot / 2;
  for (std::size_t t = 0; t < n; ++t)
    for (std::size_t i = 0; i < half; ++i) {
      double theta = static_cast<double>(tok_[t].second) * hp_.rope_freq_scale *
                     std::pow(static_cast<double>(hp_.rope_freq_base), -2.0 * static_cast<double>(i) / hp_.n_rot);
      if (!w_.rope_freqs.empty()) theta /= w_.rope_freqs[i];
      sc_.rope_cos[t * half + i] = static_cast<float>(std::cos(theta));
      sc_.rope_sin[t * half + i] = static_cast<float>(std::sin(theta));
    }

  for (std::size_t l = 0; l < hp_.n_layer; ++l) {
    const LayerWeights& lw = w_.layers[l];

    // Attention RMSNorm: xb = rmsnorm(x) * attn_norm     xb: [n][n_embd]
    for (std::size_t t = 0; t < n; ++t)
      rmsnorm(xb + t * n_embd, x + t * n_embd, lw.attn_norm.data(), n_embd, eps);

    // Q, K, V projections (+ biases: qwen2)   q: [n][q_dim]  k, v: [n][kv_dim]
    project(lw.wq, xb, n, sc_.q.data());
    project(lw.wk, xb, n, sc_.k.data());
    project(lw.wv, xb, n, sc_.v.data());
    add_bias(sc_.q.data(), lw.bq, n);
    add_bias(sc_.k.data(), lw.bk, n);
    add_bias(sc_.v.data(), lw.bv, n);

    // qwen3: RMSNorm of every Q and K head over head_dim, before RoPE.
    if (!lw.q_norm.empty()) {
      for (std::size_t i = 0; i < n * hp_.n_head; ++i)
        rmsnorm(sc_.q.data() + i * hd, sc_.q.data() + i * hd, lw.q_norm.data(), hd, eps);
      for (std::size_t i = 0; i < n * hp_.n_head_kv; ++i)
        rmsnorm(sc_.k.data() + i * hd, sc_.k.data() + i * hd, lw.k_norm.data(), hd, eps);
    }

    // RoPE on Q and K (normal for llama, NeoX for qwen2/qwen3).
    rope(sc_.q.data(), n, hp_.n_head);
    rope(sc_.k.data(), n, hp_.n_head_kv);

    // Append K, V to each token's sequence cache at its position.
    for (std::size_t t = 0; t < n; ++t) {
      const KvCache& kv = tok_[t].first->kv_;
      kv.store(sc_.k.data() + t * kvd, kv.k(l, tok_[t].second));
      kv.store(sc_.v.data() + t * kvd, kv.v(l, tok_[t].second));
    }

    // Causal GQA attention: att[t][h] = softmax(q k^T / sqrt(hd)) v   att: [n][q_dim]
    attention(segs, l, n);

    // Output projection and residual: x += att @ wo^T     xb: [n][n_embd]
    project(lw.wo, sc_.att.data(), n, xb);
    for (std::size_t i = 0; i < n * n_embd; ++i) x[i] += xb[i];

    // FFN RMSNorm: xb = rmsnorm(x) * ffn_norm
    for (std::size_t t = 0; t < n; ++t)
      rmsnorm(xb + t * n_embd, x + t * n_embd, lw.ffn_norm.data(), n_embd, eps);

    // SwiGLU: hb = silu(xb @ gate^T) * (xb @ up^T)     hb: [n][n_ff]
    project(lw.w_gate, xb, n, sc_.hb.data());
    project(lw.w_up, xb, n, sc_.hb2.data());
    for (std::size_t i = 0; i < n * n_ff; ++i) {
      const float g = sc_.hb[i];
      sc_.hb[i] = g / (1.f + std::exp(-g)) * sc_.hb2[i];
    }

    // Down projection and residual: x += hb @ down^T
    project(lw.w_down, sc_.hb.data(), n, xb);
    for (std::size_t i = 0; i < n * n_embd; ++i) x[i] += xb[i];
  }

  if (out.empty()) return;
  // Final RMSNorm of the requested tokens and the output projection, straight into the
  // destinations when they are consecutive rows, else through a temporary.
  const std::size_t n_vocab = hp_.n_vocab, m = out.size();
  for (std::size_t i = 0; i < m; ++i)
    rmsnorm(xb + i * n_embd, x + out[i].token * n_embd, w_.output_norm.data(), n_embd, eps);
  bool contiguous = true;
  for (std::size_t i = 1; i < m; ++i) contiguous = contiguous && out[i].dst == out[0].dst + i * n_vocab;
  if (contiguous) {
    project(w_.output, xb, m, out[0].dst);
    return;
  }
  std::vector<float> tmp(m * n_vocab);  // eval_batch reserved this much before any change
  project(w_.output, xb, m, tmp.data());
  for (std::size_t i = 0; i < m; ++i) std::copy_n(tmp.data() + i * n_vocab, n_vocab, out[i].dst);
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
  // One forward pass over up to kMaxBatch tokens of all entries at a time, run by entry
  // 0's session (its pool, kernels and scratch); the logits of each entry's last token go
  // to its session. Sessions advance only when every pass succeeded.
  auto* driver = dynamic_cast<SessionImpl*>(entries[0].session);
  std::vector<SessionImpl*> impls;
  for (const BatchEntry& e : entries) {
    auto* s = dynamic_cast<SessionImpl*>(e.session);
    if (!s) {  // a test double: no batched pass possible
      for (const BatchEntry& f : entries) CYLLM_TRY_VOID(f.session->eval(f.tokens));
      return {};
    }
    impls.push_back(s);
  }
  try {
    std::size_t ctx = 0;
    for (const BatchEntry& e : entries) ctx = std::max<std::size_t>(ctx, e.session->n_past() + e.tokens.size());
    driver->prepare(ctx);
    std::vector<Segment> segs;
    std::vector<LogitsRequest> out;
    std::size_t entry = 0, offset = 0;  // next token: entries[entry].tokens[offset]
    while (entry < entries.size()) {
      segs.clear();
      out.clear();
      std::size_t n = 0;
      while (entry < entries.size() && n < kMaxBatch) {
        const BatchEntry& e = entries[entry];
        const std::size_t take = std::min(kMaxBatch - n, e.tokens.size() - offset);
        segs.push_back({impls[entry], e.tokens.data() + offset, take,
                        e.session->n_past() + static_cast<std::uint32_t>(offset)});
        n += take;
        offset += take;
        if (offset == e.tokens.size()) {
          out.push_back({n - 1, impls[entry]->logits_data()});
          ++entry;
          offset = 0;
        }
      }
      driver->forward(segs, out);
    }
  } catch (const std::bad_alloc&) {
    return Error(Errc::OutOfMemory, "out of memory evaluating a batch of " + std::to_string(entries.size()) + " sequences");
  }
  for (std::size_t i = 0; i < entries.size(); ++i) impls[i]->advance(entries[i].tokens.size());
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
  std::shared_ptr<ThreadPool> pool = opts.pool;
  if (!pool) pool = CYLLM_TRY(ThreadPool::create(ThreadPoolOptions{opts.n_threads, false}));
  Kernels which = opts.kernels;
  if (which == Kernels::Auto) {
    const char* env = std::getenv("CYLLM_KERNELS");
    const std::string_view e = env ? env : "";
    which = e == "scalar" ? Kernels::Scalar : e == "reference" ? Kernels::Reference : Kernels::Auto;
  }
  const kernels::Isa isa = which == Kernels::Auto ? kernels::detect_isa() : kernels::Isa::Scalar;
  try {
    auto s = std::make_unique<SessionImpl>(model, *impl, n_ctx, std::move(pool), kernels::table(isa), opts.kv_type,
                                           which == Kernels::Reference);
    if (!s->allocate(opts.onednn))
      return Error(Errc::OutOfMemory,
                   "cannot allocate the KV cache and buffers for n_ctx " + std::to_string(n_ctx) + " (" +
                       std::to_string(kv_bytes_per_token(*impl, opts.kv_type) * n_ctx / (1024 * 1024)) +
                       " MiB of KV cache)");
    return std::unique_ptr<Session>(std::move(s));
  } catch (const std::bad_alloc&) {
    return Error(Errc::OutOfMemory, "out of memory creating a session");
  }
}


bool parse_kv_type(std::string_view name, KvType& out) {
  if (name == "f32") out = KvType::F32;
  else if (name == "f16") out = KvType::F16;
  else if (name == "q8_0") out = KvType::Q8_0;
  else return false;
  return true;
}

const char* kv_type_name(KvType t) {
  switch (t) {
    case KvType::F32: return "f32";
    case KvType::F16: return "f16";
    case KvType::Q8_0: return "q8_0";
  }
  return "f16";
}

std::uint64_t kv_bytes_per_token(const Model& model, KvType t) {
  const HParams& hp = model.hparams();
  const std::uint64_t hd = hp.head_dim, heads = std::uint64_t{hp.n_layer} * hp.n_head_kv;
  const std::uint64_t head_bytes = t == KvType::F32 ? hd * 4 : t == KvType::F16 ? hd * 2 : (hd + 31) / 32 * 4 + hd;
  return 2 * heads * head_bytes;
}

}  // namespace cyllm::model
