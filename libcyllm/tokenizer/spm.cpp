// SentencePiece-style BPE ("llama" vocabularies). The text (spaces already replaced by
// U+2581) starts as one symbol per character; the adjacent pair whose concatenation is
// the highest-scoring token merges first (ties: leftmost), until no adjacent pair forms
// a token. A final symbol that is not a token becomes its bytes' <0xXX> tokens.
#include <queue>

#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace cyllm::tokenizer {
namespace {

struct Symbol {
  std::uint32_t start;  // byte offset in the text
  std::uint32_t size_bytes;  // 0 once merged into its left neighbour
  std::int32_t prev;
  std::int32_t next;
};

struct Bigram {
  float score;
  std::int32_t left;
  std::int32_t right;
  std::uint32_t size_bytes;
};

struct BigramOrder {
  // priority_queue pops the largest: highest score, then the leftmost.
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

void Vocab::encode_spm(std::string_view text, std::vector<TokenId>& out) const {
  if (!spm_split_words) {
    encode_spm_segment(text, out);
    return;
  }
  // Cut before each U+2581 that follows another character (no token spans such a cut).
  // E2 is never a continuation byte, so a cut is always at a character boundary.
  constexpr std::string_view kMark = "\xE2\x96\x81";
  std::size_t start = 0;
  for (std::size_t p = text.find(kMark, 1); p != std::string_view::npos; p = text.find(kMark, p + 1)) {
    if (p >= 3 && text.compare(p - 3, 3, kMark) == 0) continue;  // inside a U+2581 run
    encode_spm_segment(text.substr(start, p - start), out);
    start = p;
  }
  encode_spm_segment(text.substr(start), out);
}

void Vocab::encode_spm_segment(std::string_view text, std::vector<TokenId>& out) const {
  std::vector<Symbol> sym;
  sym.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    std::uint32_t len = unicode::decode(text, i).len;
    auto idx = static_cast<std::int32_t>(sym.size());
    sym.push_back({static_cast<std::uint32_t>(i), len, idx - 1, idx + 1});
    i += len;
  }
  if (sym.empty()) return;
  sym.back().next = -1;

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](std::int32_t left, std::int32_t right) {
    if (left < 0 || right < 0) return;
    const std::uint32_t size = sym[left].size_bytes + sym[right].size_bytes;
    const TokenId id = lookup(text.substr(sym[left].start, size));
    if (id == kNoToken) return;
    queue.push({score[id], left, right, size});
  };
  for (std::size_t i = 1; i < sym.size(); ++i) {
    try_add(static_cast<std::int32_t>(i - 1), static_cast<std::int32_t>(i));
  }
  while (!queue.empty()) {
    Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[b.left];
    Symbol& r = sym[b.right];
    // Stale: one side already merged elsewhere.
    if (l.size_bytes == 0 || r.size_bytes == 0 || l.next != b.right ||
        l.size_bytes + r.size_bytes != b.size_bytes) {
      continue;
    }
    l.size_bytes += r.size_bytes;
    r.size_bytes = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (std::int32_t i = 0; i >= 0; i = sym[i].next) {
    std::string_view piece = text.substr(sym[i].start, sym[i].size_bytes);
    if (TokenId id = lookup(piece); id != kNoToken) {
      out.push_back(id);
      continue;
    }
    for (char c : piece) {
      TokenId t = byte_token[static_cast<unsigned char>(c)];
      if (t == kNoToken) t = unk;
      if (t != kNoToken) out.push_back(t);
    }
  }
}

}  // namespace cyllm::tokenizer
