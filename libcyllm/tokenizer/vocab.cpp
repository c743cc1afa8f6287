#include "tokenizer/vocab.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace cyllm::tokenizer {
namespace {

constexpr bool printable_byte(unsigned char b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

// The 68 bytes GPT-2 maps to U+0100.., in order.
constexpr std::array<unsigned char, 68> shifted_bytes() {
  std::array<unsigned char, 68> out{};
  std::size_t n = 0;
  for (unsigned v = 0; v < 256; ++v) {
    if (!printable_byte(static_cast<unsigned char>(v))) out[n++] = static_cast<unsigned char>(v);
  }
  return out;
}
constexpr std::array<unsigned char, 68> kShiftedBytes = shifted_bytes();

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581

Error bad(std::string message) { return Error(Errc::BadVocab, std::move(message)); }

// "<0x4A>" -> 0x4A; -1 when `t` is not a byte token text.
int parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int v = 0;
  for (char c : t.substr(3, 2)) {
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else return -1;
  }
  return v;
}

Result<PreTokenizer> pre_tokenizer_for(std::string_view pre) {
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") return PreTokenizer::Llama3;
  if (pre == "qwen2") return PreTokenizer::Qwen2;
  if (pre == "gpt-2" || pre == "gpt2" || pre == "default" || pre.empty()) return PreTokenizer::Gpt2;
  return bad("tokenizer.ggml.pre \"" + std::string(pre) +
             "\" is not supported (known: llama-bpe, qwen2, gpt-2, default)");
}

// The bytes a token stands for when special tokens are hidden.
std::string token_bytes(Family family, TokenType type, const std::string& t) {
  switch (type) {
    case TokenType::Control:
    case TokenType::Unknown:
    case TokenType::Unused:
      return "";
    case TokenType::UserDefined:
      return t;
    case TokenType::Byte:
      if (int b = parse_byte_token(t); b >= 0) return std::string(1, static_cast<char>(b));
      break;
    default:
      break;
  }
  std::string out;
  out.reserve(t.size());
  if (family == Family::Llama) {
    // U+2581 (E2 96 81) -> ' '
    for (std::size_t i = 0; i < t.size(); ++i) {
      if (t.compare(i, 3, "\xE2\x96\x81") == 0) {
        out += ' ';
        i += 2;
      } else {
        out += t[i];
      }
    }
    return out;
  }
  for (std::size_t i = 0; i < t.size();) {
    unicode::Decoded d = unicode::decode(t, i);
    int b = d.cp == unicode::kInvalid ? -1 : code_point_to_byte(d.cp);
    if (b >= 0) {
      out += static_cast<char>(b);
    } else {
      out.append(t, i, d.len);  // not a mapped byte: keep as is
    }
    i += d.len;
  }
  return out;
}

}  // namespace

char32_t byte_to_code_point(unsigned char b) {
  if (printable_byte(b)) return b;
  char32_t n = 0;
  for (unsigned v = 0; v < b; ++v) {
    if (!printable_byte(static_cast<unsigned char>(v))) ++n;
  }
  return 0x100 + n;
}

int code_point_to_byte(char32_t cp) {
  if (cp < 0x100) return printable_byte(static_cast<unsigned char>(cp)) ? static_cast<int>(cp) : -1;
  if (cp >= 0x100 + 68) return -1;
  return kShiftedBytes[cp - 0x100];
}

