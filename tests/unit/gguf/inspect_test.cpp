// inspect_json: a small written file against its golden document
// (tests/fixtures/gguf/inspect/small.json; CYLLM_UPDATE_GOLDENS=1 rewrites it), the
// summary of long arrays, invalid UTF-8, and the totals of a real model.
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "cyllm/gguf.h"
#include "test_support.h"

using namespace cyllm::gguf;

namespace {

Writer small_writer() {
  Writer w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_u64("big", 1ull << 40);
  w.set_i32("neg", -3);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_i32s("short", {1, -2, 3});
  w.set_f32s("scores", {0.1f, -0.25f});
  std::vector<std::string> tokens;
  for (int i = 0; i < 20; ++i) tokens.push_back("tok" + std::to_string(i));
  tokens[1] = "bad\xff" "byte";
  w.set_strings("tokenizer.ggml.tokens", tokens);
  std::vector<float> v(256 * 2, 0.5f);
  w.add_tensor("token_embd.weight", {256, 2}, TensorType::Q4_K, v);
  w.add_tensor("output_norm.weight", {256}, TensorType::F32, std::span<const float>(v).first(256));
  w.add_tensor("x", {32}, TensorType::Q8_0,
               std::span<const float>(v).first(32));
  return w;
}

}  // namespace

TEST_CASE("inspect_json of a small file matches its golden") {
  auto f = File::parse(small_writer().bytes());
  REQUIRE_MESSAGE(f.ok(), f.error().to_string());
  const auto j = inspect_json(*f);
  const std::string got = j.dump(2) + "\n";  // must not throw (strings are valid UTF-8)
  const auto golden = cyllm::test::fixtures_dir() / "gguf" / "inspect" / "small.json";
  if (std::getenv("CYLLM_UPDATE_GOLDENS") != nullptr) {
    cyllm::test::write_file(golden, got);
    return;
  }
  CHECK(got == cyllm::test::read_text(golden));

  // The contract, spelled out (the golden shows the rest).
  CHECK(j["schema"] == "cy-llm.inspect/v1");
  CHECK(j["version"] == 3);
  CHECK(j["metadata"]["llama.attention.layer_norm_rms_epsilon"].dump() == "1e-05");
  CHECK(j["metadata"]["short"] == nlohmann::ordered_json::array({1, -2, 3}));
  const auto& tokens = j["metadata"]["tokenizer.ggml.tokens"];
  CHECK(tokens["type"] == "array");
  CHECK(tokens["elem_type"] == "string");
  CHECK(tokens["length"] == 20);
  CHECK(tokens["head"].size() == 8);
  CHECK(tokens["head"][1] == "bad\xEF\xBF\xBD" "byte");
  CHECK(j["tensors"][0]["type"] == "q4_K");
  CHECK(j["tensors"][0]["shape"] == nlohmann::ordered_json::array({256, 2}));
  CHECK(j["tensors"][0]["size_bytes"] == 288);
  CHECK(j["totals"]["n_params"] == 512 + 256 + 32);
  CHECK(j["totals"]["bytes_by_type"]["q4_K"] == 288);
  CHECK(j["totals"]["bytes_by_type"]["f32"] == 1024);
}

TEST_CASE("inspect_json of tiny-llama-q4_k_m: totals add up") {
  auto f = File::open((cyllm::test::testdata_dir() / "models" / "tiny-llama-q4_k_m.gguf").string());
  REQUIRE_MESSAGE(f.ok(), f.error().to_string());
  const auto j = inspect_json(*f);
  CHECK(j["path"] == f->path());
  CHECK(j["file_size_bytes"] == f->file_size());
  CHECK(j["tensors"].size() == 39);
  CHECK(j["metadata"]["general.architecture"] == "llama");
  CHECK(j["metadata"]["tokenizer.ggml.tokens"]["length"] == 32000);
  std::uint64_t params = 0, bytes = 0;
  for (const auto& t : f->tensors()) {
    params += t.n_elements();
    bytes += t.size_bytes;
  }
  CHECK(j["totals"]["n_params"] == params);
  std::uint64_t sum = 0;
  for (const auto& [name, b] : j["totals"]["bytes_by_type"].items()) sum += b.get<std::uint64_t>();
  CHECK(sum == bytes);
  CHECK(j["totals"]["bytes_by_type"].contains("q4_K"));
  CHECK(j["totals"]["bytes_by_type"].contains("q6_K"));
  CHECK_NOTHROW((void)j.dump());
}
