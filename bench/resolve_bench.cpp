// bench/resolve: time to resolve the shipped registry for each detect fixture host, and a
// generated registry of 10,000 compatibility-matrix rows. Prints medians and the ratio to
// the aims (20 ms per fixture host, 200 ms for the large registry; < 1 is better).
// Usage: resolve_bench CLI_GOLDENS_DIR [ITERATIONS]   (CLI_GOLDENS_DIR = tests/cli)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cyllm/detect.h"
#include "cyllm/registry.h"
#include "cyllm/resolve.h"

using namespace cyllm;
using Steady = std::chrono::steady_clock;

namespace {

template <class F>
double median_ms(int n, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < n; ++i) {
    auto t0 = Steady::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(Steady::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::string generated_registry(int engines, int versions_per_engine) {
  std::ostringstream o;
  o << "schema_version: 1\nhardware_profiles:\n  gpu80:\n    vendor: nvidia\n"
       "    min_compute_capability: \"8.0\"\n  gpu70:\n    vendor: nvidia\n"
       "    min_compute_capability: \"7.0\"\n  cpu:\n    architectures: [x86_64]\nengines:\n";
  for (int e = 0; e < engines; ++e) {
    o << "  e" << e << ":\n    kind: python\n    tradeoff: t\n    versions: [";
    for (int v = 0; v < versions_per_engine; ++v) o << (v ? ", " : "") << "\"1." << v << "\"";
    o << "]\n    default_version: \"1.0\"\n";
  }
  o << "base_environment:\n  requirements: [\"protobuf>=4.21,<6\", \"grpcio>=1.62\"]\n";
  o << "compatibility_matrix:\n";
  for (int e = 0; e < engines; ++e)
    for (int v = 0; v < versions_per_engine; ++v)
      o << "  - {hardware: " << (v % 3 == 0 ? "gpu80" : v % 3 == 1 ? "gpu70" : "cpu") << ", engine: e" << e
        << ", engine_versions: \"==1." << v << "\", python: \">=3.9\", verified: true, requirements: [\"e" << e
        << "==1." << v << "\", \"torch==2." << (v % 10) << ".0\", \"protobuf>=" << (v % 2 ? 6 : 5) << "\"]}\n";
  return o.str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CLI_GOLDENS_DIR [ITERATIONS]\n", argv[0]);
    return 2;
  }
  const std::string cli = argv[1];
  const int n = argc > 2 ? std::max(1, std::atoi(argv[2])) : 20;

  std::printf("%-36s %10s %8s %8s\n", "case", "median_ms", "aim_ms", "ratio");
  double load_ms = median_ms(n, [] { (void)registry::load_builtin_registry(); });
  std::printf("%-36s %10.2f %8s %8s\n", "load built-in registry", load_ms, "-", "-");
  auto reg = registry::load_builtin_registry();
  if (!reg) {
    std::fprintf(stderr, "%s\n", reg.error().to_string().c_str());
    return 1;
  }
  for (const char* host : {"a100x8-mig-smi", "h100-rtx4090", "mi300x", "ascend910b-x8", "cpu-cgroup2"}) {
    std::ifstream f(cli + "/detect/" + host + "/expected.stdout.json");
    std::stringstream ss;
    ss << f.rdbuf();
    auto profile = detect::profile_from_json(nlohmann::json::parse(ss.str()));
    if (!profile) {
      std::fprintf(stderr, "bad profile %s\n", host);
      return 1;
    }
    double ms = median_ms(n, [&] { (void)resolve::resolve(*reg, *profile, {}); });
    std::printf("%-36s %10.3f %8.0f %7.3fx\n", (std::string("resolve shipped, ") + host).c_str(), ms, 20.0, ms / 20.0);
  }
  const std::string big = generated_registry(200, 50);
  registry::Registry gen;
  double gen_load = median_ms(std::max(1, n / 4), [&] {
    gen = registry::load_registry_from_strings({{"generated.yaml", big}}).value();
  });
  std::printf("%-36s %10.2f %8s %8s\n", "load generated (10,000 rows)", gen_load, "-", "-");
  detect::HardwareProfile host;
  host.vendor = "nvidia";
  host.device_name = "NVIDIA A100-SXM4-80GB";
  host.compute_capability = "8.0";
  host.driver_version = "555.42.02";
  host.cpu.architecture = "x86_64";
  double ms = median_ms(std::max(1, n / 4), [&] { (void)resolve::resolve(gen, host, {}); });
  std::printf("%-36s %10.2f %8.0f %7.3fx\n", "resolve generated (10,000 rows)", ms, 200.0, ms / 200.0);
  std::printf("(median of %d runs; ratio = time / aim, below 1 meets the aim)\n", n);
  return 0;
}
