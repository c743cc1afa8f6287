// GGUF v3 writer: metadata entries are encoded when set (so a Writer is cheap to copy),
// tensors are laid out at bytes() time, each at an offset that is a multiple of the
// alignment, in insertion order.
#include <cstring>

#include "cyllm/atomic_file.h"
#include "cyllm/gguf.h"
#include "gguf/half.h"

namespace cyllm::gguf {

struct Writer::Entry {
  std::string key;
  ValueType type;
  std::vector<std::byte> payload;  // the encoded value, after the type field
};

struct Writer::Tensor {
  std::string name;
  std::vector<std::uint64_t> ne;
  TensorType type;
  std::vector<std::byte> bytes;
};

namespace {

void put(std::vector<std::byte>& out, const void* p, std::size_t n) {
  const auto* b = static_cast<const std::byte*>(p);
  out.insert(out.end(), b, b + n);
}
template <class T>
void put_le(std::vector<std::byte>& out, T v) {
  put(out, &v, sizeof v);  // the host is little-endian
}
void put_string(std::vector<std::byte>& out, std::string_view s) {
  put_le<std::uint64_t>(out, s.size());
  put(out, s.data(), s.size());
}
void pad_to(std::vector<std::byte>& out, std::uint64_t alignment) {
  out.resize((out.size() + alignment - 1) / alignment * alignment, std::byte{0});
}

}  // namespace

Writer::Writer(std::uint64_t alignment) : alignment_(alignment) {
  CYLLM_ASSERT(alignment != 0 && (alignment & (alignment - 1)) == 0 && alignment <= 0xFFFFFFFFu);
}

namespace {
template <class T>
std::vector<std::byte> scalar_payload(T v) {
  std::vector<std::byte> p;
  put_le(p, v);
  return p;
}
}  // namespace

// Replaces an entry of the same key in place, or appends.
#define CYLLM_GGUF_SET(key, type, payload)                                      \
  do {                                                                          \
    auto e = std::make_shared<Entry>(Entry{std::move(key), type, payload});      \
    for (auto& old : kv_)                                                       \
      if (old->key == e->key) {                                                 \
        old = std::move(e);                                                     \
        return;                                                                 \
      }                                                                         \
    kv_.push_back(std::move(e));                                                \
  } while (0)

void Writer::set_u32(std::string key, std::uint32_t v) { CYLLM_GGUF_SET(key, ValueType::U32, scalar_payload(v)); }
void Writer::set_i32(std::string key, std::int32_t v) { CYLLM_GGUF_SET(key, ValueType::I32, scalar_payload(v)); }
void Writer::set_u64(std::string key, std::uint64_t v) { CYLLM_GGUF_SET(key, ValueType::U64, scalar_payload(v)); }
void Writer::set_f32(std::string key, float v) { CYLLM_GGUF_SET(key, ValueType::F32, scalar_payload(v)); }
void Writer::set_bool(std::string key, bool v) {
  CYLLM_GGUF_SET(key, ValueType::Bool, scalar_payload<std::uint8_t>(v ? 1 : 0));
}
void Writer::set_string(std::string key, std::string v) {
  std::vector<std::byte> p;
  put_string(p, v);
  CYLLM_GGUF_SET(key, ValueType::String, std::move(p));
}
void Writer::set_strings(std::string key, std::vector<std::string> v) {
  std::vector<std::byte> p;
  put_le(p, static_cast<std::uint32_t>(ValueType::String));
  put_le<std::uint64_t>(p, v.size());
  for (const auto& s : v) put_string(p, s);
  CYLLM_GGUF_SET(key, ValueType::Array, std::move(p));
}
void Writer::set_f32s(std::string key, std::vector<float> v) {
  std::vector<std::byte> p;
  put_le(p, static_cast<std::uint32_t>(ValueType::F32));
  put_le<std::uint64_t>(p, v.size());
  put(p, v.data(), v.size() * sizeof(float));
  CYLLM_GGUF_SET(key, ValueType::Array, std::move(p));
}
void Writer::set_i32s(std::string key, std::vector<std::int32_t> v) {
  std::vector<std::byte> p;
  put_le(p, static_cast<std::uint32_t>(ValueType::I32));
  put_le<std::uint64_t>(p, v.size());
  put(p, v.data(), v.size() * sizeof(std::int32_t));
  CYLLM_GGUF_SET(key, ValueType::Array, std::move(p));
}
#undef CYLLM_GGUF_SET

void Writer::add_tensor(std::string name, std::vector<std::uint64_t> ne, TensorType type,
                        std::span<const float> values) {
  const TypeTraits* tr = type_traits(static_cast<std::uint32_t>(type));
  CYLLM_ASSERT(tr != nullptr && !ne.empty() && ne[0] % tr->block_elems == 0);
  std::uint64_t n = 1;
  for (std::uint64_t d : ne) n *= d;
  CYLLM_ASSERT(n == values.size());
  const std::uint64_t rb = row_bytes(type, ne[0]);
  std::vector<std::byte> bytes(rb * (n / ne[0]));
  for (std::uint64_t r = 0; r < n / ne[0]; ++r) {
    const bool ok = quantize_row(type, values.data() + r * ne[0], bytes.data() + r * rb,
                                 static_cast<std::int64_t>(ne[0]));
    CYLLM_ASSERT(ok);
  }
  add_tensor_raw(std::move(name), std::move(ne), type, std::move(bytes));
}

void Writer::add_tensor_raw(std::string name, std::vector<std::uint64_t> ne, TensorType type,
                            std::vector<std::byte> bytes) {
  tensors_.push_back(std::make_shared<const Tensor>(Tensor{std::move(name), std::move(ne), type, std::move(bytes)}));
}

std::vector<std::byte> Writer::bytes() const {
  bool has_alignment_key = false;
  for (const auto& e : kv_) has_alignment_key |= e->key == "general.alignment";
  const bool add_alignment = !has_alignment_key && alignment_ != kDefaultAlignment;

  std::vector<std::byte> out;
  put_le(out, kMagic);
  put_le<std::uint32_t>(out, 3);
  put_le<std::uint64_t>(out, tensors_.size());
  put_le<std::uint64_t>(out, kv_.size() + (add_alignment ? 1 : 0));
  if (add_alignment) {
    put_string(out, "general.alignment");
    put_le(out, static_cast<std::uint32_t>(ValueType::U32));
    put_le(out, static_cast<std::uint32_t>(alignment_));
  }
  for (const auto& e : kv_) {
    put_string(out, e->key);
    put_le(out, static_cast<std::uint32_t>(e->type));
    put(out, e->payload.data(), e->payload.size());
  }
  std::uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(out, t->name);
    put_le<std::uint32_t>(out, static_cast<std::uint32_t>(t->ne.size()));
    for (std::uint64_t d : t->ne) put_le(out, d);
    put_le(out, static_cast<std::uint32_t>(t->type));
    put_le(out, offset);
    offset = (offset + t->bytes.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  pad_to(out, alignment_);
  for (const auto& t : tensors_) {
    put(out, t->bytes.data(), t->bytes.size());
    pad_to(out, alignment_);
  }
  return out;
}

Result<void> Writer::write(const std::string& path) const {
  const std::vector<std::byte> b = bytes();
  return write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
}

}  // namespace cyllm::gguf
