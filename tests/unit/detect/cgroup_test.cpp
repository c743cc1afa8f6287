#include <doctest/doctest.h>

#include "cyllm/detect.h"
#include "detect/cgroup.h"
#include "test_support.h"

using namespace cyllm;
using namespace cyllm::detect;

TEST_CASE("cgroup file parsers") {
  CHECK(parse_cpu_max("400000 100000\n").value() == doctest::Approx(4.0));
  CHECK(parse_cpu_max("150000 100000").value() == doctest::Approx(1.5));
  CHECK_FALSE(parse_cpu_max("max 100000").value().has_value());
  CHECK_FALSE(parse_cpu_max("lots 100000").ok());
  CHECK_FALSE(parse_cpu_max("100 0").ok());
  CHECK_FALSE(parse_cpu_max("").ok());
  CHECK(parse_memory_limit("34359738368\n").value() == 34359738368ull);
  CHECK_FALSE(parse_memory_limit("max").value().has_value());
  CHECK_FALSE(parse_memory_limit("9223372036854771712").value().has_value());
  CHECK_FALSE(parse_memory_limit("-5").ok());
  CHECK_FALSE(parse_cfs_quota("-1", "100000").value().has_value());
  CHECK(parse_cfs_quota("3200000", "100000").value() == doctest::Approx(32.0));
  CHECK_FALSE(parse_cfs_quota("-7", "100000").ok());
  CHECK_FALSE(parse_cfs_quota("1", "0").ok());
}

TEST_CASE("parse_proc_self_cgroup") {
  auto m = parse_proc_self_cgroup("12:pids:/docker/x\n10:cpu,cpuacct:/docker/x\n0::/\n");
  REQUIRE(m.ok());
  CHECK(m->v2_path == "/");
  REQUIRE(m->v1.size() == 3);
  CHECK(m->v1[1].first == "cpu");
  CHECK(m->v1[2].first == "cpuacct");
  CHECK(m->v1[2].second == "/docker/x");
  CHECK_FALSE(parse_proc_self_cgroup("nonsense\n").ok());
  CHECK_FALSE(parse_proc_self_cgroup("x:cpu:/\n").ok());
}

TEST_CASE("detect_cgroup v2 limits and effective resources") {
  test::FixtureContext fx(test::fixtures_dir() / "roots" / "cpu-cgroup2");
  std::vector<Warning> w;
  CgroupLimits c = detect_cgroup(fx.ctx(), w);
  CHECK(w.empty());
  CHECK(c.version == 2);
  CHECK(c.cpu_quota_cores.value() == doctest::Approx(4.0));
  CHECK(c.cpuset_cpus.value() == 16);
  CHECK(c.memory_limit_bytes.value() == 8ull << 30);
  DetectOptions o;
  o.use_nvml = false;
  HardwareProfile p = detect_hardware(fx.ctx(), o);
  CHECK(p.effective_cpus == 4);
  CHECK(p.effective_memory_bytes == 8ull << 30);
  CHECK(p.vendor == "cpu");
}

TEST_CASE("detect_cgroup v1 walks from the container's cgroup to the root") {
  test::FixtureContext fx(test::fixtures_dir() / "roots" / "a100x8-mig");
  std::vector<Warning> w;
  CgroupLimits c = detect_cgroup(fx.ctx(), w);
  CHECK(w.empty());
  CHECK(c.version == 1);
  CHECK(c.cpu_quota_cores.value() == doctest::Approx(32.0));
  CHECK(c.memory_limit_bytes.value() == 256ull << 30);
  CHECK(c.cpuset_cpus.value() == 96);
}

TEST_CASE("a v2 limit in a parent cgroup applies, the smaller one wins") {
  test::TempDir dir;
  test::write_file(dir.path() / "proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
  test::write_file(dir.path() / "sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
  test::write_file(dir.path() / "sys/fs/cgroup/kubepods/pod1/cpu.max", "200000 100000\n");
  test::write_file(dir.path() / "sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n");
  test::write_file(dir.path() / "sys/fs/cgroup/kubepods/memory.max", "1073741824\n");
  test::write_file(dir.path() / "sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "4294967296\n");
  test::FixtureContext fx(dir.path());
  std::vector<Warning> w;
  CgroupLimits c = detect_cgroup(fx.ctx(), w);
  CHECK(c.cpu_quota_cores.value() == doctest::Approx(2.0));
  CHECK(c.memory_limit_bytes.value() == 1ull << 30);
}

TEST_CASE("garbage in cpu.max is a warning naming the file and value") {
  test::FixtureContext fx(test::fixtures_dir() / "roots" / "broken");
  std::vector<Warning> w;
  CgroupLimits c = detect_cgroup(fx.ctx(), w);
  CHECK_FALSE(c.cpu_quota_cores);
  REQUIRE(w.size() == 1);
  CHECK(w[0].message == "bad cpu.max \"lots 100000\" (while reading /sys/fs/cgroup/cpu.max)");
}

TEST_CASE("no /proc/self/cgroup means no limits") {
  test::FixtureContext fx(test::fixtures_dir() / "roots" / "ascend910b-x8");
  std::vector<Warning> w;
  CgroupLimits c = detect_cgroup(fx.ctx(), w);
  CHECK(c.version == 0);
  CHECK(w.empty());
}
