#include <doctest/doctest.h>

#include <cmath>
#include <map>

#include "engine/sampler.h"

using namespace cyllm;
using namespace cyllm::engine;

namespace {

SamplingParams plain(float temp = 1.0f) {
  SamplingParams p;
  p.temperature = temp;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  return p;
}

float logit_of(const std::vector<Candidate>& c, TokenId id) {
  for (const auto& x : c)
    if (x.id == id) return x.logit;
  FAIL("token " << id << " not among the candidates");
  return 0;
}

}  // namespace

TEST_CASE("greedy picks the arg-max, ties to the lowest id") {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
  Sampler s(plain(0.0f));
  CHECK(s.sample(logits, {}) == 1);
}

TEST_CASE("top-k = 1 equals greedy for any seed and temperature") {
  const std::vector<float> logits = {0.1f, 0.3f, 3.0f, 2.9f, -4.0f, 2.95f};
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    SamplingParams p = plain(1.5f);
    p.top_k = 1;
    p.seed = seed;
    Sampler s(p);
    CHECK(s.sample(logits, {}) == 2);
  }
}

TEST_CASE("top-k keeps the k largest logits") {
  auto c = make_candidates(std::vector<float>{1, 5, 3, 4, 2});
  top_k(c, 3);
  REQUIRE(c.size() == 3);
  CHECK(c[0].id == 1);
  CHECK(c[1].id == 3);
  CHECK(c[2].id == 2);
}

TEST_CASE("top-p keeps the minimal prefix whose mass reaches p") {
  // Probabilities 0.5, 0.25, 0.125, 0.125 (log-space logits).
  const std::vector<float> logits = {std::log(0.125f), std::log(0.5f), std::log(0.125f), std::log(0.25f)};
  auto run = [&](float p) {
    auto c = make_candidates(logits);
    top_p(c, p);
    return c;
  };
  CHECK(run(0.5f).size() == 1);   // 0.5 reaches 0.5 exactly
  CHECK(run(0.51f).size() == 2);  // needs 0.5 + 0.25
  CHECK(run(0.75f).size() == 2);
  CHECK(run(0.76f).size() == 3);
  CHECK(run(0.01f).size() == 1);  // never empty
  auto c = run(0.7f);
  CHECK(c[0].id == 1);
  CHECK(c[1].id == 3);
}

TEST_CASE("min-p keeps tokens with p >= min_p * p_max") {
  // p = 0.4, 0.2, 0.2, 0.1, 0.1
  const std::vector<float> logits = {std::log(0.4f), std::log(0.2f), std::log(0.2f), std::log(0.1f), std::log(0.1f)};
  auto run = [&](float mp) {
    auto c = make_candidates(logits);
    min_p(c, mp);
    return c.size();
  };
  CHECK(run(0.45f) == 3);   // threshold 0.18 keeps 0.4, 0.2, 0.2
  CHECK(run(0.2f) == 5);    // threshold 0.08 keeps all
  CHECK(run(0.55f) == 1);   // threshold 0.22 keeps only the top
  CHECK(run(1.0f) == 1);
}

TEST_CASE("repetition penalty divides positive and multiplies negative logits") {
  auto c = make_candidates(std::vector<float>{2.0f, -2.0f, 1.0f, 4.0f});
  SamplingParams p = plain();
  p.repeat_penalty = 2.0f;
  const std::vector<TokenId> hist = {0, 1, 1};
  apply_penalties(c, hist, p);
  CHECK(logit_of(c, 0) == doctest::Approx(1.0f));
  CHECK(logit_of(c, 1) == doctest::Approx(-4.0f));  // applied once, not per occurrence
  CHECK(logit_of(c, 2) == doctest::Approx(1.0f));   // not in the history
  CHECK(logit_of(c, 3) == doctest::Approx(4.0f));
}

TEST_CASE("frequency penalty scales with the count, presence penalty does not") {
  auto c = make_candidates(std::vector<float>{1.0f, 1.0f, 1.0f});
  SamplingParams p = plain();
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  const std::vector<TokenId> hist = {0, 0, 0, 1};
  apply_penalties(c, hist, p);
  CHECK(logit_of(c, 0) == doctest::Approx(1.0f - 3 * 0.5f - 0.25f));
  CHECK(logit_of(c, 1) == doctest::Approx(1.0f - 0.5f - 0.25f));
  CHECK(logit_of(c, 2) == doctest::Approx(1.0f));
}

TEST_CASE("penalties only look at the last penalty_last_n tokens") {
  auto c = make_candidates(std::vector<float>{1.0f, 1.0f});
  SamplingParams p = plain();
  p.presence_penalty = 1.0f;
  p.penalty_last_n = 2;
  const std::vector<TokenId> hist = {0, 1, 1};
  apply_penalties(c, hist, p);
  CHECK(logit_of(c, 0) == doctest::Approx(1.0f));  // outside the window
  CHECK(logit_of(c, 1) == doctest::Approx(0.0f));
  p.penalty_last_n = -1;  // whole history
  auto d = make_candidates(std::vector<float>{1.0f, 1.0f});
  apply_penalties(d, hist, p);
  CHECK(logit_of(d, 0) == doctest::Approx(0.0f));
}

TEST_CASE("a penalty can change the greedy choice") {
  const std::vector<float> logits = {3.0f, 2.5f};
  SamplingParams p = plain(0.0f);
  p.repeat_penalty = 1.5f;
  Sampler s(p);
  const std::vector<TokenId> hist = {0};
  CHECK(s.sample(logits, hist) == 1);  // 3.0 / 1.5 = 2.0 < 2.5
}

TEST_CASE("the same seed gives the same tokens; another seed differs") {
  std::vector<float> logits(50);
  for (std::size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(float(i)) * 2;
  auto draw = [&](std::uint64_t seed) {
    SamplingParams p = plain(1.0f);
    p.seed = seed;
    Sampler s(p);
    std::vector<TokenId> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.sample(logits, {}));
    return out;
  };
  CHECK(draw(7) == draw(7));
  CHECK(draw(7) != draw(8));
}

TEST_CASE("sampling frequencies follow the softmax at the temperature") {
  const std::vector<float> logits = {0.0f, std::log(3.0f)};  // p = 0.25, 0.75 at T = 1
  auto freq1 = [&](float temp) {
    SamplingParams p = plain(temp);
    p.seed = 123;
    Sampler s(p);
    int ones = 0;
    const int n = 20000;
    for (int i = 0; i < n; ++i) ones += s.sample(logits, {}) == 1;
    return double(ones) / n;
  };
  CHECK(freq1(1.0f) == doctest::Approx(0.75).epsilon(0.03));
  // T = 0.5 squares the odds: 9 : 1.
  CHECK(freq1(0.5f) == doctest::Approx(0.9).epsilon(0.03));
}

TEST_CASE("uniform draws stay in [0, 1)") {
  Sampler s(plain());
  double lo = 1, hi = 0;
  for (int i = 0; i < 10000; ++i) {
    double u = s.next_uniform();
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  CHECK(lo >= 0.0);
  CHECK(hi < 1.0);
  CHECK(lo < 0.01);
  CHECK(hi > 0.99);
}
