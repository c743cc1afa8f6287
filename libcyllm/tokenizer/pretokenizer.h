// Pre-tokenizers of the byte-level BPE vocabularies: split text into words before BPE
// merges run inside each word. Each one is a hand-written scanner equivalent to the
// regular expression the reference tokenizer uses (alternatives tried in order, first
// match wins, unmatched characters become one-character words):
//
//   Gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   Llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
//           | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   Qwen2:  as Llama3 with \p{N} (one digit per word) instead of \p{N}{1,3}
//
// Words are byte ranges of the input and cover it exactly, in order. Invalid UTF-8 bytes
// count as single "other" characters (neither letter, number nor space).
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace cyllm::tokenizer {

enum class PreTokenizer { Gpt2, Llama3, Qwen2 };

struct ByteSpan {
  std::size_t offset;
  std::size_t size_bytes;
};

std::vector<ByteSpan> pretokenize(PreTokenizer kind, std::string_view text);

}  // namespace cyllm::tokenizer
