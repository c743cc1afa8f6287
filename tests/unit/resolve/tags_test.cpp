#include <doctest/doctest.h>

#include <algorithm>

#include "cyllm/wheel.h"

using namespace cyllm::wheel;

namespace {
TargetEnvironment target(int minor, const char* arch, int glibc_minor) {
  TargetEnvironment t;
  t.python_minor = minor;
  t.architecture = arch;
  t.glibc_minor = glibc_minor;
  return t;
}
bool fits(const char* filename, const TargetEnvironment& t) {
  auto w = parse_wheel_filename(filename);
  REQUIRE(w.ok());
  return wheel_rank(*w, supported_tags(t)).has_value();
}
}  // namespace

TEST_CASE("supported_tags order: exact ABI, abi3, none, older abi3, pure python") {
  auto tags = supported_tags(target(12, "x86_64", 28));
  REQUIRE_FALSE(tags.empty());
  CHECK(tags.front().to_string() == "cp312-cp312-manylinux_2_28_x86_64");
  CHECK(tags.back().to_string() == "py30-none-any");
  auto pos = [&](const char* s) {
    auto it = std::find_if(tags.begin(), tags.end(), [&](const Tag& t) { return t.to_string() == s; });
    REQUIRE_MESSAGE(it != tags.end(), s);
    return it - tags.begin();
  };
  CHECK(pos("cp312-cp312-manylinux_2_28_x86_64") < pos("cp312-cp312-manylinux_2_17_x86_64"));
  CHECK(pos("cp312-cp312-manylinux_2_17_x86_64") < pos("cp312-cp312-manylinux2014_x86_64"));
  CHECK(pos("cp312-cp312-manylinux1_x86_64") < pos("cp312-cp312-linux_x86_64"));
  CHECK(pos("cp312-cp312-linux_x86_64") < pos("cp312-abi3-manylinux_2_28_x86_64"));
  CHECK(pos("cp312-abi3-linux_x86_64") < pos("cp312-none-manylinux_2_28_x86_64"));
  CHECK(pos("cp311-abi3-manylinux_2_28_x86_64") < pos("cp38-abi3-manylinux_2_28_x86_64"));
  CHECK(pos("cp32-abi3-linux_x86_64") < pos("py312-none-manylinux_2_28_x86_64"));
  CHECK(pos("py3-none-linux_x86_64") < pos("cp312-none-any"));
  CHECK(pos("cp312-none-any") < pos("py312-none-any"));
  CHECK(pos("py312-none-any") < pos("py3-none-any"));
  CHECK(pos("py3-none-any") < pos("py311-none-any"));
  // No tags for levels above the target's glibc or below the architecture's floor.
  auto none = [&](const char* s) {
    return std::none_of(tags.begin(), tags.end(), [&](const Tag& t) { return t.to_string() == s; });
  };
  CHECK(none("cp312-cp312-manylinux_2_29_x86_64"));
  CHECK(none("cp312-cp312-manylinux_2_4_x86_64"));
  CHECK(none("cp313-cp313-manylinux_2_28_x86_64"));
  CHECK(none("cp312-abi3-manylinux_2_28_aarch64"));
  auto arm = supported_tags(target(11, "aarch64", 31));
  CHECK(std::none_of(arm.begin(), arm.end(), [](const Tag& t) { return t.platform == "manylinux_2_16_aarch64"; }));
  CHECK(std::none_of(arm.begin(), arm.end(), [](const Tag& t) { return t.platform == "manylinux2010_aarch64"; }));
  CHECK(std::any_of(arm.begin(), arm.end(), [](const Tag& t) { return t.platform == "manylinux2014_aarch64"; }));
}

