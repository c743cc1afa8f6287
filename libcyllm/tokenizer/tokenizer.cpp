// Tokenizer: special-token partitioning, dispatch to the SentencePiece or byte-level BPE
// encoder, decoding, and the streaming UTF-8 decoder.
#include "cyllm/tokenizer.h"

#include <algorithm>

#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace cyllm::tokenizer {

struct Tokenizer::Impl {
  Vocab vocab;
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Result<Tokenizer> Tokenizer::from_vocab(VocabData data) {
  Vocab v = CYLLM_TRY(build_vocab(std::move(data)));
  auto impl = std::make_unique<Impl>();
  impl->vocab = std::move(v);
  return Tokenizer(std::move(impl));
}

namespace {

// Spaces -> U+2581 (SentencePiece's escaping), with the optional dummy prefix.
std::string escape_spm(std::string_view text, bool prefix) {
  std::string out;
  out.reserve(text.size() + 3 + text.size() / 4);
  if (prefix) out += "\xE2\x96\x81";
  for (char c : text) {
    if (c == ' ') {
      out += "\xE2\x96\x81";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_bos,
                                       bool parse_special) const {
  const Vocab& v = impl_->vocab;
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && v.bos != kNoToken) out.push_back(v.bos);

  bool prev_special = true;  // the dummy prefix goes at the start and after a special token
  auto encode_fragment = [&](std::string_view frag) {
    if (frag.empty()) return;
    if (v.family == Family::Llama) {
      v.encode_spm(escape_spm(frag, v.add_space_prefix && prev_special), out);
    } else if (v.add_space_prefix && prev_special) {
      std::string prefixed = " ";
      prefixed.append(frag);
      v.encode_bpe(prefixed, out);
    } else {
      v.encode_bpe(frag, out);
    }
    prev_special = false;
  };

  // Split on special tokens: user-defined tokens always, control/unknown ones only when
  // asked; at each position the longest match wins.
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size();) {
    const auto& candidates = v.special_by_first[static_cast<unsigned char>(text[i])];
    TokenId hit = kNoToken;
    for (TokenId id : candidates) {
      if (!parse_special && v.type[id] != TokenType::UserDefined) continue;
      const std::string& t = v.text[id];
      if (text.compare(i, t.size(), t) == 0) {
        hit = id;
        break;
      }
    }
    if (hit == kNoToken) {
      ++i;
      continue;
    }
    encode_fragment(text.substr(start, i - start));
    out.push_back(hit);
    prev_special = true;
    i += v.text[hit].size();
    start = i;
  }
  encode_fragment(text.substr(start));
  return out;
}

std::string Tokenizer::piece(TokenId id, bool special) const {
  const Vocab& v = impl_->vocab;
  if (!v.valid(id)) return "";
  if (special && (v.type[id] == TokenType::Control || v.type[id] == TokenType::Unknown)) {
    return v.text[id];
  }
  return v.bytes[id];
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool special) const {
  const Vocab& v = impl_->vocab;
  std::string out;
  bool first_text = true;
  for (TokenId id : ids) {
    std::string p = piece(id, special);
    if (p.empty()) continue;
    if (first_text && v.add_space_prefix && p[0] == ' ' && out.empty()) {
      out.append(p, 1);
    } else {
      out += p;
    }
    first_text = false;
  }
  return out;
}

std::size_t Tokenizer::n_vocab() const { return impl_->vocab.text.size(); }
TokenId Tokenizer::bos() const { return impl_->vocab.bos; }
TokenId Tokenizer::eos() const { return impl_->vocab.eos; }
bool Tokenizer::add_bos_by_default() const { return impl_->vocab.add_bos; }

bool Tokenizer::is_end_of_generation(TokenId id) const {
  const auto& eog = impl_->vocab.end_of_generation;
  return std::binary_search(eog.begin(), eog.end(), id);
}

bool Tokenizer::is_control(TokenId id) const {
  const Vocab& v = impl_->vocab;
  return v.valid(id) && v.type[id] == TokenType::Control;
}

std::optional<TokenId> Tokenizer::find(std::string_view token_text) const {
  const auto& m = impl_->vocab.by_text;
  auto it = m.find(token_text);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

std::string_view Tokenizer::model_name() const { return impl_->vocab.model; }
std::string_view Tokenizer::pre_name() const { return impl_->vocab.pre; }

// ---- StreamDecoder ------------------------------------------------------------------

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool special) : tok_(tok), special_(special) {}

std::string StreamDecoder::push(TokenId id) {
  std::string p = tok_.piece(id, special_);
  if (p.empty()) return "";
  if (first_) {
    first_ = false;
    if (tok_.impl_->vocab.add_space_prefix && p[0] == ' ') p.erase(0, 1);
  }
  pending_ += p;
  // Emit every complete character; replace bytes that can never become valid; hold back
  // a tail that more bytes could still complete.
  std::string out;
  std::size_t i = 0;
  while (i < pending_.size()) {
    unicode::Decoded d = unicode::decode(pending_, i);
    if (d.cp != unicode::kInvalid) {
      out.append(pending_, i, d.len);
      i += d.len;
      continue;
    }
    if (unicode::could_complete(std::string_view(pending_).substr(i))) break;
    out += "\xEF\xBF\xBD";
    ++i;
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = unicode::sanitize(pending_);
  pending_.clear();
  return out;
}

}  // namespace cyllm::tokenizer
