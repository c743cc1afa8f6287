// The forward pass against a slow double-precision reference on tiny random models of
// each architecture, in F32 and quantized; batch vs token-by-token; truncate; eval errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cyllm/model.h"
#include "test_support.h"
#include "tiny_model.h"

using cyllm::Errc;
using cyllm::gguf::TensorType;
using cyllm::model::Model;
using cyllm::model::Session;
using cyllm::model::SessionOptions;
using cyllm::test::TinySpec;

namespace {

std::shared_ptr<const Model> load_tiny(const cyllm::test::TempDir& dir, const TinySpec& spec,
                                       const std::string& name) {
  const std::string path = (dir.path() / (name + ".gguf")).string();
  auto written = cyllm::test::make_tiny_model(spec).write(path);
  REQUIRE_MESSAGE(written.ok(), written.error().to_string());
  auto m = Model::load(path);
  REQUIRE_MESSAGE(m.ok(), m.error().to_string());
  return *m;
}

std::unique_ptr<Session> new_session(std::shared_ptr<const Model> m, std::uint32_t n_ctx = 64,
                                     std::uint32_t n_threads = 3,
                                     cyllm::model::KvType kv = cyllm::model::KvType::F16,
                                     cyllm::model::Kernels kernels = cyllm::model::Kernels::Auto) {
  SessionOptions opts;
  opts.n_ctx = n_ctx;
  opts.n_threads = n_threads;
  opts.kv_type = kv;
  opts.kernels = kernels;
  auto s = Session::create(std::move(m), opts);
  REQUIRE_MESSAGE(s.ok(), s.error().to_string());
  return std::move(*s);
}

double max_diff(std::span<const float> a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

double max_diff(std::span<const float> a, std::span<const float> b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double{a[i]} - b[i]));
  return m;
}

const std::vector<std::int32_t> kTokens = {1, 72, 105, 33, 290, 3, 258, 17, 101, 200, 7, 150};

// Evaluates the first 5 tokens as one batch, then the rest one by one, comparing the
// logits after each with the reference. Returns the largest difference. By default with
// the reference kernels (f32 activations) and an f32 KV cache: only float rounding then
// separates engine and reference.
double compare_with_reference(const TinySpec& spec, const std::string& name,
                              cyllm::model::Kernels kernels = cyllm::model::Kernels::Reference,
                              cyllm::model::KvType kv = cyllm::model::KvType::F32) {
  cyllm::test::TempDir dir;
  auto model = load_tiny(dir, spec, name);
  auto s = new_session(model, 64, 3, kv, kernels);
  double worst = 0;
  std::vector<std::int32_t> seen(kTokens.begin(), kTokens.begin() + 5);
  REQUIRE(s->eval(seen).ok());
  for (std::size_t next = 5;; ++next) {
    const auto ref = cyllm::test::reference_logits(model->file(), spec, seen);
    worst = std::max(worst, max_diff(s->logits(), ref));
    if (next == kTokens.size()) break;
    seen.push_back(kTokens[next]);
    REQUIRE(s->eval(std::span(&kTokens[next], 1)).ok());
    CHECK(s->n_past() == seen.size());
  }
  MESSAGE(name << ": max |logit - reference| = " << worst);
  return worst;
}

TinySpec spec_for(const std::string& arch, TensorType type) {
  TinySpec s;
  s.arch = arch;
  s.type = type;
  if (arch == "qwen2") {
    s.rms_eps = 1e-6f;
    s.rope_base = 1000000.f;
  }
  if (arch == "qwen3") {
    s.head_dim = 32;  // q_dim 128 != n_embd 64
    s.rms_eps = 1e-6f;
  }
  return s;
}

}  // namespace

TEST_CASE("forward pass matches the double-precision reference (F32)") {
  // F32 weights: only float rounding separates engine and reference.
  constexpr double kTol = 2e-4;
  CHECK(compare_with_reference(spec_for("llama", TensorType::F32), "llama-f32") < kTol);
  TinySpec tied = spec_for("llama", TensorType::F32);
  tied.tied = true;
  tied.n_head_kv = 4;  // no GQA
  tied.rope_scale_factor = 4.f;
  CHECK(compare_with_reference(tied, "llama-tied-f32") < kTol);
  CHECK(compare_with_reference(spec_for("qwen2", TensorType::F32), "qwen2-f32") < kTol);
  CHECK(compare_with_reference(spec_for("qwen3", TensorType::F32), "qwen3-f32") < kTol);
}

