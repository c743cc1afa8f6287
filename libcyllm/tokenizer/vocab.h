// The tokenizer's internal vocabulary: token texts, scores and types as read, plus the
// indexes the encoders need (text -> id, merge pairs, byte tokens, special tokens by
// first byte) and each token's decoded bytes. Immutable after build_vocab.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cyllm/error.h"
#include "cyllm/tokenizer.h"
#include "tokenizer/pretokenizer.h"

namespace cyllm::tokenizer {

enum class Family { Llama, Gpt2 };

struct Vocab {
  // The text indexes hold views into `text`: moving keeps them valid, copying would not.
  Vocab() = default;
  Vocab(Vocab&&) = default;
  Vocab& operator=(Vocab&&) = default;
  Vocab(const Vocab&) = delete;
  Vocab& operator=(const Vocab&) = delete;

  Family family = Family::Llama;
  std::string model;
  std::string pre;
  PreTokenizer pre_kind = PreTokenizer::Gpt2;
  bool ignore_merges = false;  // llama3: a word that is a token is not merged further
  bool add_bos = false;
  bool add_space_prefix = false;
  // llama: no mergeable token has U+2581 right after another character, so merging can
  // run separately on each "word" (a U+2581 run and what follows) with the same result.
  bool spm_split_words = false;

  std::vector<std::string> text;   // id -> token text as stored
  std::vector<float> score;        // id -> score (llama merges)
  std::vector<TokenType> type;     // id -> type
  std::vector<std::string> bytes;  // id -> the bytes it stands for (non-special view)

  // Every token by text (on duplicate texts the first mergeable id, else the first id).
  std::unordered_map<std::string_view, TokenId> by_text;
  struct Merge {
    std::int32_t rank;
    TokenId result;
  };
  // gpt2: (left id << 32 | right id) -> merge.
  std::unordered_map<std::uint64_t, Merge> merges;
  // llama: the <0xXX> token of each byte; gpt2: the token of each byte's mapped character.
  std::array<TokenId, 256> byte_token{};
  // gpt2: each byte's mapped character as UTF-8.
  std::array<std::string, 256> byte_char;
  // Control, unknown and user-defined tokens, grouped by first byte, longest first.
  std::array<std::vector<TokenId>, 256> special_by_first;

  TokenId bos = kNoToken, eos = kNoToken, eot = kNoToken, eom = kNoToken;
  TokenId pad = kNoToken, unk = kNoToken;
  std::vector<TokenId> end_of_generation;  // sorted

  // Text without special tokens -> ids, appended to out.
  void encode_spm(std::string_view text, std::vector<TokenId>& out) const;
  void encode_spm_segment(std::string_view text, std::vector<TokenId>& out) const;
  void encode_bpe(std::string_view text, std::vector<TokenId>& out) const;

  bool valid(TokenId id) const { return id >= 0 && static_cast<std::size_t>(id) < text.size(); }
  // Tokens ordinary text may produce: Normal, UserDefined, Undefined.
  bool mergeable(TokenId id) const {
    TokenType t = type[id];
    return t == TokenType::Normal || t == TokenType::UserDefined || t == TokenType::Undefined;
  }
  // The mergeable token with this text, or kNoToken.
  TokenId lookup(std::string_view t) const {
    auto it = by_text.find(t);
    return it != by_text.end() && mergeable(it->second) ? it->second : kNoToken;
  }
};

Result<Vocab> build_vocab(VocabData data);

// GPT-2's byte <-> printable code point map: bytes 0x21..0x7E, 0xA1..0xAC and
// 0xAE..0xFF map to themselves, the other 68 bytes to U+0100.. in increasing order.
char32_t byte_to_code_point(unsigned char b);
// The byte a code point stands for, or -1.
int code_point_to_byte(char32_t cp);

}  // namespace cyllm::tokenizer
