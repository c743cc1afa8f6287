// The concrete Model: the open file, its hyperparameters, bound weights and tokenizer.
#pragma once

#include <memory>
#include <string>

#include "cyllm/model.h"
#include "model/weights.h"

namespace cyllm::model {

class ModelImpl final : public Model {
 public:
  ModelImpl(gguf::File file, HParams hp, Weights weights, tokenizer::Tokenizer tok)
      : file_(std::move(file)), hp_(std::move(hp)), weights_(std::move(weights)), tok_(std::move(tok)) {}

  const HParams& hparams() const override { return hp_; }
  const tokenizer::Tokenizer& tokenizer() const override { return tok_; }
  const gguf::File& file() const override { return file_; }
  std::string chat_template() const override;
  std::uint64_t weight_bytes() const override;
  std::uint64_t kv_bytes_per_token() const override;

  const Weights& weights() const { return weights_; }

 private:
  gguf::File file_;  // owns the mapping the weights point into; declared first, freed last
  HParams hp_;
  Weights weights_;
  tokenizer::Tokenizer tok_;
};

}  // namespace cyllm::model
