// Tokenizers built from a GGUF file's `tokenizer.ggml.*` metadata.
//
// Two families cover the models the native engine runs:
//   - "llama": SentencePiece-style BPE over scored pieces, spaces as U+2581, byte-fallback
//     tokens <0xXX> for bytes the vocabulary lacks (Llama 2, TinyLlama, Mistral).
//   - "gpt2": byte-level BPE with ranked merges, bytes mapped to printable code points, and
//     a pre-tokenizer chosen by `tokenizer.ggml.pre` ("llama-bpe" for Llama 3, "qwen2",
//     "gpt-2"/"default") that splits text before merging.
// Special/control tokens (<s>, <|im_end|>, ...) are matched in the text only when the
// caller asks (parse_special), as chat templates need.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cyllm/error.h"
#include "cyllm/gguf.h"

namespace cyllm::tokenizer {

using TokenId = std::int32_t;
inline constexpr TokenId kNoToken = -1;

// tokenizer.ggml.token_type values.
enum class TokenType : std::int32_t {
  Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

// A vocabulary as plain data: what load() reads from the file's tokenizer.ggml.* keys.
// Tests and fuzzers build these in memory and pass them to Tokenizer::from_vocab.
struct VocabData {
  std::string model;                      // "llama" or "gpt2"
  std::string pre;                        // gpt2: "llama-bpe", "qwen2", "gpt-2", "default"
  std::vector<std::string> tokens;        // id -> text
  std::vector<float> scores;              // llama: merge priority; empty = all 0
  std::vector<std::int32_t> token_types;  // TokenType values; empty = all Normal
  std::vector<std::string> merges;        // gpt2: "left right", rank = index
  TokenId bos = kNoToken, eos = kNoToken, eot = kNoToken, eom = kNoToken;
  TokenId pad = kNoToken, unk = kNoToken;
  std::optional<bool> add_bos;            // default: true for llama, false for gpt2
  std::optional<bool> add_space_prefix;   // default: true for llama, false for gpt2
};

// Immutable after load; safe to share between threads.
class Tokenizer {
 public:
  // Reads tokenizer.ggml.{model,pre,tokens,scores,token_type,merges,*_token_id,add_*_token}.
  // BadVocab naming the key when something is missing or inconsistent.
  static Result<Tokenizer> load(const gguf::File& file);
  // Builds from plain data; BadVocab (naming the field) when it is inconsistent.
  static Result<Tokenizer> from_vocab(VocabData vocab);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Text -> ids. add_bos prepends BOS when the vocabulary has one; parse_special lets
  // special-token text in `text` map to those tokens (otherwise it is ordinary text).
  std::vector<TokenId> encode(std::string_view text, bool add_bos, bool parse_special) const;
  // The bytes a token stands for (byte tokens decoded, U+2581 / byte-level mapping undone;
  // control tokens give their text only when `special` is true, else ""). Not necessarily
  // valid UTF-8 on its own: use StreamDecoder to print.
  std::string piece(TokenId id, bool special = false) const;
  // Concatenated pieces; for llama-family vocabularies the leading space that encode()
  // added is removed, as SentencePiece does.
  std::string decode(std::span<const TokenId> ids, bool special = false) const;

  std::size_t n_vocab() const;
  TokenId bos() const;  // kNoToken when the vocabulary has none
  TokenId eos() const;
  bool add_bos_by_default() const;  // tokenizer.ggml.add_bos_token (llama: true)
  // End-of-generation: EOS, EOT, <|im_end|>, <|eot_id|>, <end_of_turn>, ...
  bool is_end_of_generation(TokenId id) const;
  bool is_control(TokenId id) const;
  std::optional<TokenId> find(std::string_view token_text) const;  // exact vocab entry
  std::string_view model_name() const;  // "llama" or "gpt2"
  std::string_view pre_name() const;    // pre-tokenizer name, "" for llama

 private:
  friend class StreamDecoder;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
};

// Turns a stream of token ids into text that is always valid UTF-8: bytes of an
// unfinished character are held back until the character completes. Not thread-safe
// (one per generation).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool special = false);
  // The text that became complete with this token (may be empty).
  std::string push(TokenId id);
  // End of stream: whatever is held back, invalid bytes replaced by U+FFFD.
  std::string flush();

 private:
  const Tokenizer& tok_;
  bool special_;
  bool first_ = true;
  std::string pending_;
};

}  // namespace cyllm::tokenizer
