#include <doctest/doctest.h>

#include <algorithm>

#include "cyllm/detect.h"
#include "detect/cpu.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::detect;

namespace {
bool has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}
}  // namespace

TEST_CASE("parse_cpuinfo counts cores by (physical id, core id)") {
  const char* text =
      "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon X\nphysical id\t: 0\n"
      "core id\t\t: 0\nflags\t\t: fpu sse4_2 avx avx2 avx512f amx_tile\n\n"
      "processor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon X\nphysical id\t: 0\n"
      "core id\t\t: 0\nflags\t\t: fpu\n\n"
      "processor\t: 2\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon X\nphysical id\t: 1\n"
      "core id\t\t: 0\nflags\t\t: fpu\n";
  auto s = parse_cpuinfo(text);
  REQUIRE(s.ok());
  CHECK(s->logical_cpus == 3);
  CHECK(s->physical_cores == 2);
  CHECK(s->sockets == 2);
  CHECK(s->vendor == "GenuineIntel");
  CHECK(s->model_name == "Xeon X");
  CHECK(s->architecture == "x86_64");
  auto isa = canonical_isa(s->raw_flags, s->architecture);
  CHECK(isa == std::vector<std::string>{"amx_tile", "avx", "avx2", "avx512f", "sse4.2"});
}

TEST_CASE("parse_cpuinfo on arm64 names the core from implementer and part") {
  const char* text =
      "processor\t: 0\nBogoMIPS\t: 200.00\nFeatures\t: fp asimd asimddp sve\n"
      "CPU implementer\t: 0x48\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd01\n";
  auto s = parse_cpuinfo(text);
  REQUIRE(s.ok());
  CHECK(s->architecture == "aarch64");
  CHECK(s->vendor == "HiSilicon");
  CHECK(s->model_name == "Kunpeng-920");
  CHECK(s->physical_cores == 0);  // no topology in arm64 cpuinfo: sysfs decides
  CHECK(canonical_isa(s->raw_flags, "aarch64") == std::vector<std::string>{"dotprod", "neon", "sve"});
}

TEST_CASE("parse_cpuinfo refuses text without processors") {
  auto s = parse_cpuinfo("garbage\n\x01\x02");
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code() == Errc::BadSysfs);
}

TEST_CASE("parse_meminfo") {
  auto m = parse_meminfo("MemTotal:       131891672 kB\nMemFree:  100 kB\nMemAvailable:   120000000 kB\n");
  REQUIRE(m.ok());
  CHECK(m->total_bytes == 131891672ull * 1024);
  CHECK(m->available_bytes == 120000000ull * 1024);
  // Old kernels: no MemAvailable -> free + buffers + cached.
  auto old = parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 1 kB\n");
  REQUIRE(old.ok());
  CHECK(old->available_bytes == 111u * 1024);
  auto bad = parse_meminfo("MemTotal:       16x8 kB\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message() == "bad /proc/meminfo line \"MemTotal:       16x8 kB\"");
  CHECK_FALSE(parse_meminfo("MemFree: 1 kB\n").ok());
}

TEST_CASE("detect_cpu on fixture roots") {
  auto roots = test::fixtures_dir() / "roots";
  SUBCASE("Sapphire Rapids container") {
    test::FixtureContext fx(roots / "cpu-cgroup2");
    std::vector<Warning> w;
    CpuInfo c = detect_cpu(fx.ctx(), w);
    CHECK(w.empty());
    CHECK(c.model_name == "Intel(R) Xeon(R) Platinum 8480+");
    CHECK(c.isa_source == "/proc/cpuinfo");
    CHECK(c.logical_cores == 16);
    CHECK(c.physical_cores == 8);
    CHECK(c.numa_nodes == 1);
    CHECK(c.memory_total_bytes == 65536000ull * 1024);
    CHECK(has(c.isa, "amx_int8"));
    CHECK(has(c.isa, "avx512_bf16"));
  }
  SUBCASE("memory-only NUMA nodes do not count") {
    test::FixtureContext fx(roots / "mi300x");
    std::vector<Warning> w;
    CpuInfo c = detect_cpu(fx.ctx(), w);
    CHECK(c.numa_nodes == 2);
    CHECK(c.sockets == 2);
    CHECK(c.physical_cores == 96);
    CHECK_FALSE(has(c.isa, "amx_tile"));
    CHECK(has(c.isa, "avx512f"));
  }
  SUBCASE("aarch64 topology from sysfs") {
    test::FixtureContext fx(roots / "ascend910b-x8");
    std::vector<Warning> w;
    CpuInfo c = detect_cpu(fx.ctx(), w);
    CHECK(w.empty());
    CHECK(c.architecture == "aarch64");
    CHECK(c.logical_cores == 192);
    CHECK(c.physical_cores == 192);
    CHECK(c.sockets == 4);
    CHECK(c.numa_nodes == 8);
    CHECK(has(c.isa, "neon"));
  }
  SUBCASE("garbled meminfo is a warning, not a failure") {
    test::FixtureContext fx(roots / "broken");
    std::vector<Warning> w;
    CpuInfo c = detect_cpu(fx.ctx(), w);
    CHECK(c.logical_cores == 4);
    CHECK(c.memory_total_bytes == 0);
    REQUIRE(w.size() == 1);
    CHECK(w[0].code == "detect.bad_sysfs");
  }
}

TEST_CASE("detect_cpu on this machine uses cpuid") {
  test::HostContext host;
  const Context& ctx = host.ctx();
  const RootedFilesystem& fs = host.fs();
  std::vector<Warning> w;
  CpuInfo c = detect_cpu(ctx, w);
  CHECK(c.logical_cores >= 1);
  CHECK(c.memory_total_bytes > 0);
#if defined(__x86_64__)
  CHECK(c.isa_source == "cpuid");
  CHECK(c.architecture == "x86_64");
  CHECK(has(c.isa, "sse4.2"));
  // cpuid and the kernel agree on what the kernel lets us use.
  auto text = fs.read_file("/proc/cpuinfo");
  REQUIRE(text.ok());
  auto s = parse_cpuinfo(*text);
  REQUIRE(s.ok());
  for (const auto& f : {"avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"})
    CHECK_MESSAGE(has(canonical_isa(s->raw_flags, "x86_64"), f) == has(c.isa, f), f);
#endif
}
