// The measuring half of bench/engine, shared by the two child programs that run one
// engine each: engine_bench's own `--child` mode (cy-llm's native engine) and
// llama_runner (llama.cpp; compiled by scripts/setup-llama-bench, outside meson, so this
// header depends on nothing but the standard library). Both children run exactly the same
// procedure through an adapter, and print "key value" lines that the parent parses.
//
// Adapter interface (duck-typed):
//   bool load(const std::string& path, int threads, std::string& err)  model only
//   bool begin(int n_seqs, int n_ctx, std::string& err)   context(s) / session(s)
//   int  n_vocab() const
//   void clear()                                        empty every sequence's cache
//   bool eval(const std::vector<int>& tokens, std::string& err)   sequence 0, appended
//   bool step(const std::vector<std::vector<int>>& per_seq, std::string& err)
//        one forward pass: per_seq[i] is appended to sequence i, logits after each last
//   bool logits_finite() const       sequence 0's last logits: no NaN/Inf, not all zero
//   void end()                                          frees what begin() made
//
// Method (what llama-bench does for pp/tg):
//   pp N : clear, then one eval of N random tokens (one batch of N).
//   tg N : clear, then N evals of one random token each (empty context at the start).
//   warm-up: one 16-token eval and one 1-token eval before the timed runs (faults in every
//   weight page, starts the threads); then `reps` timed runs, the median is reported. A run
//   that would push a test past `budget` seconds is not started once one run is done
//   (the line says how many runs the median is of), and a tg run itself stops after
//   `budget` seconds (at least 8 tokens; tg_tokens says how many the shortest run had).
//   batch S: S sequences, each first gets a distinct 8-token prompt (one untimed step),
//   then `steps` timed steps of one token per sequence; aggregate = S * steps / time.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace engine_bench {

struct ChildArgs {
  std::string model;
  std::string mode = "single";  // single: load, pp, tg; batch: aggregate decoding
  int threads = 1;
  int reps = 3;
  double budget = 120;  // seconds per test, see above
  int pp = 512;
  int tg = 128;
  int n_ctx = 1024;
  std::vector<int> seqs = {1, 4, 16};
  int steps = 32;
};

inline std::vector<int> parse_int_list(const char* s) {
  std::vector<int> v;
  while (*s) {
    char* end = nullptr;
    long x = std::strtol(s, &end, 10);
    if (end == s) break;
    v.push_back(static_cast<int>(x));
    s = *end == ',' ? end + 1 : end;
  }
  return v;
}

// Parses the child flags (after the program's own ones); false on a bad flag.
inline bool parse_child_args(int argc, char** argv, int first, ChildArgs& a) {
  for (int i = first; i < argc; ++i) {
    const std::string f = argv[i];
    if (i + 1 >= argc) return false;
    const char* v = argv[++i];
    if (f == "--model") a.model = v;
    else if (f == "--mode") a.mode = v;
    else if (f == "--threads") a.threads = std::atoi(v);
    else if (f == "--reps") a.reps = std::max(1, std::atoi(v));
    else if (f == "--budget") a.budget = std::atof(v);
    else if (f == "--pp") a.pp = std::atoi(v);
    else if (f == "--tg") a.tg = std::atoi(v);
    else if (f == "--n-ctx") a.n_ctx = std::atoi(v);
    else if (f == "--seqs") a.seqs = parse_int_list(v);
    else if (f == "--steps") a.steps = std::atoi(v);
    else return false;
  }
  return !a.model.empty() && a.threads > 0 && (a.mode == "single" || a.mode == "batch");
}

class Rand {
 public:
  explicit Rand(std::uint64_t seed) : s_(seed ^ 0x9E3779B97F4A7C15ull) {}
  std::uint64_t next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return s_;
  }
  // Token ids in [3, n_vocab): skips <unk>, <s> and </s>.
  std::vector<int> tokens(int n, int n_vocab) {
    std::vector<int> v(static_cast<std::size_t>(n));
    for (int& t : v) t = 3 + static_cast<int>(next() % static_cast<std::uint64_t>(n_vocab - 3));
    return v;
  }

 private:
  std::uint64_t s_;
};

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Runs `once` (returns seconds, or < 0 on failure) up to `reps` times within `budget`.
inline bool timed_runs(int reps, double budget, const std::function<double()>& once,
                       std::vector<double>& out) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) {
    const double s = once();
    if (s < 0) return false;
    out.push_back(s);
    const double spent = seconds_since(t0), per = spent / static_cast<double>(out.size());
    if (spent + per > budget) break;
  }
  return true;
}

