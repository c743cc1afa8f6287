// Numerical parity with llama.cpp on the tiny random-weight Llama in
// testdata/models (F16 and four quantizations): teacher-forced, every step's listed
// top-5 logits compared with what llama.cpp computed (see testdata/README.md).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cyllm/model.h"
#include "test_support.h"

using cyllm::model::Model;
using cyllm::model::Session;

namespace {

// Largest |logit - llama.cpp's| over every prompt and step of `name`.ref.jsonl.
double max_parity_error(const std::string& name) {
  const auto dir = cyllm::test::testdata_dir() / "models";
  auto model = Model::load((dir / (name + ".gguf")).string());
  REQUIRE_MESSAGE(model.ok(), model.error().to_string());
  std::ifstream in(dir / (name + ".ref.jsonl"));
  REQUIRE_MESSAGE(in.good(), "missing " << name << ".ref.jsonl");
  double worst = 0;
  std::size_t n_prompts = 0, n_steps = 0;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto ref = nlohmann::json::parse(line);
    CAPTURE(ref["prompt"].get<std::string>());
    const auto prompt = ref["prompt_tokens"].get<std::vector<std::int32_t>>();
    // The tokenizer agrees with llama.cpp's on the prompt (BOS included).
    CHECK((*model)->tokenizer().encode(ref["prompt"].get<std::string>(), true, false) == prompt);
    const auto& steps = ref["steps"];
    REQUIRE(!steps.empty());
    // Teacher forcing: after the prompt come llama.cpp's top-1 tokens of each step.
    std::vector<std::int32_t> seq = prompt;
    for (std::size_t k = 0; k + 1 < steps.size(); ++k) seq.push_back(steps[k]["top"][0][0].get<std::int32_t>());
    auto compare = [&](std::span<const float> logits, const nlohmann::json& step) {
      for (const auto& pair : step["top"]) {
        const auto id = pair[0].get<std::int32_t>();
        REQUIRE(id >= 0);
        REQUIRE(static_cast<std::size_t>(id) < logits.size());
        worst = std::max(worst, std::fabs(double{logits[static_cast<std::size_t>(id)]} - pair[1].get<double>()));
      }
    };
    // All steps in one batch (the forward pass sees every position causally, as if the
    // tokens came one at a time; forward_test checks that equivalence).
    auto s = Session::create(*model, {256, 0});
    REQUIRE_MESSAGE(s.ok(), s.error().to_string());
    REQUIRE((*s)->eval_all(seq).ok());
    const std::size_t n_vocab = (*model)->hparams().n_vocab;
    REQUIRE((*s)->all_logits().size() == seq.size() * n_vocab);
    for (std::size_t k = 0; k < steps.size(); ++k) {
      compare((*s)->all_logits().subspan((prompt.size() - 1 + k) * n_vocab, n_vocab), steps[k]);
      ++n_steps;
    }
    // The first prompt also one token at a time through the KV cache, as generation runs
    // (a few steps: each costs a full output projection, slow under sanitizers).
    if (n_prompts == 0) {
      auto inc = Session::create(*model, {256, 1});
      REQUIRE(inc.ok());
      REQUIRE((*inc)->eval(prompt).ok());
      for (std::size_t k = 0; k < std::min<std::size_t>(steps.size(), 4); ++k) {
        compare((*inc)->logits(), steps[k]);
        if (k + 1 < steps.size()) REQUIRE((*inc)->eval(std::span(&seq[prompt.size() + k], 1)).ok());
      }
    }
    ++n_prompts;
  }
  CHECK(n_prompts >= 1);
  MESSAGE(name << ": max |logit - llama.cpp| = " << worst << " over " << n_prompts << " prompts, "
               << n_steps << " steps");
  return worst;
}

}  // namespace

TEST_CASE("parity with llama.cpp: F16") { CHECK(max_parity_error("tiny-llama-f16") <= 0.02); }
TEST_CASE("parity with llama.cpp: Q8_0") { CHECK(max_parity_error("tiny-llama-q8_0") <= 0.05); }
TEST_CASE("parity with llama.cpp: Q6_K") { CHECK(max_parity_error("tiny-llama-q6_k") <= 0.05); }
TEST_CASE("parity with llama.cpp: Q4_K_M") { CHECK(max_parity_error("tiny-llama-q4_k_m") <= 0.15); }
TEST_CASE("parity with llama.cpp: Q4_0") { CHECK(max_parity_error("tiny-llama-q4_0") <= 0.15); }
