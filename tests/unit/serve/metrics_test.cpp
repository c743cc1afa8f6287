// The metrics registry and its Prometheus text format.
#include <doctest/doctest.h>

#include <thread>

#include "cyllm/serve.h"

using namespace cyllm::serve;

TEST_CASE("counters, gauges and labelled series print in the Prometheus text format") {
  MetricsRegistry r;
  r.counter("cyllm_requests_total", "Finished requests", {{"outcome", "success"}, {"code", "stop"}}).inc();
  r.counter("cyllm_requests_total", "Finished requests", {{"outcome", "success"}, {"code", "stop"}}).inc(2);
  r.counter("cyllm_requests_total", "Finished requests", {{"outcome", "error"}, {"code", "serve.overloaded"}}).inc();
  r.gauge("cyllm_queue_size", "Waiting").set(3);
  r.gauge_callback("cyllm_ready", "Ready", [] { return 1.0; });
  const std::string t = r.prometheus_text();
  CHECK(t.find("# HELP cyllm_requests_total Finished requests\n# TYPE cyllm_requests_total counter\n") != std::string::npos);
  CHECK(t.find("cyllm_requests_total{outcome=\"success\",code=\"stop\"} 3\n") != std::string::npos);
  CHECK(t.find("cyllm_requests_total{outcome=\"error\",code=\"serve.overloaded\"} 1\n") != std::string::npos);
  CHECK(t.find("# TYPE cyllm_queue_size gauge\ncyllm_queue_size 3\n") != std::string::npos);
  CHECK(t.find("# TYPE cyllm_ready gauge\ncyllm_ready 1\n") != std::string::npos);
  // Families are sorted by name.
  CHECK(t.find("cyllm_queue_size") < t.find("cyllm_ready"));
  CHECK(t.find("cyllm_ready") < t.find("cyllm_requests_total"));
}

TEST_CASE("histograms have cumulative buckets, +Inf, sum and count") {
  MetricsRegistry r;
  auto& h = r.histogram("lat_seconds", "Latency", {0.1, 1});
  h.observe(0.05);
  h.observe(0.1);  // upper bounds are inclusive
  h.observe(0.5);
  h.observe(7);
  const std::string t = r.prometheus_text();
  CHECK(t.find("lat_seconds_bucket{le=\"0.1\"} 2\n") != std::string::npos);
  CHECK(t.find("lat_seconds_bucket{le=\"1\"} 3\n") != std::string::npos);
  CHECK(t.find("lat_seconds_bucket{le=\"+Inf\"} 4\n") != std::string::npos);
  CHECK(t.find("lat_seconds_sum 7.65\n") != std::string::npos);
  CHECK(t.find("lat_seconds_count 4\n") != std::string::npos);
}

TEST_CASE("label values and help text are escaped") {
  MetricsRegistry r;
  r.counter("x_total", "a \\ b\nc", {{"k", "q\"u\\o\nte"}}).inc();
  const std::string t = r.prometheus_text();
  CHECK(t.find("# HELP x_total a \\\\ b\\nc\n") != std::string::npos);
  CHECK(t.find("x_total{k=\"q\\\"u\\\\o\\nte\"} 1\n") != std::string::npos);
}

TEST_CASE("the registry is thread-safe and the same name and labels give the same series") {
  MetricsRegistry r;
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&] {
      for (int k = 0; k < 1000; ++k) {
        r.counter("c_total", "c").inc();
        r.histogram("h", "h", {1}).observe(0.5);
      }
    });
  for (auto& t : ts) t.join();
  CHECK(r.counter("c_total", "c").value() == 8000);
  CHECK(r.histogram("h", "h", {1}).snapshot().count == 8000);
  CHECK(resident_memory_bytes() > 0);
}
