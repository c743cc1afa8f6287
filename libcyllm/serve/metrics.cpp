// Prometheus metrics: counters, gauges and histograms with labels, and the text
// exposition format (version 0.0.4):
//   # HELP <name> <help>
//   # TYPE <name> counter|gauge|histogram
//   <name>{label="value",...} <value>
//   <name>_bucket{le="0.5"} <cumulative count> ... <name>_bucket{le="+Inf"} <count>
//   <name>_sum <sum>  <name>_count <count>
// Label values escape backslash, double quote and newline; help text backslash and newline.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include "cyllm/serve.h"

namespace cyllm::serve {
namespace {

enum Type { kCounter = 0, kGauge = 1, kHistogram = 2, kGaugeFn = 3 };

std::string escape(std::string_view s, bool quote) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (quote && c == '"') out += "\\\"";
    else out += c;
  }
  return out;
}

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string label_text(const Labels& labels, const std::string& extra = {}) {
  if (labels.empty() && extra.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& kv : labels) {
    if (!first) out += ',';
    first = false;
    out += kv.first + "=\"" + escape(kv.second, true) + "\"";
  }
  if (!extra.empty()) out += (first ? "" : ",") + extra;
  return out + "}";
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  std::size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  std::lock_guard lock(mu_);
  ++counts_[i];
  sum_ += v;
  ++count_;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  std::lock_guard lock(mu_);
  std::uint64_t acc = 0;
  for (auto c : counts_) s.cumulative.push_back(acc += c);
  s.sum = sum_;
  s.count = count_;
  return s;
}

struct MetricsRegistry::Family {
  std::string help;
  int type = kCounter;
  std::map<Labels, std::unique_ptr<Counter>> counters;
  std::map<Labels, std::unique_ptr<Gauge>> gauges;
  std::map<Labels, std::unique_ptr<Histogram>> histograms;
  std::function<double()> fn;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Family& MetricsRegistry::family(const std::string& name, const std::string& help,
                                                 int type) {
  auto& f = families_[name];
  if (!f) {
    f = std::make_unique<Family>();
    f->help = help;
    f->type = type;
  }
  CYLLM_ASSERT(f->type == type);
  return *f;
}

Counter& MetricsRegistry::counter(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard lock(mu_);
  auto& slot = family(name, help, kCounter).counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& MetricsRegistry::gauge(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard lock(mu_);
  auto& slot = family(name, help, kGauge).gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

Histogram& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                      const std::vector<double>& upper_bounds, const Labels& labels) {
  std::lock_guard lock(mu_);
  auto& slot = family(name, help, kHistogram).histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(upper_bounds);
  return *slot;
}

void MetricsRegistry::gauge_callback(const std::string& name, const std::string& help,
                                     std::function<double()> fn) {
  std::lock_guard lock(mu_);
  family(name, help, kGaugeFn).fn = std::move(fn);
}

std::string MetricsRegistry::prometheus_text() const {
  std::ostringstream out;
  std::lock_guard lock(mu_);
  for (const auto& [name, f] : families_) {
    static const char* kTypes[] = {"counter", "gauge", "histogram", "gauge"};
    out << "# HELP " << name << ' ' << escape(f->help, false) << '\n';
    out << "# TYPE " << name << ' ' << kTypes[f->type] << '\n';
    switch (f->type) {
      case kCounter:
        for (const auto& [labels, c] : f->counters)
          out << name << label_text(labels) << ' ' << number(c->value()) << '\n';
        break;
      case kGauge:
        for (const auto& [labels, g] : f->gauges)
          out << name << label_text(labels) << ' ' << number(g->value()) << '\n';
        break;
      case kGaugeFn:
        out << name << ' ' << number(f->fn ? f->fn() : 0.0) << '\n';
        break;
      case kHistogram:
        for (const auto& [labels, h] : f->histograms) {
          const auto s = h->snapshot();
          for (std::size_t i = 0; i <= s.bounds.size(); ++i) {
            const std::string le = i < s.bounds.size() ? number(s.bounds[i]) : "+Inf";
            out << name << "_bucket" << label_text(labels, "le=\"" + le + "\"") << ' '
                << s.cumulative[i] << '\n';
          }
          out << name << "_sum" << label_text(labels) << ' ' << number(s.sum) << '\n';
          out << name << "_count" << label_text(labels) << ' ' << s.count << '\n';
        }
        break;
    }
  }
  return out.str();
}

std::vector<double> latency_buckets_s() {
  return {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60};
}

std::uint64_t resident_memory_bytes() {
  std::ifstream f("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  const long page = ::sysconf(_SC_PAGESIZE);
  return resident * static_cast<std::uint64_t>(page > 0 ? page : 4096);
}

}  // namespace cyllm::serve
