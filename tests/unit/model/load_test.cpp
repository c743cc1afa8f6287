// Model::load errors: missing tensors, wrong shapes, unknown architectures, bad hparams.
#include <doctest/doctest.h>

#include <string>

#include "cyllm/model.h"
#include "test_support.h"
#include "tiny_model.h"

using cyllm::Errc;
using cyllm::model::Model;
using cyllm::test::TinySpec;

namespace {

cyllm::Error load_error(const cyllm::gguf::Writer& w) {
  cyllm::test::TempDir dir;
  const std::string path = (dir.path() / "bad.gguf").string();
  auto written = w.write(path);
  REQUIRE_MESSAGE(written.ok(), written.error().to_string());
  auto m = Model::load(path);
  REQUIRE_FALSE(m.ok());
  return std::move(m).error();
}

cyllm::Error load_error(const TinySpec& spec) { return load_error(cyllm::test::make_tiny_model(spec)); }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a missing tensor is model.bad_model naming the tensor and its shape") {
  TinySpec spec;
  spec.skip = {"blk.1.ffn_up.weight"};
  const auto e = load_error(spec);
  CHECK(e.code() == Errc::BadModel);
  CHECK(e.id() == "model.bad_model");
  CHECK(contains(e.message(), "\"blk.1.ffn_up.weight\" is missing"));
  CHECK(contains(e.message(), "[64, 96]"));
  CHECK(contains(e.to_string(), "while loading model"));

  spec.skip = {"output_norm.weight"};
  CHECK(contains(load_error(spec).message(), "output_norm.weight"));
}

TEST_CASE("architecture-specific tensors are required") {
  TinySpec qwen2;
  qwen2.arch = "qwen2";
  qwen2.skip = {"blk.0.attn_k.bias"};
  auto e = load_error(qwen2);
  CHECK(e.code() == Errc::BadModel);
  CHECK(contains(e.message(), "blk.0.attn_k.bias"));
  CHECK(contains(e.message(), "[32]"));

  TinySpec qwen3;
  qwen3.arch = "qwen3";
  qwen3.skip = {"blk.1.attn_q_norm.weight"};
  e = load_error(qwen3);
  CHECK(e.code() == Errc::BadModel);
  CHECK(contains(e.message(), "blk.1.attn_q_norm.weight"));
}

TEST_CASE("a tensor of the wrong shape is model.bad_model quoting both shapes") {
  TinySpec spec;
  spec.misshape = "blk.0.ffn_down.weight";
  auto e = load_error(spec);
  CHECK(e.code() == Errc::BadModel);
  CHECK(e.message() == "tensor \"blk.0.ffn_down.weight\" has shape [64, 96] but llama needs [96, 64]");

  // GQA: K has n_head_kv * head_dim = 32 rows; transposed it is [32, 64].
  spec.misshape = "blk.1.attn_k.weight";
  e = load_error(spec);
  CHECK(e.code() == Errc::BadModel);
  CHECK(e.message() == "tensor \"blk.1.attn_k.weight\" has shape [32, 64] but llama needs [64, 32]");

  spec.misshape = "output_norm.weight";
  e = load_error(spec);
  CHECK(e.message() == "tensor \"output_norm.weight\" has shape [32, 2] but llama needs [64]");

  // A vocabulary larger than the embedding matrix.
  TinySpec wide;
  wide.n_vocab_tokens = 320;
  e = load_error(wide);
  CHECK(e.code() == Errc::BadModel);
  CHECK(e.message() == "tensor \"token_embd.weight\" has shape [64, 300] but llama needs [64, 320]");
}

TEST_CASE("an unknown architecture is model.unsupported_architecture") {
  TinySpec spec;
  spec.arch = "gpt2";
  const auto e = load_error(spec);
  CHECK(e.code() == Errc::UnsupportedArch);
  CHECK(e.id() == "model.unsupported_architecture");
  CHECK(contains(e.message(), "\"gpt2\""));
}

TEST_CASE("inconsistent hyperparameters are model.bad_model naming the key") {
  TinySpec spec;
  spec.n_head_kv = 3;  // 4 heads are not a multiple of 3 KV heads
  spec.head_dim = 16;
  auto w = cyllm::test::make_tiny_model(spec);
  auto e = load_error(w);
  CHECK(e.code() == Errc::BadModel);
  CHECK(contains(e.message(), "head_count_kv"));

  TinySpec no_layers;
  no_layers.n_layer = 0;
  e = load_error(no_layers);
  CHECK(e.code() == Errc::BadModel);
  CHECK(contains(e.message(), "llama.block_count"));

  cyllm::gguf::Writer missing;
  missing.set_string("general.architecture", "llama");
  cyllm::test::add_byte_vocab(missing, 300);
  e = load_error(missing);
  CHECK(e.code() == Errc::BadModel);
  CHECK(contains(e.message(), "llama.context_length"));
}

TEST_CASE("a file that does not exist keeps the gguf error with context") {
  auto m = Model::load("/nonexistent/model.gguf");
  REQUIRE_FALSE(m.ok());
  CHECK(m.error().code() != Errc::BadModel);
  CHECK(contains(m.error().to_string(), "/nonexistent/model.gguf"));
}
