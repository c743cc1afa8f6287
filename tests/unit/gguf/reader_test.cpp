// GGUF reader: files built by the Writer and the shared tiny-llama models parse into the
// right metadata and tensor table; typed getters and I/O failures give exact errors.
// (The corpus of corrupt files has its own test, corrupt_test.cpp.)
#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "cyllm/gguf.h"
#include "test_support.h"

using namespace cyllm::gguf;
using cyllm::Errc;

namespace {

Writer sample_writer(std::uint64_t alignment = kDefaultAlignment) {
  Writer w(alignment);
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_i32("neg", -5);
  w.set_u64("big", 1ull << 40);
  w.set_f32("eps", 1e-5f);
  w.set_bool("flag", true);
  w.set_strings("tokens", {"<unk>", "a", "", "bc"});
  w.set_f32s("scores", {0.5f, -1.25f});
  w.set_i32s("types", {1, -2, 3});
  std::vector<float> v(64);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) - 10.0f;
  w.add_tensor("a", {16, 4}, TensorType::F32, v);
  w.add_tensor("b", {8}, TensorType::F32, std::span<const float>(v).first(8));
  return w;
}

}  // namespace

TEST_CASE("a written file parses back with its metadata and tensors") {
  const auto bytes = sample_writer().bytes();
  auto f = File::parse(bytes);
  REQUIRE_MESSAGE(f.ok(), f.error().to_string());
  CHECK(f->version() == 3);
  CHECK(f->alignment() == 32);
  CHECK(f->file_size() == bytes.size());
  CHECK(f->data_offset() % 32 == 0);
  CHECK_FALSE(f->mmapped());
  CHECK(f->path().empty());
  REQUIRE(f->metadata().size() == 9);
  CHECK(f->metadata()[0].key == "general.architecture");
  CHECK(*f->get_string("general.architecture") == "llama");
  CHECK(*f->get_u64("llama.block_count") == 2);
  CHECK(*f->get_u64("big") == (1ull << 40));
  CHECK(f->find("neg")->as_i64() == -5);
  CHECK(f->get_f64("eps").value() == doctest::Approx(1e-5).epsilon(1e-6));
  CHECK(*f->get_f64("llama.block_count") == 2.0);  // integers read as numbers too
  CHECK(f->find("flag")->as_bool() == true);
  const Value* tokens = f->find("tokens");
  REQUIRE(tokens != nullptr);
  CHECK(tokens->type() == ValueType::Array);
  CHECK(tokens->elem_type() == ValueType::String);
  REQUIRE(tokens->size() == 4);
  CHECK(tokens->string_at(0) == "<unk>");
  CHECK(tokens->string_at(2).empty());
  CHECK(tokens->string_at(3) == "bc");
  CHECK(f->find("scores")->float_at(1) == -1.25);
  CHECK(f->find("types")->int_at(1) == -2);
  CHECK(f->find("types")->float_at(2) == 3.0);
  CHECK(f->find("nope") == nullptr);

  REQUIRE(f->tensors().size() == 2);
  const TensorInfo* a = f->tensor("a");
  REQUIRE(a != nullptr);
  CHECK(a->ne == std::vector<std::uint64_t>{16, 4});
  CHECK(a->type == TensorType::F32);
  CHECK(a->offset == 0);
  CHECK(a->size_bytes == 256);
  CHECK(a->n_elements() == 64);
  CHECK(a->n_rows() == 4);
  CHECK(reinterpret_cast<std::uintptr_t>(a->data) % 32 == 0);
  float x;
  std::memcpy(&x, a->data + 4 * 63, 4);
  CHECK(x == 53.0f);
  const TensorInfo* b = f->tensor("b");
  REQUIRE(b != nullptr);
  CHECK(b->offset == 256);
  CHECK(b->data == f->tensors()[0].data + 256);
  CHECK(f->tensor("c") == nullptr);
}

