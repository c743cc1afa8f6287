// A tiny model with no end-of-generation token, slow enough (a few ms per token) that a
// long request holds its scheduler slot for seconds. Shared by the serve unit and
// integration tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "../model/tiny_model.h"
#include "test_support.h"

namespace cyllm::test {

inline std::string write_slow_model(const TempDir& dir) {
  TinySpec s;
  s.n_embd = 256;
  s.n_head = 8;
  s.n_head_kv = 4;
  s.head_dim = 32;
  s.n_ff = 768;
  s.n_layer = 4;
  s.n_ctx = 8192;
  s.seed = 5;
  const std::string path = (dir.path() / "slow.gguf").string();
  auto writer = make_tiny_model(s);
  // No end-of-generation token (</s> becomes a normal token, no EOS id): a long request
  // runs until its limit, its cancel or its deadline, whatever greedy decoding picks.
  writer.set_i32("tokenizer.ggml.eos_token_id", -1);
  std::vector<std::int32_t> types(s.n_vocab, 1);
  types[0] = 2;  // <unk>
  types[1] = 3;  // <s>
  for (int b = 3; b < 3 + 256; ++b) types[b] = 6;  // <0xXX>
  writer.set_i32s("tokenizer.ggml.token_type", types);
  auto w = writer.write(path);
  REQUIRE_MESSAGE(w.ok(), (w.ok() ? "" : w.error().to_string()));
  return path;
}

}  // namespace cyllm::test
