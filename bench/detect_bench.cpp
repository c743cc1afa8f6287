// bench/detect: how long hardware detection takes, in process and as a whole tool run,
// with `lscpu` (util-linux; reads the same /proc and /sys files) measured in the same run
// as the anchor. Usage: detect_bench TOOLS_DIR [FIXTURE_ROOTS_DIR] [ITERATIONS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "cyllm/context.h"
#include "cyllm/detect.h"

using namespace cyllm;
using Steady = std::chrono::steady_clock;

namespace {

double median_ms(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double run_process_ms(const PosixCommandRunner& r, const std::vector<std::string>& argv) {
  auto t0 = Steady::now();
  auto out = r.run(argv, std::chrono::seconds(30));
  auto ms = std::chrono::duration<double, std::milli>(Steady::now() - t0).count();
  if (!out.ok() || out->exit_code != 0) {
    std::fprintf(stderr, "bench: %s failed\n", argv[0].c_str());
    return -1;
  }
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s TOOLS_DIR [FIXTURE_ROOTS_DIR] [ITERATIONS]\n", argv[0]);
    return 2;
  }
  const std::string tools = argv[1];
  const std::string roots = argc > 2 ? argv[2] : "";
  const int n = argc > 3 ? std::max(1, std::atoi(argv[3])) : 50;
  PosixCommandRunner runner;
  SystemClock clock;
  NullLogger log;

  std::printf("%-34s %10s %10s %8s\n", "case", "median_ms", "anchor_ms", "ratio");
  // 1. In-process detection of this host.
  {
    RootedFilesystem fs("/");
    Context ctx{fs, runner, clock, log, nullptr};
    detect::DetectOptions o;
    std::vector<double> t;
    for (int i = 0; i < n; ++i) {
      auto t0 = Steady::now();
      auto p = detect::detect_hardware(ctx, o);
      t.push_back(std::chrono::duration<double, std::milli>(Steady::now() - t0).count());
    }
    std::printf("%-34s %10.3f %10s %8s\n", "detect_hardware(host)", median_ms(t), "-", "-");
  }
  // 2. The whole tool against lscpu, both as processes.
  {
    std::vector<double> ours, anchor;
    for (int i = 0; i < n; ++i) {
      ours.push_back(run_process_ms(runner, {tools + "/cy-llm-detect"}));
      anchor.push_back(run_process_ms(runner, {"/usr/bin/lscpu"}));
    }
    double a = median_ms(anchor), o = median_ms(ours);
    std::printf("%-34s %10.3f %10.3f %7.2fx\n", "cy-llm-detect vs lscpu", o, a, a > 0 ? o / a : 0);
  }
  // 3. Fixture hosts in process (vendor tools are shell scripts: includes their start-up).
  if (!roots.empty()) {
    for (const auto& e : std::filesystem::directory_iterator(roots)) {
      if (e.path().filename() == "broken") continue;  // its nvidia-smi hangs by design
      RootedFilesystem fs(e.path().string());
      Context ctx{fs, runner, clock, log, nullptr};
      detect::DetectOptions o;
      std::vector<double> t;
      for (int i = 0; i < std::max(1, n / 5); ++i) {
        auto t0 = Steady::now();
        auto p = detect::detect_hardware(ctx, o);
        t.push_back(std::chrono::duration<double, std::milli>(Steady::now() - t0).count());
      }
      std::printf("%-34s %10.3f %10s %8s\n", ("fixture " + e.path().filename().string()).c_str(),
                  median_ms(t), "-", "-");
    }
  }
  std::printf("(ratio = cy-llm-detect / lscpu; lower is faster; median of %d runs)\n", n);
  return 0;
}
