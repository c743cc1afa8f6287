// Hyperparameters of a transformer from a GGUF file's `<arch>.*` metadata.
#pragma once

#include "cyllm/error.h"
#include "cyllm/gguf.h"
#include "cyllm/model.h"

namespace cyllm::model {

// Reads and sanity-checks the hyperparameters (UnsupportedArch for an architecture other
// than llama/qwen2/qwen3; BadModel for missing or inconsistent values, quoting the key).
// n_vocab comes from tokenizer.ggml.tokens (else <arch>.vocab_size); whether the tensors
// agree is checked when they are bound.
Result<HParams> parse_hparams(const gguf::File& file);

}  // namespace cyllm::model
