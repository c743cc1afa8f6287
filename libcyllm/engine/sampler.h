// Sampling: turning one step's logits into the next token.
//
// The chain, in order (the order llama.cpp's default sampler uses, so that the same
// parameters mean the same thing):
//   1. penalties over the last `penalty_last_n` tokens of the history
//      (repetition: positive logits divided, negative multiplied by repeat_penalty;
//       frequency: logit -= count * frequency_penalty; presence: logit -= presence_penalty
//       once for any count > 0);
//   2. temperature <= 0: greedy (arg-max, ties to the lowest id); stop here;
//   3. top-k (k <= 0: off), 4. top-p (>= 1: off), 5. min-p (<= 0: off), each on the
//      softmax at temperature 1 of what the previous step kept;
//   6. temperature: logits / T, softmax, one draw from the seeded generator.
// Design goals: reproducible (std::mt19937_64 from an explicit seed, our own
// uniform-double conversion so the same seed gives the same token on every libstdc++/libc++),
// each step a pure function on a candidate list so tests can check it on hand-made logits.
// Non-goals: mirostat, typical-p, DRY, grammars.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "cyllm/engine.h"

namespace cyllm::engine {

struct Candidate {
  tokenizer::TokenId id;
  float logit;
  float p;  // probability after the last softmax (0 until one ran)
};

// All steps keep `c` sorted by logit, highest first, after top_k/top_p/min_p/softmax.
std::vector<Candidate> make_candidates(std::span<const float> logits);
void apply_penalties(std::vector<Candidate>& c, std::span<const tokenizer::TokenId> history,
                     const SamplingParams& params);
void sort_by_logit(std::vector<Candidate>& c);  // descending; ties by ascending id
void softmax(std::vector<Candidate>& c);        // sorts, then fills p
void top_k(std::vector<Candidate>& c, int k);
// Keeps the shortest prefix (by descending probability) whose mass reaches p; at least one.
void top_p(std::vector<Candidate>& c, float p);
// Keeps tokens whose probability is at least min_p times the largest; at least one.
void min_p(std::vector<Candidate>& c, float min_p);

// One sampler per generation (it owns the generator state). Not thread-safe.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // `history`: every token so far (prompt and generated), for the penalties.
  tokenizer::TokenId sample(std::span<const float> logits,
                            std::span<const tokenizer::TokenId> history);
  // A uniform double in [0, 1) from the generator (exposed for tests).
  double next_uniform();

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace cyllm::engine