TEST_CASE("forward pass matches the reference with quantized weights") {
  // Both use the same dequantized weights, so only float rounding separates them.
  constexpr double kTol = 2e-4;
  CHECK(compare_with_reference(spec_for("llama", TensorType::Q8_0), "llama-q8_0") < kTol);
  TinySpec tied = spec_for("llama", TensorType::Q4_0);
  tied.tied = true;
  CHECK(compare_with_reference(tied, "llama-tied-q4_0") < kTol);
  CHECK(compare_with_reference(spec_for("qwen2", TensorType::Q8_0), "qwen2-q8_0") < kTol);
  CHECK(compare_with_reference(spec_for("qwen3", TensorType::Q8_0), "qwen3-q8_0") < kTol);
  CHECK(compare_with_reference(spec_for("llama", TensorType::F16), "llama-f16") < kTol);
}

TEST_CASE("the fast kernels, their scalar twins and the f16/q8_0 KV caches stay close to the reference") {
  using cyllm::model::Kernels;
  using cyllm::model::KvType;
  // 8-bit activations (Q8_0/Q4_0 weights) and an f16 cache move the logits a little; the
  // SIMD kernels compute the same sums as their twins up to float summation order.
  for (TensorType type : {TensorType::Q8_0, TensorType::Q4_0, TensorType::F16, TensorType::F32}) {
    CAPTURE(static_cast<int>(type));
    const bool q8_act = type == TensorType::Q8_0 || type == TensorType::Q4_0;
    const TinySpec spec = spec_for("llama", type);
    CHECK(compare_with_reference(spec, "auto", Kernels::Auto, KvType::F32) < (q8_act ? 0.08 : 2e-4));
    CHECK(compare_with_reference(spec, "scalar", Kernels::Scalar, KvType::F32) < (q8_act ? 0.08 : 2e-4));
    CHECK(compare_with_reference(spec, "f16-kv", Kernels::Reference, KvType::F16) < 2e-3);
    CHECK(compare_with_reference(spec, "q8_0-kv", Kernels::Reference, KvType::Q8_0) < 0.05);
  }
  cyllm::test::TempDir dir;
  auto model = load_tiny(dir, spec_for("qwen3", TensorType::Q4_0), "twins");
  auto fast = new_session(model, 64, 2, KvType::F16, Kernels::Auto);
  auto twin = new_session(model, 64, 2, KvType::F16, Kernels::Scalar);
  MESSAGE("kernels: " << std::string(fast->kernels_name()));
  CHECK(std::string(twin->kernels_name()) == "scalar");
  REQUIRE(fast->eval(kTokens).ok());
  REQUIRE(twin->eval(kTokens).ok());
  CHECK(max_diff(fast->logits(), twin->logits()) <= 1e-3);
}

TEST_CASE("weights repacked at load (the default) and used in place from the file give the same logits") {
  using cyllm::model::Kernels;
  using cyllm::model::KvType;
  for (TensorType type : {TensorType::Q8_0, TensorType::Q4_0}) {
    CAPTURE(static_cast<int>(type));
    cyllm::test::TempDir dir;
    const std::string path = (dir.path() / "m.gguf").string();
    REQUIRE(cyllm::test::make_tiny_model(spec_for("qwen2", type)).write(path).ok());
    cyllm::model::LoadOptions in_place;
    in_place.repack = false;
    auto a = Model::load(path), b = Model::load(path, in_place);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    for (Kernels kernels : {Kernels::Auto, Kernels::Scalar, Kernels::Reference}) {
      CAPTURE(static_cast<int>(kernels));
      auto sa = new_session(*a, 64, 2, KvType::F32, kernels), sb = new_session(*b, 64, 2, KvType::F32, kernels);
      REQUIRE(sa->eval(kTokens).ok());
      REQUIRE(sb->eval(kTokens).ok());
      // Repacked: one float multiply-add per block of each row; in place: per 8 lanes.
      // The reference kernels read the repacked rows back exactly.
      const double d = max_diff(sa->logits(), sb->logits());
      if (kernels == Kernels::Reference) CHECK(d == 0);
      else CHECK(d <= 1e-4);
    }
  }
}

