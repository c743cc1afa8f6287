// Byte-level BPE ("gpt2" vocabularies). The pre-tokenizer splits the text into words;
// each word starts as one symbol per byte (the token of the byte's mapped character) and
// the adjacent pair with the lowest merge rank merges first (ties: leftmost) until no
// listed merge applies. With ignore_merges (llama3), a word that is itself a token is
// emitted whole.
#include <queue>

#include "tokenizer/vocab.h"

namespace cyllm::tokenizer {
namespace {

struct Symbol {
  TokenId id;
  std::int32_t prev;
  std::int32_t next;
  bool alive;
};

struct Bigram {
  std::int32_t rank;
  std::int32_t left;
  std::int32_t right;
  TokenId left_id;
  TokenId right_id;
  TokenId result;
};

struct BigramOrder {
  // priority_queue pops the largest: lowest rank, then the leftmost.
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

void Vocab::encode_bpe(std::string_view text, std::vector<TokenId>& out) const {
  std::vector<Symbol> sym;
  std::vector<Bigram> storage;
  std::string mapped;
  for (const ByteSpan& w : pretokenize(pre_kind, text)) {
    std::string_view word = text.substr(w.offset, w.size_bytes);
    if (ignore_merges) {
      mapped.clear();
      for (char c : word) mapped += byte_char[static_cast<unsigned char>(c)];
      if (TokenId id = lookup(mapped); id != kNoToken) {
        out.push_back(id);
        continue;
      }
    }
    sym.clear();
    for (std::size_t i = 0; i < word.size(); ++i) {
      auto idx = static_cast<std::int32_t>(i);
      sym.push_back({byte_token[static_cast<unsigned char>(word[i])], idx - 1, idx + 1, true});
    }
    sym.back().next = -1;

    storage.clear();
    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue(BigramOrder{},
                                                                        std::move(storage));
    auto try_add = [&](std::int32_t left, std::int32_t right) {
      if (left < 0 || right < 0) return;
      TokenId a = sym[left].id, b = sym[right].id;
      if (a < 0 || b < 0) return;
      auto it = merges.find((static_cast<std::uint64_t>(a) << 32) | static_cast<std::uint32_t>(b));
      if (it == merges.end()) return;
      queue.push({it->second.rank, left, right, a, b, it->second.result});
    };
    for (std::size_t i = 1; i < sym.size(); ++i) {
      try_add(static_cast<std::int32_t>(i - 1), static_cast<std::int32_t>(i));
    }
    while (!queue.empty()) {
      Bigram bg = queue.top();
      queue.pop();
      Symbol& l = sym[bg.left];
      Symbol& r = sym[bg.right];
      if (!l.alive || !r.alive || l.next != bg.right || l.id != bg.left_id ||
          r.id != bg.right_id) {
        continue;  // stale
      }
      l.id = bg.result;
      r.alive = false;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = bg.left;
      try_add(l.prev, bg.left);
      try_add(bg.left, l.next);
    }
    for (std::int32_t i = 0; i >= 0; i = sym[i].next) {
      TokenId id = sym[i].id >= 0 ? sym[i].id : unk;
      if (id != kNoToken) out.push_back(id);
    }
  }
}

}  // namespace cyllm::tokenizer
