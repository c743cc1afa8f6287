// Tokenizer::load: reads the tokenizer.ggml.* metadata of a GGUF file into VocabData.
#include <string>

#include "cyllm/gguf.h"
#include "cyllm/tokenizer.h"

namespace cyllm::tokenizer {
namespace {

Error bad(std::string message) { return Error(Errc::BadVocab, std::move(message)); }

Result<const gguf::Value*> find_array(const gguf::File& f, std::string_view key,
                                      std::initializer_list<gguf::ValueType> elem_types,
                                      bool required) {
  const gguf::Value* v = f.find(key);
  if (v == nullptr) {
    if (required) return bad(std::string(key) + " is missing");
    return static_cast<const gguf::Value*>(nullptr);
  }
  if (v->type() != gguf::ValueType::Array) {
    return bad(std::string(key) + " is a " + std::string(gguf::value_type_name(v->type())) +
               ", expected an array");
  }
  for (gguf::ValueType t : elem_types) {
    if (v->elem_type() == t) return v;
  }
  return bad(std::string(key) + " is an array of " +
             std::string(gguf::value_type_name(v->elem_type())) + ", not of the expected type");
}

bool integer_type(gguf::ValueType t) {
  using VT = gguf::ValueType;
  return t == VT::U8 || t == VT::I8 || t == VT::U16 || t == VT::I16 || t == VT::U32 ||
         t == VT::I32 || t == VT::U64 || t == VT::I64;
}

Result<std::optional<std::string>> get_string(const gguf::File& f, std::string_view key) {
  const gguf::Value* v = f.find(key);
  if (v == nullptr) return std::optional<std::string>{};
  auto s = v->as_string();
  if (!s) return bad(std::string(key) + " is not a string");
  return std::optional<std::string>{std::string(*s)};
}

Result<TokenId> get_id(const gguf::File& f, std::string_view key) {
  const gguf::Value* v = f.find(key);
  if (v == nullptr) return kNoToken;
  auto i = v->as_i64();
  if (!i || !integer_type(v->type())) return bad(std::string(key) + " is not an integer");
  if (*i < 0) return kNoToken;  // some converters write -1 for "none"
  if (*i > INT32_MAX) return bad(std::string(key) + " is " + std::to_string(*i) + ", out of range");
  return static_cast<TokenId>(*i);
}

Result<std::optional<bool>> get_bool(const gguf::File& f, std::string_view key) {
  const gguf::Value* v = f.find(key);
  if (v == nullptr) return std::optional<bool>{};
  auto b = v->as_bool();
  if (!b) return bad(std::string(key) + " is not a bool");
  return std::optional<bool>{*b};
}

Result<VocabData> read_vocab(const gguf::File& f) {
  using VT = gguf::ValueType;
  VocabData d;
  auto model = CYLLM_TRY(get_string(f, "tokenizer.ggml.model"));
  if (!model) return bad("tokenizer.ggml.model is missing");
  d.model = *model;
  d.pre = CYLLM_TRY(get_string(f, "tokenizer.ggml.pre")).value_or("");

  const gguf::Value* tokens = CYLLM_TRY(find_array(f, "tokenizer.ggml.tokens", {VT::String}, true));
  d.tokens.reserve(tokens->size());
  for (std::uint64_t i = 0; i < tokens->size(); ++i) d.tokens.emplace_back(tokens->string_at(i));

  if (const gguf::Value* s = CYLLM_TRY(find_array(f, "tokenizer.ggml.scores", {VT::F32, VT::F64}, false))) {
    d.scores.reserve(s->size());
    for (std::uint64_t i = 0; i < s->size(); ++i) d.scores.push_back(static_cast<float>(s->float_at(i)));
  }
  if (const gguf::Value* t = CYLLM_TRY(find_array(
          f, "tokenizer.ggml.token_type", {VT::I32, VT::U32, VT::I8, VT::U8, VT::I16, VT::U16}, false))) {
    d.token_types.reserve(t->size());
    for (std::uint64_t i = 0; i < t->size(); ++i) {
      std::int64_t x = t->int_at(i);
      d.token_types.push_back(x < 0 || x > 6 ? -1 : static_cast<std::int32_t>(x));
    }
  }
  if (const gguf::Value* m = CYLLM_TRY(find_array(f, "tokenizer.ggml.merges", {VT::String}, false))) {
    d.merges.reserve(m->size());
    for (std::uint64_t i = 0; i < m->size(); ++i) d.merges.emplace_back(m->string_at(i));
  } else if (d.model == "gpt2") {
    return bad("tokenizer.ggml.merges is missing (required by the gpt2 tokenizer)");
  }
  d.bos = CYLLM_TRY(get_id(f, "tokenizer.ggml.bos_token_id"));
  d.eos = CYLLM_TRY(get_id(f, "tokenizer.ggml.eos_token_id"));
  d.eot = CYLLM_TRY(get_id(f, "tokenizer.ggml.eot_token_id"));
  d.eom = CYLLM_TRY(get_id(f, "tokenizer.ggml.eom_token_id"));
  d.pad = CYLLM_TRY(get_id(f, "tokenizer.ggml.padding_token_id"));
  d.unk = CYLLM_TRY(get_id(f, "tokenizer.ggml.unknown_token_id"));
  d.add_bos = CYLLM_TRY(get_bool(f, "tokenizer.ggml.add_bos_token"));
  d.add_space_prefix = CYLLM_TRY(get_bool(f, "tokenizer.ggml.add_space_prefix"));
  return d;
}

}  // namespace

Result<Tokenizer> Tokenizer::load(const gguf::File& file) {
  auto data = read_vocab(file);
  if (!data.ok()) return std::move(data).error().with_context("while reading the vocabulary");
  auto tok = from_vocab(std::move(data).value());
  if (!tok.ok()) return std::move(tok).error().with_context("while reading the vocabulary");
  return tok;
}

}  // namespace cyllm::tokenizer
