// The decoders against llama.cpp: the shared tiny-llama models were quantized by
// llama.cpp from tiny-llama-f16.gguf, so dequantizing every tensor of each must land
// within that format's error of the same f16 tensor. A wrong bit layout (a swapped
// nibble, a misread 6-bit scale) shows up here as errors the size of the weights.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "cyllm/gguf.h"
#include "test_support.h"

using namespace cyllm::gguf;

namespace {

std::vector<float> dequantize_tensor(const TensorInfo& t) {
  std::vector<float> out(t.n_elements());
  const std::uint64_t rb = row_bytes(t.type, t.ne[0]);
  for (std::uint64_t r = 0; r < t.n_rows(); ++r)
    dequantize_row(t.type, t.data + r * rb, out.data() + r * t.ne[0], static_cast<std::int64_t>(t.ne[0]));
  return out;
}

File open_model(const std::string& name) {
  auto f = File::open((cyllm::test::testdata_dir() / "models" / ("tiny-llama-" + name + ".gguf")).string());
  REQUIRE_MESSAGE(f.ok(), f.error().to_string());
  return std::move(f).value();
}

}  // namespace

TEST_CASE("every tensor of the quantized tiny-llamas matches the f16 original") {
  const File ref = open_model("f16");
  std::map<std::string, std::vector<float>> ref_values;
  for (const TensorInfo& t : ref.tensors()) ref_values[std::string(t.name)] = dequantize_tensor(t);

  // Per type: the worst |error| relative to the largest |weight| of its block, and the
  // mean |error| relative to the mean |weight|, over all tensors of that type.
  struct Bound {
    double max_rel, mean_rel;
  };
  const std::map<TensorType, Bound> bounds = {
      {TensorType::F32, {0, 0}},          {TensorType::F16, {0, 0}},
      {TensorType::Q8_0, {0.0045, 0.01}}, {TensorType::Q4_0, {0.13, 0.12}},
      {TensorType::Q4_1, {0.07, 0.12}},   {TensorType::Q5_0, {0.07, 0.06}},
      {TensorType::Q5_1, {0.035, 0.06}},  {TensorType::Q4_K, {0.15, 0.1}},
      {TensorType::Q5_K, {0.06, 0.06}},   {TensorType::Q6_K, {0.03, 0.03}},
  };

  for (const char* name : {"q8_0", "q4_0", "q6_k", "q4_k_m"}) {
    const File f = open_model(name);
    struct Acc {
      double worst = 0, sum_err = 0, sum_abs = 0;
      int tensors = 0;
    };
    std::map<TensorType, Acc> acc;
    for (const TensorInfo& t : f.tensors()) {
      CAPTURE(name);
      CAPTURE(t.name);
      const TensorInfo* r = ref.tensor(t.name);
      REQUIRE(r != nullptr);
      REQUIRE(r->ne == t.ne);
      REQUIRE(traits(t.type).computable);
      const std::vector<float> got = dequantize_tensor(t);
      const std::vector<float>& want = ref_values[std::string(t.name)];
      const std::size_t block = std::max<std::size_t>(traits(t.type).block_elems, 32);
      Acc& a = acc[t.type];
      ++a.tensors;
      for (std::size_t b0 = 0; b0 < want.size(); b0 += block) {
        double amax = 0;
        for (std::size_t i = b0; i < b0 + block && i < want.size(); ++i) amax = std::max(amax, std::fabs(double(want[i])));
        for (std::size_t i = b0; i < b0 + block && i < want.size(); ++i) {
          const double e = std::fabs(double(got[i]) - double(want[i]));
          if (amax > 0) a.worst = std::max(a.worst, e / amax);
          a.sum_err += e;
          a.sum_abs += std::fabs(double(want[i]));
        }
      }
    }
    for (const auto& entry : acc) {
      const auto type = entry.first;  // not a structured binding: clang 14 cannot capture those
      const auto& a = entry.second;
      CAPTURE(name);
      CAPTURE(traits(type).name);
      const double mean_rel = a.sum_abs > 0 ? a.sum_err / a.sum_abs : 0;
      MESSAGE(std::string(name) << " " << traits(type).name << " (" << a.tensors << " tensors): max err/block max "
                   << a.worst << ", mean err/mean |w| " << mean_rel);
      REQUIRE(bounds.count(type) == 1);
      CHECK(a.worst <= bounds.at(type).max_rel);
      CHECK(mean_rel <= bounds.at(type).mean_rel);
    }
  }
}