Result<Vocab> build_vocab(VocabData data) {
  Vocab v;
  if (data.model == "llama") {
    v.family = Family::Llama;
  } else if (data.model == "gpt2") {
    v.family = Family::Gpt2;
    v.pre_kind = CYLLM_TRY(pre_tokenizer_for(data.pre));
    v.ignore_merges = v.pre_kind == PreTokenizer::Llama3;
    v.pre = data.pre;
  } else {
    return bad("tokenizer.ggml.model \"" + data.model + "\" is not supported (llama, gpt2)");
  }
  v.model = data.model;
  const std::size_t n = data.tokens.size();
  if (n == 0) return bad("tokenizer.ggml.tokens is empty");
  if (n > static_cast<std::size_t>(INT32_MAX)) return bad("tokenizer.ggml.tokens is too long");
  if (!data.scores.empty() && data.scores.size() != n) {
    return bad("tokenizer.ggml.scores has " + std::to_string(data.scores.size()) +
               " entries but tokenizer.ggml.tokens has " + std::to_string(n));
  }
  if (!data.token_types.empty() && data.token_types.size() != n) {
    return bad("tokenizer.ggml.token_type has " + std::to_string(data.token_types.size()) +
               " entries but tokenizer.ggml.tokens has " + std::to_string(n));
  }
  v.text = std::move(data.tokens);
  v.score = data.scores.empty() ? std::vector<float>(n, 0.0f) : std::move(data.scores);
  v.type.resize(n, TokenType::Normal);
  for (std::size_t i = 0; i < data.token_types.size(); ++i) {
    std::int32_t t = data.token_types[i];
    if (t < 0 || t > 6) {
      return bad("tokenizer.ggml.token_type[" + std::to_string(i) + "] is " + std::to_string(t) +
                 " (expected 0..6)");
    }
    v.type[i] = static_cast<TokenType>(t);
  }

  struct NamedId {
    const char* key;
    TokenId data;
    TokenId* dst;
  };
  for (const NamedId& s : {NamedId{"bos", data.bos, &v.bos}, NamedId{"eos", data.eos, &v.eos},
                           NamedId{"eot", data.eot, &v.eot}, NamedId{"eom", data.eom, &v.eom},
                           NamedId{"padding", data.pad, &v.pad},
                           NamedId{"unknown", data.unk, &v.unk}}) {
    if (s.data != kNoToken && (s.data < 0 || static_cast<std::size_t>(s.data) >= n)) {
      return bad(std::string("tokenizer.ggml.") + s.key + "_token_id is " +
                 std::to_string(s.data) + " but the vocabulary has " + std::to_string(n) +
                 " tokens");
    }
    *s.dst = s.data;
  }
  const bool llama = v.family == Family::Llama;
  v.add_bos = data.add_bos.value_or(llama) && v.bos != kNoToken;
  v.add_space_prefix = data.add_space_prefix.value_or(llama);

  v.bytes.resize(n);
  v.by_text.reserve(n);
  v.byte_token.fill(kNoToken);
  for (std::size_t i = 0; i < n; ++i) {
    const auto id = static_cast<TokenId>(i);
    const std::string& t = v.text[i];
    const TokenType ty = v.type[i];
    v.bytes[i] = token_bytes(v.family, ty, t);
    auto [it, inserted] = v.by_text.emplace(t, id);
    if (!inserted && !v.mergeable(it->second) && v.mergeable(id)) it->second = id;
    if (!t.empty() && (ty == TokenType::Control || ty == TokenType::Unknown ||
                       ty == TokenType::UserDefined)) {
      v.special_by_first[static_cast<unsigned char>(t[0])].push_back(id);
    }
    if (llama && ty == TokenType::Byte) {
      if (int b = parse_byte_token(t); b >= 0 && v.byte_token[b] == kNoToken) v.byte_token[b] = id;
    }
  }
  if (llama) {
    v.spm_split_words = true;
    for (std::size_t i = 0; i < n && v.spm_split_words; ++i) {
      if (!v.mergeable(static_cast<TokenId>(i))) continue;
      const std::string& t = v.text[i];
      for (std::size_t p = t.find(kSpaceMark, 1); p != std::string::npos; p = t.find(kSpaceMark, p + 1)) {
        if (p < 3 || t.compare(p - 3, 3, kSpaceMark) != 0) {
          v.spm_split_words = false;
          break;
        }
      }
    }
  }
  for (auto& list : v.special_by_first) {
    std::stable_sort(list.begin(), list.end(), [&](TokenId a, TokenId b) {
      return v.text[a].size() > v.text[b].size();
    });
  }

  if (!llama) {
    for (int b = 0; b < 256; ++b) {
      std::string c;
      unicode::append_utf8(c, byte_to_code_point(static_cast<unsigned char>(b)));
      v.byte_token[b] = v.lookup(c);
      v.byte_char[b] = std::move(c);
    }
    v.merges.reserve(data.merges.size());
    std::string joined;
    for (std::size_t r = 0; r < data.merges.size(); ++r) {
      const std::string& m = data.merges[r];
      std::size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
      if (sp == std::string::npos) {
        return bad("tokenizer.ggml.merges[" + std::to_string(r) + "] \"" + m.substr(0, 64) +
                   "\" is not two tokens separated by a space");
      }
      std::string_view left(m.data(), sp), right(m.data() + sp + 1, m.size() - sp - 1);
      const TokenId l = v.lookup(left), rt = v.lookup(right);
      if (l == kNoToken || rt == kNoToken) continue;  // cannot apply
      joined.assign(left);
      joined.append(right);
      const TokenId res = v.lookup(joined);
      if (res == kNoToken) continue;
      const std::uint64_t key = (static_cast<std::uint64_t>(l) << 32) | static_cast<std::uint32_t>(rt);
      v.merges.emplace(key, Vocab::Merge{static_cast<std::int32_t>(r), res});
    }
  } else if (!data.merges.empty()) {
    return bad("tokenizer.ggml.merges is present but tokenizer.ggml.model is \"llama\"");
  }

  // End of generation: the declared ids, and control tokens known by their text.
  for (TokenId id : {v.eos, v.eot, v.eom}) {
    if (id != kNoToken) v.end_of_generation.push_back(id);
  }
  for (std::string_view t : {"<|eot_id|>", "<|im_end|>", "<|endoftext|>", "<end_of_turn>",
                             "</s>", "<|end|>", "<|eom_id|>"}) {
    auto it = v.by_text.find(t);
    if (it != v.by_text.end() && v.type[it->second] == TokenType::Control) {
      v.end_of_generation.push_back(it->second);
    }
  }
  std::sort(v.end_of_generation.begin(), v.end_of_generation.end());
  v.end_of_generation.erase(std::unique(v.end_of_generation.begin(), v.end_of_generation.end()),
                            v.end_of_generation.end());
  return v;
}

}  // namespace cyllm::tokenizer
