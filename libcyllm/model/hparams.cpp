#include "model/hparams.h"

#include <cmath>
#include <string>

namespace cyllm::model {
namespace {

// Upper bounds that keep every size product far from overflow; real models are far below.
constexpr std::uint64_t kMaxDim = 1u << 20;
constexpr std::uint64_t kMaxLayers = 4096;
constexpr std::uint64_t kMaxHeads = 4096;
constexpr std::uint64_t kMaxVocab = 1u << 24;
constexpr std::uint64_t kMaxCtx = 1u << 24;

Error bad(std::string message) { return Error(Errc::BadModel, std::move(message)); }

// A required positive count no larger than `max`.
Result<std::uint32_t> get_count(const gguf::File& f, const std::string& key, std::uint64_t max) {
  auto v = f.get_u64(key);
  if (!v.ok()) {
    if (v.error().code() == Errc::GgufMissingKey) return bad("missing metadata key \"" + key + "\"");
    return std::move(v).error();
  }
  if (*v == 0 || *v > max)
    return bad("\"" + key + "\" is " + std::to_string(*v) + ", outside [1, " + std::to_string(max) + "]");
  return static_cast<std::uint32_t>(*v);
}

Result<std::uint32_t> get_count_or(const gguf::File& f, const std::string& key,
                                   std::uint64_t fallback, std::uint64_t max) {
  if (!f.find(key)) return static_cast<std::uint32_t>(fallback);
  return get_count(f, key, max);
}

Result<float> get_positive_float_or(const gguf::File& f, const std::string& key, double fallback) {
  double v = CYLLM_TRY(f.get_f64_or(key, fallback));
  if (!std::isfinite(v) || v <= 0)
    return bad("\"" + key + "\" is " + std::to_string(v) + ", not a positive number");
  return static_cast<float>(v);
}

}  // namespace

Result<HParams> parse_hparams(const gguf::File& file) {
  HParams hp;
  hp.arch_name = std::string(CYLLM_TRY(file.get_string("general.architecture")));
  if (hp.arch_name == "llama") {
    hp.arch = Arch::Llama;
    hp.rope = RopeStyle::Normal;  // the GGUF converter permuted Q/K rows for interleaved pairs
  } else if (hp.arch_name == "qwen2") {
    hp.arch = Arch::Qwen2;
    hp.rope = RopeStyle::NeoX;
  } else if (hp.arch_name == "qwen3") {
    hp.arch = Arch::Qwen3;
    hp.rope = RopeStyle::NeoX;
  } else {
    return Error(Errc::UnsupportedArch, "general.architecture \"" + hp.arch_name +
                                            "\" is not supported (supported: llama, qwen2, qwen3)");
  }
  const std::string a = hp.arch_name + ".";

  if (const gguf::Value* tokens = file.find("tokenizer.ggml.tokens");
      tokens && tokens->type() == gguf::ValueType::Array) {
    if (tokens->size() == 0 || tokens->size() > kMaxVocab)
      return bad("tokenizer.ggml.tokens has " + std::to_string(tokens->size()) + " entries");
    hp.n_vocab = static_cast<std::uint32_t>(tokens->size());
  } else {
    hp.n_vocab = CYLLM_TRY(get_count(file, a + "vocab_size", kMaxVocab));
  }
  hp.n_ctx_train = CYLLM_TRY(get_count(file, a + "context_length", kMaxCtx));
  hp.n_embd = CYLLM_TRY(get_count(file, a + "embedding_length", kMaxDim));
  hp.n_layer = CYLLM_TRY(get_count(file, a + "block_count", kMaxLayers));
  hp.n_head = CYLLM_TRY(get_count(file, a + "attention.head_count", kMaxHeads));
  hp.n_head_kv = CYLLM_TRY(get_count_or(file, a + "attention.head_count_kv", hp.n_head, kMaxHeads));
  hp.n_ff = CYLLM_TRY(get_count(file, a + "feed_forward_length", kMaxDim));
  if (hp.n_head % hp.n_head_kv != 0)
    return bad("attention.head_count " + std::to_string(hp.n_head) +
               " is not a multiple of attention.head_count_kv " + std::to_string(hp.n_head_kv));
  if (!file.find(a + "attention.key_length") && hp.n_embd % hp.n_head != 0)
    return bad("embedding_length " + std::to_string(hp.n_embd) + " is not a multiple of head_count " +
               std::to_string(hp.n_head) + " and attention.key_length is absent");
  hp.head_dim = CYLLM_TRY(get_count_or(file, a + "attention.key_length", hp.n_embd / hp.n_head, kMaxDim));
  std::uint32_t value_length =
      CYLLM_TRY(get_count_or(file, a + "attention.value_length", hp.head_dim, kMaxDim));
  if (value_length != hp.head_dim)
    return bad("attention.value_length " + std::to_string(value_length) +
               " differs from attention.key_length " + std::to_string(hp.head_dim));
  if (static_cast<std::uint64_t>(hp.n_head) * hp.head_dim > kMaxDim)
    return bad("head_count x key_length is too large");
  hp.n_rot = CYLLM_TRY(get_count_or(file, a + "rope.dimension_count", hp.head_dim, kMaxDim));
  if (hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0)
    return bad("rope.dimension_count " + std::to_string(hp.n_rot) +
               " must be even and at most the head size " + std::to_string(hp.head_dim));

  hp.rms_eps = CYLLM_TRY(get_positive_float_or(file, a + "attention.layer_norm_rms_epsilon", 1e-5));
  hp.rope_freq_base = CYLLM_TRY(get_positive_float_or(file, a + "rope.freq_base", 10000.0));

  // RoPE scaling: only linear (position interpolation) is implemented.
  std::string scaling = "linear";
  if (file.find(a + "rope.scaling.type")) scaling = std::string(CYLLM_TRY(file.get_string(a + "rope.scaling.type")));
  float factor = 1.f;
  if (file.find(a + "rope.scaling.factor")) {
    factor = CYLLM_TRY(get_positive_float_or(file, a + "rope.scaling.factor", 1.0));
  } else if (file.find(a + "rope.scale_linear")) {  // older spelling
    factor = CYLLM_TRY(get_positive_float_or(file, a + "rope.scale_linear", 1.0));
  }
  if (scaling == "none") factor = 1.f;
  else if (scaling != "linear" && factor != 1.f)
    return Error(Errc::UnsupportedArch, "rope.scaling.type \"" + scaling + "\" is not supported (only linear)");
  hp.rope_freq_scale = 1.f / factor;

  hp.tied_embeddings = file.tensor("output.weight") == nullptr;
  return hp;
}

}  // namespace cyllm::model
