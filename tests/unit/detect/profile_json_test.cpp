#include <doctest/doctest.h>

#include "cyllm/detect.h"

using namespace cyllm;
using namespace cyllm::detect;

namespace {
HardwareProfile sample() {
  HardwareProfile p;
  p.vendor = "nvidia";
  p.device_name = "NVIDIA A100-SXM4-80GB";
  p.vram_total_bytes = 81920ull << 20;
  p.compute_capability = "8.0";
  p.driver_version = "555.42.02";
  p.device_count = 1;
  p.cpu.model_name = "AMD EPYC 7B12";
  p.cpu.isa = {"avx2", "fma"};
  p.cpu.logical_cores = 96;
  p.cgroup.version = 2;
  p.cgroup.cpu_quota_cores = 4.5;
  p.effective_cpus = 5;
  NvidiaInfo n;
  n.source = "nvml";
  n.driver_version = "555.42.02";
  n.total_gpus = 1;
  NvidiaGpu g;
  g.name = "NVIDIA A100-SXM4-80GB";
  g.uuid = "GPU-31515c3d-1414-7c2c-004a-f86a898946ac";
  g.vram_total_bytes = 81920ull << 20;
  g.vram_free_bytes = 1ull << 30;
  g.compute_capability = "8.0";
  g.mig_enabled = true;
  g.mig_devices.push_back({"MIG-377e0049-554c-540b-93c6-d0976f8426cb", "2g.20gb", 20ull << 30});
  n.gpus.push_back(g);
  p.nvidia = n;
  p.warnings.push_back({"detect.tool_timeout", "nvidia-smi hung"});
  return p;
}
}  // namespace

TEST_CASE("to_json starts with the schema and uses null for unknowns") {
  auto j = to_json(sample());
  CHECK(j.begin().key() == "schema");
  CHECK(j["schema"] == "cy-llm.detect/v1");
  CHECK(j["amd"].is_null());
  CHECK(j["cgroup"]["memory_limit_bytes"].is_null());
  CHECK(j["nvidia"]["gpus"][0]["mig_devices"][0]["name"] == "2g.20gb");
  CHECK(j["nvidia"]["gpus"][0]["pci_bus_id"].is_null());
}

TEST_CASE("profile_from_json(to_json(p)) round-trips") {
  HardwareProfile p = sample();
  auto back = profile_from_json(nlohmann::json::parse(to_json(p).dump()));
  REQUIRE(back.ok());
  CHECK(to_json(*back) == to_json(p));
}

TEST_CASE("profile_from_json checks the schema and types") {
  auto no_schema = profile_from_json(nlohmann::json::parse(R"({"vendor":"cpu"})"));
  REQUIRE_FALSE(no_schema.ok());
  CHECK(no_schema.error().code() == Errc::BadInputSchema);
  CHECK(no_schema.error().message() == "expected \"schema\": \"cy-llm.detect/v1\", found none");
  auto wrong = profile_from_json(nlohmann::json::parse(R"({"schema":"cy-llm.plan/v1"})"));
  CHECK(wrong.error().message() ==
        "expected \"schema\": \"cy-llm.detect/v1\", found \"cy-llm.plan/v1\"");
  auto vendor = profile_from_json(
      nlohmann::json::parse(R"({"schema":"cy-llm.detect/v1","vendor":"intel-gaudi"})"));
  CHECK(vendor.error().message() ==
        "unknown vendor \"intel-gaudi\" (expected nvidia, amd, ascend or cpu)");
  auto type = profile_from_json(
      nlohmann::json::parse(R"({"schema":"cy-llm.detect/v1","vram_total_bytes":"lots"})"));
  CHECK(type.error().message() == "hardware profile: key \"vram_total_bytes\" has the wrong type");
  // Found by fuzz_profile_json: a float far outside the integer's range, and negatives.
  auto huge = profile_from_json(
      nlohmann::json::parse(R"({"schema":"cy-llm.detect/v1","vram_total_bytes":8.502e34})"));
  CHECK(huge.error().message() == "hardware profile: key \"vram_total_bytes\" has the wrong type");
  auto negative = profile_from_json(
      nlohmann::json::parse(R"({"schema":"cy-llm.detect/v1","vram_total_bytes":-1})"));
  CHECK(negative.error().message() == "hardware profile: key \"vram_total_bytes\" is out of range");
  auto big_int = profile_from_json(
      nlohmann::json::parse(R"({"schema":"cy-llm.detect/v1","device_count":4294967296})"));
  CHECK(big_int.error().message() == "hardware profile: key \"device_count\" is out of range");
}

TEST_CASE("to_text shows the devices and warnings") {
  std::string t = to_text(sample());
  CHECK(t.find("NVIDIA A100-SXM4-80GB [MIG]") != std::string::npos);
  CHECK(t.find("detect.tool_timeout: nvidia-smi hung") != std::string::npos);
  CHECK(t.find("80.0 GiB") != std::string::npos);
}