TEST_CASE("kv types parse by name and size the cache") {
  cyllm::model::KvType t{};
  CHECK(cyllm::model::parse_kv_type("q8_0", t));
  CHECK(t == cyllm::model::KvType::Q8_0);
  CHECK(cyllm::model::parse_kv_type("f32", t));
  CHECK(std::string(cyllm::model::kv_type_name(t)) == "f32");
  CHECK_FALSE(cyllm::model::parse_kv_type("q4", t));
  cyllm::test::TempDir dir;
  auto model = load_tiny(dir, spec_for("llama", TensorType::F32), "kv");
  // 2 layers x 2 KV heads x head_dim 16, K and V.
  CHECK(cyllm::model::kv_bytes_per_token(*model, cyllm::model::KvType::F32) == 2 * 2 * 2 * 16 * 4);
  CHECK(cyllm::model::kv_bytes_per_token(*model, cyllm::model::KvType::F16) == 2 * 2 * 2 * 16 * 2);
  CHECK(cyllm::model::kv_bytes_per_token(*model, cyllm::model::KvType::Q8_0) == 2 * 2 * 2 * (16 + 4));
}

TEST_CASE("one batch and token by token give the same logits; truncate re-evaluates") {
  cyllm::test::TempDir dir;
  for (const char* arch : {"llama", "qwen3"}) {
    CAPTURE(arch);
    auto model = load_tiny(dir, spec_for(arch, TensorType::Q8_0), arch);
    auto batch = new_session(model, 64, 2);
    REQUIRE(batch->eval(kTokens).ok());
    const std::vector<float> batch_logits(batch->logits().begin(), batch->logits().end());

    auto single = new_session(model, 64, 1);
    for (auto id : kTokens) REQUIRE(single->eval(std::span(&id, 1)).ok());
    CHECK(max_diff(single->logits(), batch_logits) <= 1e-5);

    // eval_all keeps every position's logits; each row equals the token-by-token ones.
    auto all = new_session(model, 64, 2);
    REQUIRE(all->eval(std::span(kTokens).first(2)).ok());
    REQUIRE(all->eval_all(std::span(kTokens).subspan(2)).ok());
    const std::size_t n_vocab = model->hparams().n_vocab;
    REQUIRE(all->all_logits().size() == (kTokens.size() - 2) * n_vocab);
    CHECK(max_diff(all->logits(), batch_logits) <= 1e-5);
    auto step = new_session(model, 64, 1);
    for (std::size_t i = 0; i < kTokens.size(); ++i) {
      REQUIRE(step->eval(std::span(&kTokens[i], 1)).ok());
      if (i >= 2) CHECK(max_diff(all->all_logits().subspan((i - 2) * n_vocab, n_vocab), step->logits()) <= 1e-5);
    }

    // Drop the last 7 positions, take a detour, drop it again and re-evaluate the tail.
    batch->truncate(5);
    CHECK(batch->n_past() == 5);
    const std::vector<std::int32_t> detour = {9, 9, 9};
    REQUIRE(batch->eval(detour).ok());
    CHECK(max_diff(batch->logits(), batch_logits) > 1e-3);
    batch->truncate(5);
    REQUIRE(batch->eval(std::span(kTokens).subspan(5)).ok());
    CHECK(batch->n_past() == kTokens.size());
    CHECK(max_diff(batch->logits(), batch_logits) <= 1e-5);
  }
}

TEST_CASE("a long prompt spans several internal batches") {
  cyllm::test::TempDir dir;
  TinySpec spec = spec_for("llama", TensorType::F32);
  spec.n_layer = 1;
  auto model = load_tiny(dir, spec, "long");
  std::vector<std::int32_t> prompt;
  for (int i = 0; i < 150; ++i) prompt.push_back(3 + (i * 37) % 290);
  auto s = new_session(model, 160, 2, cyllm::model::KvType::F32);
  REQUIRE(s->eval(prompt).ok());
  const auto ref = cyllm::test::reference_logits(model->file(), spec, prompt);
  CHECK(max_diff(s->logits(), ref) < 2e-4);
}

