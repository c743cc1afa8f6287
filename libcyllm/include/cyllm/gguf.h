// GGUF: the single-file model format of llama.cpp (versions 2 and 3).
//
// Layout (all integers little-endian):
//   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x { string key | u32 value_type | value }
//   n_tensors x { string name | u32 n_dims | n_dims x u64 ne | u32 type | u64 offset }
//   padding to `general.alignment` (default 32)
//   tensor data; each tensor's offset is relative to the start of this section and is a
//   multiple of the alignment.
// A string is u64 length + bytes (no terminator). An array value is u32 element type +
// u64 count + elements. ne[0] is the fastest-varying dimension (a row has ne[0] elements).
//
// Design goals: one validation pass at open, after which every accessor is cheap and
// cannot read outside the file; tensor data used in place from the mapping (no copy).
// Non-goals: editing a file in place; big-endian GGUF.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cyllm/error.h"

namespace cyllm::gguf {

inline constexpr std::uint32_t kMagic = 0x46554747;  // "GGUF" read as little-endian u32
inline constexpr std::uint64_t kDefaultAlignment = 32;

// Tensor element types, numbered as in the GGUF files ggml writes.
enum class TensorType : std::uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, BF16 = 30,
};

struct TypeTraits {
  std::string_view name;       // "q4_K", as llama.cpp spells it
  std::uint32_t block_elems;   // elements per block (1 for F32/F16/BF16, 32, or 256)
  std::uint32_t block_bytes;   // bytes per block
  bool computable;             // the engine can dequantize/compute it
};
// Traits of a raw type number; nullptr when the number is not a known ggml type.
const TypeTraits* type_traits(std::uint32_t raw_type);
inline const TypeTraits& traits(TensorType t) { return *type_traits(static_cast<std::uint32_t>(t)); }
// Bytes of a row of n elements; n must be a multiple of block_elems.
std::uint64_t row_bytes(TensorType t, std::uint64_t n);

enum class ValueType : std::uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8,
  Array = 9, U64 = 10, I64 = 11, F64 = 12,
};
std::string_view value_type_name(ValueType t);  // "u32", "string", "array", ...

// A metadata value. Strings and arrays point into the File's bytes; a Value must not
// outlive its File.
class Value {
 public:
  ValueType type() const { return type_; }
  // Scalars: integer types convert to i64/u64 when in range, F32/F64 to double.
  std::optional<std::int64_t> as_i64() const;
  std::optional<std::uint64_t> as_u64() const;
  std::optional<double> as_f64() const;
  std::optional<bool> as_bool() const;
  std::optional<std::string_view> as_string() const;
  // Arrays (nested arrays are accepted by the reader but have no element accessors).
  ValueType elem_type() const { return elem_type_; }
  std::uint64_t size() const { return count_; }  // array length; 0 for scalars
  std::string_view string_at(std::uint64_t i) const;   // elem_type String
  std::int64_t int_at(std::uint64_t i) const;          // any integer elem_type; Bool as 0/1
  double float_at(std::uint64_t i) const;              // F32/F64 (and integers)

 private:
  friend class File;
  friend struct ValueAccess;
  ValueType type_ = ValueType::U8;
  ValueType elem_type_ = ValueType::U8;
  std::uint64_t count_ = 0;
  std::uint64_t bits_ = 0;              // scalar payload (bit pattern)
  std::string_view str_;                // String scalar
  const std::byte* data_ = nullptr;     // array elements (unaligned, little-endian)
  std::shared_ptr<const std::vector<std::string_view>> strings_;  // string array elements
};

struct KeyValue {
  std::string_view key;
  Value value;
};

struct TensorInfo {
  std::string_view name;
  std::vector<std::uint64_t> ne;  // dims, ne[0] fastest (row length)
  TensorType type;
  std::uint64_t offset;           // from the start of the data section
  std::uint64_t size_bytes;
  const std::byte* data;          // inside the File's bytes, aligned to the file alignment
                                  // (up to 4096 for read()/parse() copies; mmap: any)

  std::uint64_t n_elements() const;
  std::uint64_t n_rows() const { return ne.empty() || ne[0] == 0 ? 0 : n_elements() / ne[0]; }
};