TEST_CASE("wheel compatibility table over targets") {
  struct Case {
    const char* wheel;
    int py_minor;
    const char* arch;
    int glibc_minor;
    bool ok;
  };
  // Each row: would pip on that target accept the wheel?
  const Case cases[] = {
      {"vllm-0.12.0-cp38-abi3-manylinux_2_31_x86_64.whl", 12, "x86_64", 35, true},
      {"vllm-0.12.0-cp38-abi3-manylinux_2_31_x86_64.whl", 8, "x86_64", 35, true},
      {"vllm-0.12.0-cp38-abi3-manylinux_2_31_x86_64.whl", 12, "x86_64", 28, false},
      {"vllm-0.12.0-cp38-abi3-manylinux_2_31_x86_64.whl", 12, "aarch64", 35, false},
      {"vllm-0.12.0-cp38-abi3-manylinux_2_31_x86_64.whl", 7, "x86_64", 35, false},
      {"torch-2.4.0+cu121-cp310-cp310-linux_x86_64.whl", 10, "x86_64", 17, true},
      {"torch-2.4.0+cu121-cp310-cp310-linux_x86_64.whl", 11, "x86_64", 35, false},
      {"torch-2.4.0+cu121-cp310-cp310-linux_x86_64.whl", 10, "aarch64", 35, false},
      {"numpy-2.1.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", 12, "x86_64", 17, true},
      {"numpy-2.1.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", 12, "x86_64", 12, false},
      {"numpy-2.1.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", 13, "x86_64", 35, false},
      {"x-1-cp39-cp39-manylinux2010_x86_64.whl", 9, "x86_64", 12, true},
      {"x-1-cp39-cp39-manylinux2010_x86_64.whl", 9, "x86_64", 11, false},
      {"x-1-cp39-cp39-manylinux1_x86_64.whl", 9, "x86_64", 5, true},
      {"x-1-cp39-cp39-manylinux1_x86_64.whl", 9, "aarch64", 35, false},
      {"x-1-cp39-cp39-manylinux2014_aarch64.whl", 9, "aarch64", 17, true},
      {"x-1-cp39-cp39-manylinux2014_aarch64.whl", 9, "aarch64", 35, true},
      {"six-1.16.0-py2.py3-none-any.whl", 12, "x86_64", 35, true},
      {"six-1.16.0-py2.py3-none-any.whl", 8, "aarch64", 17, true},
      {"x-1-py2-none-any.whl", 12, "x86_64", 35, false},
      {"x-1-py312-none-any.whl", 12, "x86_64", 35, true},
      {"x-1-py311-none-any.whl", 12, "x86_64", 35, true},
      {"x-1-py313-none-any.whl", 12, "x86_64", 35, false},
      {"x-1-cp312-none-any.whl", 12, "x86_64", 35, true},
      {"x-1-cp311-none-any.whl", 12, "x86_64", 35, false},
      {"x-1-cp311-abi3-linux_x86_64.whl", 12, "x86_64", 35, true},
      {"x-1-cp313-abi3-linux_x86_64.whl", 12, "x86_64", 35, false},
      {"x-1-cp312-cp312m-linux_x86_64.whl", 12, "x86_64", 35, false},
      {"x-1-py3-none-win_amd64.whl", 12, "x86_64", 35, false},
      {"x-1-py3-none-macosx_11_0_arm64.whl", 12, "aarch64", 35, false},
      {"x-1-py3-none-linux_x86_64.whl", 12, "x86_64", 35, true},
      {"x-1-cp312-cp312-musllinux_1_2_x86_64.whl", 12, "x86_64", 35, false},
  };
  int n = 0;
  for (const auto& c : cases) {
    CAPTURE(c.wheel);
    CAPTURE(c.py_minor);
    CAPTURE(c.arch);
    CAPTURE(c.glibc_minor);
    CHECK(fits(c.wheel, target(c.py_minor, c.arch, c.glibc_minor)) == c.ok);
    ++n;
  }
  // Every manylinux_2_N wheel against every glibc 2.M target: fits iff N <= M.
  for (int n_level = 5; n_level <= 40; ++n_level) {
    for (int m = 5; m <= 40; ++m) {
      std::string name = "x-1-cp311-cp311-manylinux_2_" + std::to_string(n_level) + "_x86_64.whl";
      CHECK(fits(name.c_str(), target(11, "x86_64", m)) == (n_level <= m));
      ++n;
    }
  }
  MESSAGE("wheel compatibility cases checked: " << n);
}

TEST_CASE("explain_incompatibility names the nearest reason") {
  auto why = [](const char* wheel, const TargetEnvironment& t) {
    return explain_incompatibility(parse_wheel_filename(wheel).value(), t);
  };
  CHECK(why("vllm-0.12.0-cp38-abi3-manylinux_2_31_x86_64.whl", target(12, "x86_64", 28)) ==
        "needs glibc >= 2.31 (manylinux_2_31_x86_64); the target has glibc 2.28");
  CHECK(why("vllm-0.12.0-cp38-abi3-manylinux_2_31_x86_64.whl", target(12, "aarch64", 35)) ==
        "is built for x86_64; the target is aarch64");
  CHECK(why("torch-2.4.0-cp310-cp310-linux_x86_64.whl", target(12, "x86_64", 35)) ==
        "is for CPython 3.10; the target is CPython 3.12");
  CHECK(why("x-1-py3-none-win_amd64.whl", target(12, "x86_64", 35)) ==
        "is built for win_amd64; the target is Linux x86_64");
  CHECK(why("x-1-cp313-abi3-linux_x86_64.whl", target(12, "x86_64", 35)) ==
        "is for CPython 3.13 or newer; the target is CPython 3.12");
}
