// The four vocabulary-only GGUF files in testdata/vocab, loaded through the public API.
#pragma once

#include <doctest/doctest.h>

#include <map>
#include <string>

#include "cyllm/gguf.h"
#include "cyllm/tokenizer.h"
#include "test_support.h"

namespace cyllm::tokenizer::test {

inline const char* const kVocabNames[] = {"llama-spm", "llama-bpe", "qwen2", "gpt-2"};

inline std::string vocab_path(const std::string& name) {
  return (cyllm::test::testdata_dir() / "vocab" / ("ggml-vocab-" + name + ".gguf")).string();
}

// Loaded once per test binary (loading the big vocabularies is slow under sanitizers).
inline const Tokenizer& load_vocab(const std::string& name) {
  static std::map<std::string, Tokenizer> cache;
  if (auto it = cache.find(name); it != cache.end()) return it->second;
  auto file = gguf::File::open(vocab_path(name));
  REQUIRE_MESSAGE(file.ok(), (file.ok() ? "" : file.error().to_string()));
  auto tok = Tokenizer::load(*file);
  REQUIRE_MESSAGE(tok.ok(), (tok.ok() ? "" : tok.error().to_string()));
  // The Tokenizer holds no reference to the File.
  return cache.emplace(name, std::move(tok).value()).first->second;
}

}  // namespace cyllm::tokenizer::test
