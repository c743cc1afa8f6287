#include "detect/visible_devices.h"

#include <doctest/doctest.h>

namespace cyllm::detect {
namespace {

// The a100x8-mig host: GPU 3 carries two MIG slices.
std::vector<VisibleCandidate> a100x8() {
  const char* uuids[] = {
      "GPU-31515c3d-1414-7c2c-004a-f86a898946ac", "GPU-9c8f2a4e-5b71-3d06-e2a9-71c04f3b8d12",
      "GPU-e4d1b7a0-2c63-8f95-1a7e-b5c9d30f6e48", "GPU-5a27c9e3-8d14-4b6f-93a2-0e7f1c68d5b9",
      "GPU-b06e3f81-7a29-c54d-d8e1-4f92a6c0b37e", "GPU-2f9d6c14-e3b8-05a7-6c4f-8b1e72d9a360",
      "GPU-d7a4e092-41c6-9b3f-fe58-26a0c8d1e79b", "GPU-68c31f5b-b9e2-7d40-a5c7-93f4e0b2186d"};
  std::vector<VisibleCandidate> out;
  for (int i = 0; i < 8; ++i) out.push_back({i, uuids[i], {}});
  out[3].sub_uuids = {"MIG-1f8b2c6d-93e0-5a74-b1d8-6c2e9f04a3b7",
                      "MIG-a3e07d94-2b5c-5f18-8e6a-d40c7b13f925"};
  return out;
}

std::vector<int> indices(const std::vector<VisibleMatch>& ms) {
  std::vector<int> out;
  for (const auto& m : ms) out.push_back(m.index);
  return out;
}

const char* kVar = "CUDA_VISIBLE_DEVICES";

}  // namespace

TEST_CASE("an empty list hides every device without a warning") {
  std::vector<Warning> w;
  CHECK(select_visible_devices("", a100x8(), w, kVar).empty());
  CHECK(select_visible_devices("  ", a100x8(), w, kVar).empty());
  CHECK(w.empty());
}

TEST_CASE("indices select devices in the order the list gives them") {
  std::vector<Warning> w;
  CHECK(indices(select_visible_devices("0,2", a100x8(), w, kVar)) == std::vector<int>{0, 2});
  CHECK(indices(select_visible_devices("5,1,7", a100x8(), w, kVar)) == std::vector<int>{5, 1, 7});
  CHECK(indices(select_visible_devices(" 4 ,\t6 ", a100x8(), w, kVar)) == std::vector<int>{4, 6});
  CHECK(w.empty());
}

TEST_CASE("indices match VisibleCandidate::index, not the position in the list") {
  std::vector<VisibleCandidate> sparse = {{2, "", {}}, {5, "", {}}};
  std::vector<Warning> w;
  CHECK(select_visible("5,2", sparse, w, "ASCEND_RT_VISIBLE_DEVICES") == std::vector<int>{5, 2});
  CHECK(w.empty());
  CHECK(select_visible("0", sparse, w, "ASCEND_RT_VISIBLE_DEVICES").empty());
  REQUIRE(w.size() == 1);
  CHECK(w[0].message ==
        "ASCEND_RT_VISIBLE_DEVICES entry \"0\" matches no device index (2 present); it is "
        "ignored");
}

TEST_CASE("an invalid entry ends the list, as the CUDA runtime does") {
  std::vector<Warning> w;
  CHECK(indices(select_visible_devices("0,9,1", a100x8(), w, kVar)) == std::vector<int>{0});
  REQUIRE(w.size() == 1);
  CHECK(w[0].code == "detect.bad_visible_devices");
  CHECK(w[0].message ==
        "CUDA_VISIBLE_DEVICES entry \"9\" matches no device index (8 present); it and the "
        "entries after it (\"1\") are ignored");

  w.clear();
  CHECK(select_visible_devices("-1,0", a100x8(), w, kVar).empty());
  REQUIRE(w.size() == 1);
  CHECK(w[0].message ==
        "CUDA_VISIBLE_DEVICES entry \"-1\" matches no device UUID; it and the entries after it "
        "(\"0\") are ignored");

  w.clear();
  CHECK(indices(select_visible_devices("1,,2", a100x8(), w, kVar)) == std::vector<int>{1});
  REQUIRE(w.size() == 1);
  CHECK(w[0].message ==
        "CUDA_VISIBLE_DEVICES entry \"\" is empty; it and the entries after it (\"2\") are "
        "ignored");

  w.clear();
  CHECK(indices(select_visible_devices("3,99999999999999999999", a100x8(), w, kVar)) ==
        std::vector<int>{3});
  CHECK(w.size() == 1);
}

TEST_CASE("full UUIDs and unique UUID prefixes select by UUID") {
  std::vector<Warning> w;
  CHECK(indices(select_visible_devices("GPU-68c31f5b-b9e2-7d40-a5c7-93f4e0b2186d,GPU-3151",
                                       a100x8(), w, kVar)) == std::vector<int>{7, 0});
  CHECK(indices(select_visible_devices("gpu-B06E", a100x8(), w, kVar)) == std::vector<int>{4});
  CHECK(w.empty());
}

TEST_CASE("an ambiguous prefix is invalid") {
  std::vector<Warning> w;
  CHECK(select_visible_devices("GPU-", a100x8(), w, kVar).empty());
  REQUIRE(w.size() == 1);
  CHECK(w[0].message ==
        "CUDA_VISIBLE_DEVICES entry \"GPU-\" is ambiguous (a prefix of 8 UUIDs); it is ignored");
}

TEST_CASE("a MIG UUID selects its parent with that slice only") {
  std::vector<Warning> w;
  auto ms = select_visible_devices("MIG-a3e0,1", a100x8(), w, kVar);
  REQUIRE(ms.size() == 2);
  CHECK(ms[0] == VisibleMatch{3, "MIG-a3e07d94-2b5c-5f18-8e6a-d40c7b13f925"});
  CHECK(ms[1] == VisibleMatch{1, ""});
  CHECK(w.empty());
  // The index-only convenience reports the parent once.
  CHECK(select_visible("MIG-a3e0,MIG-1f8b,3", a100x8(), w, kVar) == std::vector<int>{3});
  CHECK(w.empty());
}

TEST_CASE("a repeated device is ignored with a warning and the list goes on") {
  std::vector<Warning> w;
  CHECK(indices(select_visible_devices("1,GPU-9c8f,2", a100x8(), w, kVar)) ==
        std::vector<int>{1, 2});
  REQUIRE(w.size() == 1);
  CHECK(w[0].message ==
        "CUDA_VISIBLE_DEVICES names the same device twice (entry \"GPU-9c8f\"); the repeat is "
        "ignored");
}

TEST_CASE("devices without UUIDs match only by index") {
  std::vector<VisibleCandidate> npus = {{0, "", {}}, {1, "", {}}};
  std::vector<Warning> w;
  CHECK(select_visible("1,GPU-0", npus, w, "ASCEND_RT_VISIBLE_DEVICES") == std::vector<int>{1});
  REQUIRE(w.size() == 1);
  CHECK(w[0].message ==
        "ASCEND_RT_VISIBLE_DEVICES entry \"GPU-0\" matches no device UUID; it is ignored");
}

TEST_CASE("no devices at all") {
  std::vector<Warning> w;
  CHECK(select_visible("0", {}, w, kVar).empty());
  CHECK(w.size() == 1);
}

}  // namespace cyllm::detect
