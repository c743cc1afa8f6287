// Value accessors: scalar conversions and array element reads. Array elements are read
// in place from the file's bytes (little-endian, unaligned).
#include <cmath>
#include <cstring>
#include <limits>

#include "cyllm/gguf.h"
#include "gguf/half.h"

namespace cyllm::gguf {

namespace {

bool is_integer(ValueType t) {
  switch (t) {
    case ValueType::U8: case ValueType::I8: case ValueType::U16: case ValueType::I16:
    case ValueType::U32: case ValueType::I32: case ValueType::U64: case ValueType::I64:
      return true;
    default:
      return false;
  }
}

bool is_signed(ValueType t) {
  return t == ValueType::I8 || t == ValueType::I16 || t == ValueType::I32 || t == ValueType::I64;
}

// The scalar bit pattern of an element of type t at p, zero-extended to 64 bits.
std::uint64_t load_bits(ValueType t, const std::byte* p) {
  switch (t) {
    case ValueType::U8: case ValueType::I8: case ValueType::Bool:
      return static_cast<std::uint8_t>(*p);
    case ValueType::U16: case ValueType::I16: return load_u16(p);
    case ValueType::U32: case ValueType::I32: case ValueType::F32: return load_u32(p);
    default: return load_u64(p);
  }
}

// Sign-extends an integer bit pattern of type t.
std::int64_t signed_value(ValueType t, std::uint64_t bits) {
  switch (t) {
    case ValueType::I8: return static_cast<std::int8_t>(bits);
    case ValueType::I16: return static_cast<std::int16_t>(bits);
    case ValueType::I32: return static_cast<std::int32_t>(bits);
    default: return static_cast<std::int64_t>(bits);
  }
}

double float_value(ValueType t, std::uint64_t bits) {
  if (t == ValueType::F32) return bits_float(static_cast<std::uint32_t>(bits));
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

std::size_t elem_size(ValueType t) {
  switch (t) {
    case ValueType::U8: case ValueType::I8: case ValueType::Bool: return 1;
    case ValueType::U16: case ValueType::I16: return 2;
    case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
    default: return 8;
  }
}

}  // namespace

std::optional<std::int64_t> Value::as_i64() const {
  if (!is_integer(type_)) return std::nullopt;
  if (is_signed(type_)) return signed_value(type_, bits_);
  if (bits_ > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
  return static_cast<std::int64_t>(bits_);
}

std::optional<std::uint64_t> Value::as_u64() const {
  if (!is_integer(type_)) return std::nullopt;
  if (is_signed(type_)) {
    const std::int64_t v = signed_value(type_, bits_);
    if (v < 0) return std::nullopt;
    return static_cast<std::uint64_t>(v);
  }
  return bits_;
}

std::optional<double> Value::as_f64() const {
  if (type_ == ValueType::F32 || type_ == ValueType::F64) return float_value(type_, bits_);
  if (!is_integer(type_)) return std::nullopt;
  if (is_signed(type_)) return static_cast<double>(signed_value(type_, bits_));
  return static_cast<double>(bits_);
}

std::optional<bool> Value::as_bool() const {
  if (type_ != ValueType::Bool) return std::nullopt;
  return bits_ != 0;
}

std::optional<std::string_view> Value::as_string() const {
  if (type_ != ValueType::String) return std::nullopt;
  return str_;
}

std::string_view Value::string_at(std::uint64_t i) const {
  CYLLM_ASSERT(type_ == ValueType::Array && elem_type_ == ValueType::String && strings_ && i < count_);
  return (*strings_)[i];
}

std::int64_t Value::int_at(std::uint64_t i) const {
  CYLLM_ASSERT(type_ == ValueType::Array && (is_integer(elem_type_) || elem_type_ == ValueType::Bool) &&
               i < count_);
  const std::uint64_t bits = load_bits(elem_type_, data_ + i * elem_size(elem_type_));
  return is_signed(elem_type_) ? signed_value(elem_type_, bits) : static_cast<std::int64_t>(bits);
}

double Value::float_at(std::uint64_t i) const {
  CYLLM_ASSERT(type_ == ValueType::Array && i < count_ &&
               (is_integer(elem_type_) || elem_type_ == ValueType::F32 || elem_type_ == ValueType::F64));
  const std::uint64_t bits = load_bits(elem_type_, data_ + i * elem_size(elem_type_));
  if (elem_type_ == ValueType::F32 || elem_type_ == ValueType::F64) return float_value(elem_type_, bits);
  if (is_signed(elem_type_)) return static_cast<double>(signed_value(elem_type_, bits));
  return static_cast<double>(bits);
}

}  // namespace cyllm::gguf
