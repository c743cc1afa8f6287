// Writer: what it writes parses back to the same metadata and tensor bytes (v3, aligned,
// every quantizable type), keys set twice keep their first position, and write() is
// atomic (a temp file renamed into place).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "cyllm/gguf.h"
#include "test_support.h"

using namespace cyllm::gguf;

TEST_CASE("writer -> parse round-trips tensors of every quantizable type") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  const TensorType types[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q4_0,
                              TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0,
                              TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};
  Writer w(64);
  std::vector<std::vector<float>> values;
  for (TensorType t : types) {
    std::vector<float> v(256 * 3);
    for (float& x : v) x = u(rng);
    w.add_tensor(std::string("t.") + std::string(traits(t).name), {256, 3}, t, v);
    values.push_back(std::move(v));
  }
  const auto bytes = w.bytes();
  CHECK(bytes == w.bytes());  // deterministic
  auto f = File::parse(bytes);
  REQUIRE_MESSAGE(f.ok(), f.error().to_string());
  CHECK(f->version() == 3);
  CHECK(f->alignment() == 64);
  REQUIRE(f->tensors().size() == std::size(types));
  for (std::size_t i = 0; i < std::size(types); ++i) {
    const TensorType t = types[i];
    CAPTURE(traits(t).name);
    const TensorInfo& info = f->tensors()[i];
    CHECK(info.type == t);
    CHECK(info.offset % 64 == 0);
    CHECK(info.size_bytes == row_bytes(t, 256) * 3);
    // The stored bytes are quantize_row's, row by row.
    std::vector<std::byte> expect(row_bytes(t, 256));
    for (std::uint64_t r = 0; r < 3; ++r) {
      REQUIRE(quantize_row(t, values[i].data() + 256 * r, expect.data(), 256));
      CHECK(std::memcmp(info.data + r * expect.size(), expect.data(), expect.size()) == 0);
    }
    std::vector<float> y(256);
    dequantize_row(t, info.data + 2 * expect.size(), y.data(), 256);
    double worst = 0;
    for (int k = 0; k < 256; ++k) worst = std::max(worst, double(std::fabs(y[k] - values[i][512 + k])));
    CHECK(worst < 0.3);  // q4_0 on [-2, 2] is the coarsest: 2/8
  }
  CHECK(f->find("general.alignment")->as_u64() == 64);
}

TEST_CASE("setting a key twice keeps one entry, in its first position, with the last value") {
  Writer w;
  w.set_u32("a", 1);
  w.set_string("b", "x");
  w.set_f32("a", 2.5f);
  auto f = File::parse(w.bytes());
  REQUIRE(f.ok());
  REQUIRE(f->metadata().size() == 2);
  CHECK(f->metadata()[0].key == "a");
  CHECK(f->metadata()[0].value.type() == ValueType::F32);
  CHECK(*f->get_f64("a") == 2.5);
}

TEST_CASE("add_tensor_raw writes the bytes as given") {
  Writer w;
  std::vector<std::byte> raw(34, std::byte{0});
  raw[0] = std::byte{0x00};
  raw[1] = std::byte{0x3C};  // d = 1
  raw[2] = std::byte{5};
  w.add_tensor_raw("q", {32}, TensorType::Q8_0, raw);
  auto f = File::parse(w.bytes());
  REQUIRE(f.ok());
  float y[32];
  dequantize_row(TensorType::Q8_0, f->tensor("q")->data, y, 32);
  CHECK(y[0] == 5.0f);
  CHECK(y[1] == 0.0f);
}

TEST_CASE("write() replaces the file atomically and leaves no temp file") {
  cyllm::test::TempDir dir;
  const auto path = dir.path() / "out.gguf";
  cyllm::test::write_file(path, "old contents");
  Writer w;
  w.set_string("general.name", "x");
  REQUIRE(w.write(path.string()).ok());
  auto f = File::open(path.string());
  REQUIRE_MESSAGE(f.ok(), f.error().to_string());
  CHECK(*f->get_string("general.name") == "x");
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++n;
  CHECK(n == 1);
  auto bad = w.write((dir.path() / "no" / "such" / "dir.gguf").string());
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code() == cyllm::Errc::Io);
}