TEST_CASE("a non-default alignment is written as general.alignment and honoured") {
  const auto bytes = sample_writer(64).bytes();
  auto f = File::parse(bytes);
  REQUIRE_MESSAGE(f.ok(), f.error().to_string());
  CHECK(f->alignment() == 64);
  CHECK(f->data_offset() % 64 == 0);
  CHECK(f->tensor("b")->offset == 256);
  CHECK(f->find("general.alignment")->as_u64() == 64);
}

TEST_CASE("a file with no metadata and no tensors is valid") {
  auto f = File::parse(Writer().bytes());
  REQUIRE_MESSAGE(f.ok(), f.error().to_string());
  CHECK(f->metadata().empty());
  CHECK(f->tensors().empty());
}

TEST_CASE("GGUF v2 is accepted, v1 and v4 are refused") {
  auto bytes = sample_writer().bytes();
  bytes[4] = std::byte{2};
  CHECK(File::parse(bytes).ok());
  bytes[4] = std::byte{1};
  auto r = File::parse(bytes);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Errc::GgufBadVersion);
  CHECK(r.error().message() == "GGUF version 1 is not supported (only 2 and 3)");
  bytes[4] = std::byte{4};
  CHECK(File::parse(bytes).error().code() == Errc::GgufBadVersion);
}

TEST_CASE("typed getters: missing keys and wrong types") {
  const auto bytes = sample_writer().bytes();
  auto f = File::parse(bytes);
  REQUIRE(f.ok());
  auto m = f->get_u64("llama.context_length");
  REQUIRE_FALSE(m.ok());
  CHECK(m.error().code() == Errc::GgufMissingKey);
  CHECK(m.error().to_string() == "gguf.missing_key: key \"llama.context_length\" is missing");
  auto s = f->get_u64("general.architecture");
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().code() == Errc::GgufBadMetadata);
  CHECK(s.error().message() == "key \"general.architecture\" is a string, expected a non-negative integer");
  CHECK(f->get_u64("neg").error().message() == "key \"neg\" is a i32 of value -5, expected a non-negative integer");
  CHECK(f->get_string("llama.block_count").error().message() ==
        "key \"llama.block_count\" is a u32, expected a string");
  CHECK(f->get_f64("tokens").error().code() == Errc::GgufBadMetadata);
  CHECK(*f->get_u64_or("llama.context_length", 4096) == 4096);
  CHECK(*f->get_u64_or("llama.block_count", 7) == 2);
  CHECK(f->get_u64_or("general.architecture", 7).error().code() == Errc::GgufBadMetadata);
  CHECK(*f->get_f64_or("rope", 0.5) == 0.5);
  CHECK(f->find("eps")->as_u64() == std::nullopt);
  CHECK(f->find("big")->as_string() == std::nullopt);
}

TEST_CASE("open: mmap, read and the failures of the file system") {
  cyllm::test::TempDir dir;
  const auto path = (dir.path() / "m.gguf").string();
  REQUIRE(sample_writer().write(path).ok());
  auto mapped = File::open(path);
  REQUIRE_MESSAGE(mapped.ok(), mapped.error().to_string());
  CHECK(mapped->mmapped());
  CHECK(mapped->path() == path);
  OpenOptions read_opts;
  read_opts.use_mmap = false;
  auto read = File::open(path, read_opts);
  REQUIRE(read.ok());
  CHECK_FALSE(read->mmapped());
  REQUIRE(read->tensors().size() == mapped->tensors().size());
  for (std::size_t i = 0; i < read->tensors().size(); ++i) {
    const auto& x = read->tensors()[i];
    const auto& y = mapped->tensors()[i];
    CHECK(std::memcmp(x.data, y.data, x.size_bytes) == 0);
  }
  OpenOptions populate;
  populate.populate = true;
  auto pre = File::open(path, populate);
  REQUIRE(pre.ok());
  CHECK(pre->mmapped());
  CHECK(pre->tensors().size() == 2);
  // A moved File keeps its pointers valid.
  File moved = std::move(mapped.value());
  CHECK(*moved.get_string("general.architecture") == "llama");

  auto missing = File::open((dir.path() / "none.gguf").string());
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code() == Errc::NotFound);
  auto is_dir = File::open(dir.path().string());
  REQUIRE_FALSE(is_dir.ok());
  CHECK(is_dir.error().code() == Errc::Io);

  cyllm::test::write_file(dir.path() / "short.gguf", "GGUF");
  auto short_file = File::open((dir.path() / "short.gguf").string());
  REQUIRE_FALSE(short_file.ok());
  CHECK(short_file.error().code() == Errc::GgufTruncated);
  REQUIRE(short_file.error().context().size() == 1);
  CHECK(short_file.error().context()[0].find("short.gguf") != std::string::npos);
}

