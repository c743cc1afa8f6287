#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace cyllm::engine {

std::vector<Candidate> make_candidates(std::span<const float> logits) {
  std::vector<Candidate> c;
  c.reserve(logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i)
    c.push_back({static_cast<TokenId>(i), logits[i], 0.0f});
  return c;
}

void apply_penalties(std::vector<Candidate>& c, std::span<const TokenId> history,
                     const SamplingParams& params) {
  const bool any = params.repeat_penalty != 1.0f || params.presence_penalty != 0.0f ||
                   params.frequency_penalty != 0.0f;
  if (!any || params.penalty_last_n == 0 || history.empty()) return;
  std::size_t n = history.size();
  if (params.penalty_last_n > 0) n = std::min(n, static_cast<std::size_t>(params.penalty_last_n));
  std::unordered_map<TokenId, int> count;
  for (TokenId t : history.subspan(history.size() - n)) ++count[t];
  // Candidates straight from make_candidates are indexed by id; otherwise search.
  auto find = [&c](TokenId id) -> Candidate* {
    if (id >= 0 && static_cast<std::size_t>(id) < c.size() && c[static_cast<std::size_t>(id)].id == id)
      return &c[static_cast<std::size_t>(id)];
    for (auto& x : c)
      if (x.id == id) return &x;
    return nullptr;
  };
  for (auto [id, k] : count) {
    Candidate* cand = find(id);
    if (cand == nullptr) continue;
    float& l = cand->logit;
    if (params.repeat_penalty != 1.0f) l = l > 0 ? l / params.repeat_penalty : l * params.repeat_penalty;
    l -= static_cast<float>(k) * params.frequency_penalty + params.presence_penalty;
  }
}

void sort_by_logit(std::vector<Candidate>& c) {
  std::sort(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) {
    return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
  });
}

void softmax(std::vector<Candidate>& c) {
  if (c.empty()) return;
  sort_by_logit(c);
  const float max = c[0].logit;
  double sum = 0;
  for (auto& x : c) {
    x.p = std::exp(x.logit - max);
    sum += x.p;
  }
  for (auto& x : c) x.p = static_cast<float>(x.p / sum);
}

void top_k(std::vector<Candidate>& c, int k) {
  if (k <= 0 || static_cast<std::size_t>(k) >= c.size()) return;
  std::partial_sort(c.begin(), c.begin() + k, c.end(), [](const Candidate& a, const Candidate& b) {
    return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
  });
  c.resize(static_cast<std::size_t>(k));
}

void top_p(std::vector<Candidate>& c, float p) {
  if (p >= 1.0f || c.empty()) return;
  softmax(c);
  double mass = 0;
  std::size_t keep = c.size();
  for (std::size_t i = 0; i < c.size(); ++i) {
    mass += c[i].p;
    if (mass >= p) {
      keep = i + 1;
      break;
    }
  }
  c.resize(std::max<std::size_t>(keep, 1));
}

void min_p(std::vector<Candidate>& c, float mp) {
  if (mp <= 0.0f || c.empty()) return;
  softmax(c);
  const float threshold = c[0].p * mp;
  std::size_t keep = 1;
  while (keep < c.size() && c[keep].p >= threshold) ++keep;
  c.resize(keep);
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

double Sampler::next_uniform() {
  // 53 random bits -> [0, 1), independent of the standard library's distributions.
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

TokenId Sampler::sample(std::span<const float> logits, std::span<const TokenId> history) {
  CYLLM_ASSERT(!logits.empty());
  std::vector<Candidate> c = make_candidates(logits);
  apply_penalties(c, history, params_);
  if (params_.temperature <= 0.0f) {
    auto best = std::min_element(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) {
      return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
    });
    return best->id;
  }
  top_k(c, params_.top_k);
  top_p(c, params_.top_p);
  min_p(c, params_.min_p);
  for (auto& x : c) x.logit /= params_.temperature;
  softmax(c);
  const double u = next_uniform();
  double acc = 0;
  for (const auto& x : c) {
    acc += x.p;
    if (u < acc) return x.id;
  }
  return c.back().id;  // rounding left u just above the total mass
}

}  // namespace cyllm::engine
