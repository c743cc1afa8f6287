#include <doctest/doctest.h>

#include "cyllm/wheel.h"

using namespace cyllm;
using namespace cyllm::wheel;

TEST_CASE("real wheel filenames parse with their tag sets expanded") {
  struct Case {
    const char* name;
    const char* dist;
    const char* version;
    std::size_t n_tags;
    const char* first_tag;
  };
  const Case cases[] = {
      {"vllm-0.12.0-cp38-abi3-manylinux_2_31_x86_64.whl", "vllm", "0.12.0", 1, "cp38-abi3-manylinux_2_31_x86_64"},
      {"vllm-0.10.1.1+cu126-cp38-abi3-manylinux1_x86_64.whl", "vllm", "0.10.1.1+cu126", 1, "cp38-abi3-manylinux1_x86_64"},
      {"torch-2.4.0+cu121-cp310-cp310-linux_x86_64.whl", "torch", "2.4.0+cu121", 1, "cp310-cp310-linux_x86_64"},
      {"torch-2.9.0-cp312-cp312-manylinux_2_28_x86_64.whl", "torch", "2.9.0", 1, "cp312-cp312-manylinux_2_28_x86_64"},
      {"protobuf-5.29.3-cp38-abi3-manylinux2014_x86_64.whl", "protobuf", "5.29.3", 1, "cp38-abi3-manylinux2014_x86_64"},
      {"six-1.16.0-py2.py3-none-any.whl", "six", "1.16.0", 2, "py2-none-any"},
      {"numpy-2.1.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "numpy", "2.1.3", 2, "cp312-cp312-manylinux_2_17_x86_64"},
      {"torch_npu-2.5.1.post1-cp310-cp310-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", "torch_npu", "2.5.1.post1", 2, "cp310-cp310-manylinux_2_17_aarch64"},
      {"tensorrt_llm-0.20.0-cp312-cp312-linux_x86_64.whl", "tensorrt_llm", "0.20.0", 1, "cp312-cp312-linux_x86_64"},
      {"pkg-1.0-1-py3-none-any.whl", "pkg", "1.0", 1, "py3-none-any"},
      {"pkg-1.0-2b-py3-none-any.whl", "pkg", "1.0", 1, "py3-none-any"},
      {"Pkg.Name-1!2.0rc1-py3-none-any.whl", "Pkg.Name", "1!2.0rc1", 1, "py3-none-any"},
      {"grpcio_tools-1.68.1-cp311-cp311-manylinux_2_17_aarch64.whl", "grpcio_tools", "1.68.1", 1, "cp311-cp311-manylinux_2_17_aarch64"},
      {"x-1-py2.py3-none-macosx_10_9_x86_64.macosx_11_0_arm64.whl", "x", "1", 4, "py2-none-macosx_10_9_x86_64"},
      {"win-1.0-CP311-CP311-WIN_AMD64.whl", "win", "1.0", 1, "cp311-cp311-win_amd64"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto w = parse_wheel_filename(c.name);
    REQUIRE(w.ok());
    CHECK(w->distribution == c.dist);
    CHECK(w->version == c.version);
    REQUIRE(w->tags.size() == c.n_tags);
    CHECK(w->tags[0].to_string() == c.first_tag);
  }
  auto b = parse_wheel_filename("pkg-1.0-2b-py3-none-any.whl");
  REQUIRE(b->build);
  CHECK(b->build->first == 2);
  CHECK(b->build->second == "b");
}

TEST_CASE("malformed wheel filenames are refused with the reason") {
  struct Case {
    const char* name;
    const char* why;
  };
  const Case cases[] = {
      {"vllm-0.12.0.tar.gz", "it does not end in \".whl\""},
      {"vllm-0.12.0-py3-none.whl", "expected 5 or 6 '-'-separated fields, found 4"},
      {"a-b-c-d-e-f-g.whl", "expected 5 or 6 '-'-separated fields, found 7"},
      {"pkg-1.0-x1-py3-none-any.whl", "build tag \"x1\" must start with a digit"},
      {"-1.0-py3-none-any.whl", "bad distribution name \"\""},
      {"pkg-1.0-py3-none-.whl", "bad tag field \"\""},
      {"pkg-1.0-py3..py2-none-any.whl", "empty tag in \"py3..py2\""},
      {"../../etc/passwd-1-py3-none-any.whl", "it contains a path separator"},
      {"pkg-1 0-py3-none-any.whl", "bad version \"1 0\""},
      {"pkg-1.0-py3-none-any$.whl", "bad tag field \"any$\""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto w = parse_wheel_filename(c.name);
    REQUIRE_FALSE(w.ok());
    CHECK(w.error().code() == Errc::BadWheelFilename);
    CHECK(w.error().message() == "\"" + std::string(c.name) + "\" is not a valid wheel filename: " + c.why);
  }
}