TEST_CASE("eval rejects bad input and leaves the state unchanged") {
  cyllm::test::TempDir dir;
  auto model = load_tiny(dir, spec_for("llama", TensorType::F32), "m");
  auto s = new_session(model, 8, 2);
  CHECK(s->n_ctx() == 8);
  REQUIRE(s->eval(std::vector<std::int32_t>{1, 2, 3}).ok());
  const std::vector<float> before(s->logits().begin(), s->logits().end());

  auto overflow = s->eval(std::vector<std::int32_t>(6, 5));
  REQUIRE_FALSE(overflow.ok());
  CHECK(overflow.error().code() == Errc::InvalidArgument);
  CHECK(overflow.error().message().find("context") != std::string::npos);
  for (std::int32_t bad : {-1, 300, 100000}) {
    auto r = s->eval(std::vector<std::int32_t>{4, bad});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Errc::InvalidArgument);
    CHECK(r.error().message().find(std::to_string(bad)) != std::string::npos);
  }
  CHECK_FALSE(s->eval(std::vector<std::int32_t>{}).ok());
  CHECK(s->n_past() == 3);
  CHECK(max_diff(s->logits(), before) == 0);
  // Exactly filling the context is fine.
  CHECK(s->eval(std::vector<std::int32_t>(5, 5)).ok());
  CHECK(s->n_past() == 8);
}

TEST_CASE("hyperparameters come from the <arch>.* keys") {
  cyllm::test::TempDir dir;
  TinySpec spec = spec_for("qwen3", TensorType::F32);
  spec.rope_scale_factor = 2.f;
  spec.tied = true;
  auto model = load_tiny(dir, spec, "hp");
  const auto& hp = model->hparams();
  CHECK(hp.arch == cyllm::model::Arch::Qwen3);
  CHECK(hp.arch_name == "qwen3");
  CHECK(hp.n_vocab == 300);
  CHECK(hp.n_ctx_train == 128);
  CHECK(hp.n_embd == 64);
  CHECK(hp.n_layer == 2);
  CHECK(hp.n_head == 4);
  CHECK(hp.n_head_kv == 2);
  CHECK(hp.head_dim == 32);
  CHECK(hp.n_rot == 32);
  CHECK(hp.n_ff == 96);
  CHECK(hp.rms_eps == doctest::Approx(1e-6));
  CHECK(hp.rope_freq_scale == doctest::Approx(0.5));
  CHECK(hp.rope == cyllm::model::RopeStyle::NeoX);
  CHECK(hp.tied_embeddings);
  CHECK(model->kv_bytes_per_token() == 2u * 2 * 2 * 32 * 4);
  CHECK(model->weight_bytes() > 300u * 64 * 4);
  CHECK(model->chat_template().empty());
  CHECK(model->tokenizer().n_vocab() == 300);

  auto s = Session::create(model);  // n_ctx 0: the training context
  REQUIRE(s.ok());
  CHECK((*s)->n_ctx() == 128);
  CHECK(&(*s)->model() == model.get());
}