struct OpenOptions {
  bool use_mmap = true;       // false: read the file into memory
  bool mmap_fallback = true;  // when mmap fails, fall back to reading
  bool populate = false;      // MAP_POPULATE (pre-fault the pages)
};

// An open, validated GGUF file. Immutable after open and safe to share between threads.
class File {
 public:
  // Maps (or reads) and validates `path`. Errors name the key or tensor at fault.
  static Result<File> open(const std::string& path, const OpenOptions& opts = {});
  // Validates bytes already in memory (tests, fuzzing); the File keeps its own copy.
  static Result<File> parse(std::span<const std::byte> bytes);

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();

  std::uint32_t version() const;
  std::uint64_t alignment() const;
  std::uint64_t data_offset() const;  // where the data section starts in the file
  std::uint64_t file_size() const;
  bool mmapped() const;
  const std::string& path() const;    // "" for parse()

  const std::vector<KeyValue>& metadata() const;  // in file order
  const Value* find(std::string_view key) const;
  // Typed getters: GgufMissingKey when absent, GgufBadMetadata on a wrong type.
  Result<std::uint64_t> get_u64(std::string_view key) const;
  Result<double> get_f64(std::string_view key) const;
  Result<std::string_view> get_string(std::string_view key) const;
  // Same, with a default when absent (still an error on a wrong type).
  Result<std::uint64_t> get_u64_or(std::string_view key, std::uint64_t fallback) const;
  Result<double> get_f64_or(std::string_view key, double fallback) const;

  const std::vector<TensorInfo>& tensors() const;  // in file order
  const TensorInfo* tensor(std::string_view name) const;

 private:
  struct Impl;
  explicit File(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The metadata and tensor table as JSON (schema "cy-llm.inspect/v1"): long arrays
// (vocabularies) are summarised by type, length and their first few elements.
nlohmann::ordered_json inspect_json(const File& file);

// ---- Quantization formats -----------------------------------------------------------

// Dequantizes n elements (a multiple of the block size) of type t from src into dst.
// Reference (scalar) implementation; defines the numbers every fast kernel must match.
// Covers every known type (Q2_K, Q3_K, Q8_1 and Q8_K too, though not `computable`).
void dequantize_row(TensorType t, const void* src, float* dst, std::int64_t n);
// Quantizes n floats into type t (used by the writer for test and bench models). Simple
// round-to-nearest quantizers: correct but not the error-minimising search llama.cpp uses.
// Unsupported for Q8_1/Q8_K/Q2_K/Q3_K (returns false).
bool quantize_row(TensorType t, const float* src, void* dst, std::int64_t n);

// ---- Writer -------------------------------------------------------------------------

// Builds a GGUF v3 file in memory and writes it atomically. For tests and benchmarks.
class Writer {
 public:
  explicit Writer(std::uint64_t alignment = kDefaultAlignment);
  void set_u32(std::string key, std::uint32_t v);
  void set_i32(std::string key, std::int32_t v);
  void set_u64(std::string key, std::uint64_t v);
  void set_f32(std::string key, float v);
  void set_bool(std::string key, bool v);
  void set_string(std::string key, std::string v);
  void set_strings(std::string key, std::vector<std::string> v);
  void set_f32s(std::string key, std::vector<float> v);
  void set_i32s(std::string key, std::vector<std::int32_t> v);
  // Adds a tensor from f32 data, converting to `type` (F32, F16, BF16 or a quantized
  // type quantize_row supports). ne[0] must be a multiple of the type's block size.
  void add_tensor(std::string name, std::vector<std::uint64_t> ne, TensorType type,
                  std::span<const float> values);
  // Adds a tensor from already-encoded bytes. Nothing is checked (tests use it to build
  // corrupt files): the bytes are written as given and the next offset follows them.
  void add_tensor_raw(std::string name, std::vector<std::uint64_t> ne, TensorType type,
                      std::vector<std::byte> bytes);
  std::vector<std::byte> bytes() const;
  Result<void> write(const std::string& path) const;  // temp file + rename

 private:
  struct Entry;
  struct Tensor;
  std::uint64_t alignment_;
  std::vector<std::shared_ptr<const Entry>> kv_;        // in insertion order
  std::vector<std::shared_ptr<const Tensor>> tensors_;  // (shared_ptr: Tensor stays incomplete here)
};

}  // namespace cyllm::gguf