// True when v holds no NaN/Inf and is not all zeros (the random weights are scaled so that
// activations stay finite through every layer).
inline bool all_finite(const float* v, std::size_t n) {
  bool nonzero = false;
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) return false;
    nonzero = nonzero || v[i] != 0.0f;
  }
  return n > 0 && nonzero;
}

inline int fail(const std::string& what, const std::string& err) {
  std::printf("error %s: %s\n", what.c_str(), err.c_str());
  std::fflush(stdout);
  return 1;
}

// Prints "<key> <tokens/s median> <runs>" from per-run seconds for `tokens` tokens.
inline void report_rate(const char* key, double tokens, const std::vector<double>& secs) {
  std::vector<double> rates;
  for (double s : secs) rates.push_back(s > 0 ? tokens / s : 0);
  std::printf("%s %.4f %zu\n", key, median(rates), rates.size());
  std::fflush(stdout);
}

template <class Adapter>
int run_child(Adapter& e, const ChildArgs& a) {
  std::string err;
  Rand rng(1234);
  if (a.mode == "single") {
    const auto t0 = std::chrono::steady_clock::now();
    if (!e.load(a.model, a.threads, err)) return fail("load", err);
    if (!e.begin(1, a.n_ctx, err)) return fail("context", err);
    std::printf("load_s %.4f\n", seconds_since(t0));
    const int nv = e.n_vocab();
    // Warm-up.
    e.clear();
    if (!e.eval(rng.tokens(16, nv), err) || !e.eval(rng.tokens(1, nv), err)) return fail("warm-up", err);
    std::vector<double> secs;
    if (a.pp > 0) {
      const bool ok = timed_runs(a.reps, a.budget, [&] {
        e.clear();
        const std::vector<int> toks = rng.tokens(a.pp, nv);
        const auto t = std::chrono::steady_clock::now();
        return e.eval(toks, err) ? seconds_since(t) : -1.0;
      }, secs);
      if (!ok) return fail("pp", err);
      report_rate("pp_tps", a.pp, secs);
      std::printf("logits_finite %d\n", e.logits_finite() ? 1 : 0);
    }
    secs.clear();
    if (a.tg > 0) {
      int fewest = a.tg;  // tokens of the shortest run (< tg when a run was cut short)
      const bool ok = timed_runs(a.reps, a.budget, [&] {
        e.clear();
        const std::vector<int> toks = rng.tokens(a.tg, nv);
        const auto t = std::chrono::steady_clock::now();
        int done = 0;
        for (; done < a.tg; ++done) {
          if (!e.eval({toks[static_cast<std::size_t>(done)]}, err)) return -1.0;
          if (done >= 7 && seconds_since(t) > a.budget) {
            ++done;
            break;
          }
        }
        fewest = std::min(fewest, done);
        return seconds_since(t) * a.tg / done;  // time for tg tokens at this run's rate
      }, secs);
      if (!ok) return fail("tg", err);
      report_rate("tg_tps", a.tg, secs);
      if (fewest < a.tg) std::printf("tg_tokens %d\n", fewest);
    }
    e.end();
    return 0;
  }
  // batch
  if (!e.load(a.model, a.threads, err)) return fail("load", err);
  for (int S : a.seqs) {
    if (S < 1) continue;
    if (!e.begin(S, 8 + a.steps + 8, err)) return fail("context", err);
    const int nv = e.n_vocab();
    auto prompt = [&] {
      std::vector<std::vector<int>> p;
      for (int s = 0; s < S; ++s) p.push_back(rng.tokens(8, nv));
      return p;
    };
    auto one_each = [&] {
      std::vector<std::vector<int>> p;
      for (int s = 0; s < S; ++s) p.push_back(rng.tokens(1, nv));
      return p;
    };
    // Warm-up: a prompt step and one decoding step.
    e.clear();
    if (!e.step(prompt(), err) || !e.step(one_each(), err)) return fail("batch warm-up", err);
    std::vector<double> secs;
    const bool ok = timed_runs(a.reps, a.budget, [&] {
      e.clear();
      if (!e.step(prompt(), err)) return -1.0;
      std::vector<std::vector<std::vector<int>>> steps;
      for (int i = 0; i < a.steps; ++i) steps.push_back(one_each());
      const auto t = std::chrono::steady_clock::now();
      for (const auto& st : steps)
        if (!e.step(st, err)) return -1.0;
      return seconds_since(t);
    }, secs);
    if (!ok) return fail("batch " + std::to_string(S), err);
    const std::string key = "batch_tps_" + std::to_string(S);
    report_rate(key.c_str(), static_cast<double>(S) * a.steps, secs);
    e.end();
  }
  return 0;
}

}  // namespace engine_bench