TEST_CASE("the shared tiny-llama models open and describe themselves") {
  const auto models = cyllm::test::testdata_dir() / "models";
  for (const char* name : {"f16", "q8_0", "q4_0", "q6_k", "q4_k_m"}) {
    CAPTURE(name);
    auto f = File::open((models / (std::string("tiny-llama-") + name + ".gguf")).string());
    REQUIRE_MESSAGE(f.ok(), f.error().to_string());
    CHECK(f->version() == 3);
    CHECK(*f->get_string("general.architecture") == "llama");
    CHECK(*f->get_u64("llama.block_count") == 4);
    CHECK(*f->get_u64("llama.embedding_length") == 256);
    CHECK(f->get_f64("llama.attention.layer_norm_rms_epsilon").value() == doctest::Approx(1e-5));
    CHECK(f->find("tokenizer.ggml.tokens")->size() == 32000);
    CHECK(f->find("tokenizer.ggml.add_bos_token")->as_bool() == true);
    CHECK(f->tensors().size() == 39);
    const TensorInfo* emb = f->tensor("token_embd.weight");
    REQUIRE(emb != nullptr);
    CHECK(emb->ne == std::vector<std::uint64_t>{256, 32000});
    CHECK(f->tensor("output_norm.weight")->type == TensorType::F32);
    std::uint64_t end = 0;
    for (const auto& t : f->tensors()) end = std::max(end, f->data_offset() + t.offset + t.size_bytes);
    CHECK(end <= f->file_size());
    CHECK(f->file_size() - end < f->alignment());
  }
}

TEST_CASE("type traits follow ggml") {
  struct Row {
    TensorType t;
    const char* name;
    std::uint32_t elems, bytes;
    bool computable;
  };
  const Row rows[] = {
      {TensorType::F32, "f32", 1, 4, true},      {TensorType::F16, "f16", 1, 2, true},
      {TensorType::BF16, "bf16", 1, 2, true},    {TensorType::Q4_0, "q4_0", 32, 18, true},
      {TensorType::Q4_1, "q4_1", 32, 20, true},  {TensorType::Q5_0, "q5_0", 32, 22, true},
      {TensorType::Q5_1, "q5_1", 32, 24, true},  {TensorType::Q8_0, "q8_0", 32, 34, true},
      {TensorType::Q8_1, "q8_1", 32, 36, false}, {TensorType::Q2_K, "q2_K", 256, 84, false},
      {TensorType::Q3_K, "q3_K", 256, 110, false}, {TensorType::Q4_K, "q4_K", 256, 144, true},
      {TensorType::Q5_K, "q5_K", 256, 176, true}, {TensorType::Q6_K, "q6_K", 256, 210, true},
      {TensorType::Q8_K, "q8_K", 256, 292, false},
  };
  for (const Row& r : rows) {
    CAPTURE(r.name);
    const TypeTraits& tr = traits(r.t);
    CHECK(tr.name == r.name);
    CHECK(tr.block_elems == r.elems);
    CHECK(tr.block_bytes == r.bytes);
    CHECK(tr.computable == r.computable);
  }
  CHECK(type_traits(4) == nullptr);
  CHECK(type_traits(16) == nullptr);
  CHECK(type_traits(29) == nullptr);
  CHECK(type_traits(1000) == nullptr);
  CHECK(row_bytes(TensorType::Q4_K, 512) == 288);
  CHECK(row_bytes(TensorType::F16, 3) == 6);
  CHECK(value_type_name(ValueType::Array) == "array");
  CHECK(value_type_name(ValueType::F64) == "f64");
}
