#include "serve_load.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <random>
#include <thread>

namespace cyllm::bench {

using Clock = std::chrono::steady_clock;

Percentiles percentiles(std::vector<double> v) {
  Percentiles p;
  p.n = v.size();
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  // Nearest-rank percentiles.
  auto at = [&](double q) {
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  double sum = 0;
  for (double x : v) sum += x;
  p.mean = sum / static_cast<double>(v.size());
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.max = v.back();
  return p;
}

Report summarize(const std::vector<Outcome>& outcomes, double wall_s) {
  Report r;
  r.wall_s = wall_s;
  std::vector<double> ttft, tpot, itl, e2e;
  for (const Outcome& o : outcomes) {
    if (!o.ok) {
      ++r.failed;
      ++r.errors[o.error_code.empty() ? "unknown" : o.error_code];
      continue;
    }
    ++r.completed;
    r.prompt_tokens += o.prompt_tokens;
    r.completion_tokens += o.completion_tokens;
    e2e.push_back(o.e2e_ms);
    if (o.completion_tokens == 0) continue;
    ttft.push_back(o.ttft_ms);
    if (o.completion_tokens > 1) tpot.push_back((o.e2e_ms - o.ttft_ms) / (o.completion_tokens - 1));
    for (std::size_t i = 1; i < o.piece_ms.size(); ++i) itl.push_back(o.piece_ms[i] - o.piece_ms[i - 1]);
  }
  r.ttft_ms = percentiles(ttft);
  r.tpot_ms = percentiles(tpot);
  r.itl_ms = percentiles(itl);
  r.e2e_ms = percentiles(e2e);
  if (wall_s > 0) {
    r.requests_per_s = r.completed / wall_s;
    r.output_tokens_per_s = static_cast<double>(r.completion_tokens) / wall_s;
    r.total_tokens_per_s = static_cast<double>(r.completion_tokens + r.prompt_tokens) / wall_s;
  }
  return r;
}

Report run_load(Transport& transport, const std::vector<BenchRequest>& requests, const LoadOptions& options) {
  const int n = std::max(0, options.n_requests);
  const int workers = std::max(1, std::min(options.concurrency, std::max(n, 1)));
  // Arrival times (Poisson process) when a rate is given.
  std::vector<double> arrival_s(static_cast<std::size_t>(n), 0.0);
  if (options.rate_per_s > 0) {
    std::mt19937_64 gen(options.seed);
    std::exponential_distribution<double> gap(options.rate_per_s);
    double t = 0;
    for (auto& a : arrival_s) {
      a = t;
      t += gap(gen);
    }
  }
  std::vector<Outcome> outcomes(static_cast<std::size_t>(n));
  std::atomic<int> next{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      std::unique_ptr<Session> session = transport.open();
      for (;;) {
        const int i = next.fetch_add(1);
        if (i >= n) return;
        std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                               std::chrono::duration<double>(arrival_s[static_cast<std::size_t>(i)])));
        outcomes[static_cast<std::size_t>(i)] = session->send(requests[static_cast<std::size_t>(i) % requests.size()]);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  Report r = summarize(outcomes, wall);
  r.transport = transport.name();
  r.options = options;
  r.options.concurrency = workers;
  return r;
}

void print_table(const Report& r, std::FILE* out) {
  std::fprintf(out, "transport %s, %d requests, concurrency %d, rate %s, wall %.2f s\n", r.transport.c_str(),
               r.options.n_requests, r.options.concurrency,
               r.options.rate_per_s > 0 ? (std::to_string(r.options.rate_per_s) + "/s").c_str() : "unbounded", r.wall_s);
  std::fprintf(out, "completed %d, failed %d", r.completed, r.failed);
  for (const auto& [code, count] : r.errors) std::fprintf(out, "  [%s: %d]", code.c_str(), count);
  std::fprintf(out, "\n");
  std::fprintf(out, "throughput: %.2f req/s, %.1f output tok/s, %.1f total tok/s (%llu prompt + %llu output tokens)\n",
               r.requests_per_s, r.output_tokens_per_s, r.total_tokens_per_s,
               static_cast<unsigned long long>(r.prompt_tokens), static_cast<unsigned long long>(r.completion_tokens));
  std::fprintf(out, "%-12s %10s %10s %10s %10s %10s %8s\n", "metric (ms)", "mean", "p50", "p90", "p99", "max", "n");
  auto row = [&](const char* name, const Percentiles& p) {
    std::fprintf(out, "%-12s %10.2f %10.2f %10.2f %10.2f %10.2f %8zu\n", name, p.mean, p.p50, p.p90, p.p99, p.max, p.n);
  };
  row("ttft", r.ttft_ms);
  row("tpot", r.tpot_ms);
  row("itl", r.itl_ms);
  row("e2e", r.e2e_ms);
}

nlohmann::ordered_json report_json(const Report& r) {
  auto pj = [](const Percentiles& p) {
    nlohmann::ordered_json j;
    j["mean"] = p.mean;
    j["p50"] = p.p50;
    j["p90"] = p.p90;
    j["p99"] = p.p99;
    j["max"] = p.max;
    j["n"] = p.n;
    return j;
  };
  nlohmann::ordered_json j;
  j["schema"] = "cy-llm.serve-bench/v1";
  j["transport"] = r.transport;
  j["requests"] = r.options.n_requests;
  j["concurrency"] = r.options.concurrency;
  j["rate_per_s"] = r.options.rate_per_s;
  j["wall_s"] = r.wall_s;
  j["completed"] = r.completed;
  j["failed"] = r.failed;
  j["errors"] = r.errors;
  j["prompt_tokens"] = r.prompt_tokens;
  j["completion_tokens"] = r.completion_tokens;
  j["requests_per_s"] = r.requests_per_s;
  j["output_tokens_per_s"] = r.output_tokens_per_s;
  j["total_tokens_per_s"] = r.total_tokens_per_s;
  j["ttft_ms"] = pj(r.ttft_ms);
  j["tpot_ms"] = pj(r.tpot_ms);
  j["itl_ms"] = pj(r.itl_ms);
  j["e2e_ms"] = pj(r.e2e_ms);
  return j;
}

}  // namespace cyllm::bench