TEST_CASE("eval_batch advances each sequence as if it ran alone") {
  cyllm::test::TempDir dir;
  auto model = load_tiny(dir, spec_for("llama", TensorType::Q8_0), "batch");
  // Three sequences at different positions: one mid-prompt chunk and two decode steps.
  const std::vector<std::vector<std::int32_t>> prefix = {{1, 72}, {1, 105, 33, 290}, {1}};
  const std::vector<std::vector<std::int32_t>> step = {{3, 258, 17}, {101}, {200}};
  std::vector<std::unique_ptr<Session>> alone, batched;
  std::vector<cyllm::model::BatchEntry> entries;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    alone.push_back(new_session(model, 16, 1));
    REQUIRE(alone.back()->eval(prefix[i]).ok());
    REQUIRE(alone.back()->eval(step[i]).ok());
    batched.push_back(new_session(model, 16, 2));
    REQUIRE(batched.back()->eval(prefix[i]).ok());
    entries.push_back({batched.back().get(), step[i]});
  }
  REQUIRE(cyllm::model::eval_batch(entries).ok());
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    CAPTURE(i);
    CHECK(batched[i]->n_past() == prefix[i].size() + step[i].size());
    CHECK(max_diff(batched[i]->logits(), alone[i]->logits()) <= 1e-5);
  }

  // Checked before anything runs: one bad entry leaves every session as it was.
  const std::vector<std::int32_t> too_long(20, 5), bad_id = {4, 999};
  for (const auto& bad : {std::vector<cyllm::model::BatchEntry>{{batched[0].get(), step[0]}, {batched[1].get(), too_long}},
                          std::vector<cyllm::model::BatchEntry>{{batched[0].get(), step[0]}, {batched[1].get(), bad_id}},
                          std::vector<cyllm::model::BatchEntry>{{batched[0].get(), step[0]}, {batched[0].get(), step[1]}},
                          std::vector<cyllm::model::BatchEntry>{{batched[0].get(), step[0]}, {nullptr, step[1]}},
                          std::vector<cyllm::model::BatchEntry>{}}) {
    auto r = cyllm::model::eval_batch(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == Errc::InvalidArgument);
    CHECK(batched[0]->n_past() == prefix[0].size() + step[0].size());
  }
  auto other = load_tiny(dir, spec_for("llama", TensorType::Q8_0), "other");
  auto foreign = new_session(other, 16, 1);
  const std::vector<cyllm::model::BatchEntry> mixed = {{batched[2].get(), step[2]}, {foreign.get(), step[2]}};
  auto r = cyllm::model::eval_batch(mixed);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("another model") != std::string::npos);
}

TEST_CASE("eval_batch with many sequences, more tokens than one internal batch, and a shared pool") {
  cyllm::test::TempDir dir;
  auto model = load_tiny(dir, spec_for("qwen2", TensorType::Q4_0), "many");
  auto pool = cyllm::model::ThreadPool::create({2, false});
  REQUIRE(pool.ok());
  constexpr std::size_t kSeqs = 9;
  std::vector<std::unique_ptr<Session>> alone, batched;
  std::vector<std::vector<std::int32_t>> prompts;
  for (std::size_t i = 0; i < kSeqs; ++i) {
    std::vector<std::int32_t> p;
    for (std::size_t j = 0; j < 3 + 4 * i; ++j) p.push_back(static_cast<std::int32_t>(3 + (i * 31 + j * 17) % 290));
    prompts.push_back(p);  // 3..35 tokens: 171 in all, three internal batches
    alone.push_back(new_session(model, 48, 1));
    SessionOptions opts;
    opts.n_ctx = 48;
    opts.pool = *pool;
    auto s = Session::create(model, opts);
    REQUIRE(s.ok());
    batched.push_back(std::move(*s));
  }
  std::vector<cyllm::model::BatchEntry> entries;
  for (std::size_t i = 0; i < kSeqs; ++i) {
    REQUIRE(alone[i]->eval(prompts[i]).ok());
    entries.push_back({batched[i].get(), prompts[i]});
  }
  REQUIRE(cyllm::model::eval_batch(entries).ok());
  // Then decode steps: one token per sequence per batch.
  for (int step = 0; step < 3; ++step) {
    std::vector<std::vector<std::int32_t>> next(kSeqs);
    entries.clear();
    for (std::size_t i = 0; i < kSeqs; ++i) {
      CAPTURE(i);
      CHECK(batched[i]->n_past() == alone[i]->n_past());
      CHECK(max_diff(batched[i]->logits(), alone[i]->logits()) <= 1e-5);
      next[i] = {static_cast<std::int32_t>(10 + i + 20 * step)};
      REQUIRE(alone[i]->eval(next[i]).ok());
      entries.push_back({batched[i].get(), next[i]});
    }
    REQUIRE(cyllm::model::eval_batch(entries).ok());
  }
  for (std::size_t i = 0; i < kSeqs; ++i) CHECK(max_diff(batched[i]->logits(), alone[i]->logits()) <= 1e-5);
}
