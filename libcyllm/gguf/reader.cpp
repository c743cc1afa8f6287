// GGUF reader: maps (or reads) a file and validates all of it once, so that every
// accessor afterwards is cheap and cannot point outside the bytes.
//
// Untrusted-input rules: every count is checked against the bytes that could hold it
// before anything is reserved; a length that needs more bytes than the whole file is
// reported as bogus metadata/tensor info, one that needs more than what is left as a
// truncated file. Sizes and offsets are added and multiplied with overflow checks.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <numeric>
#include <unordered_map>

#include "cyllm/gguf.h"
#include "gguf/half.h"
#include "util/strings.h"

namespace cyllm::gguf {

namespace {

constexpr std::uint64_t kHeaderBytes = 24;          // magic, version, n_tensors, n_kv
constexpr std::uint64_t kMaxKv = 1u << 16;          // metadata entries (real files: ~50)
constexpr std::uint64_t kMaxTensors = 1u << 18;     // (the largest MoE files: ~20k)
constexpr std::uint64_t kMaxReserve = 1024;         // grow past this only as entries parse
constexpr std::uint64_t kMaxKeyBytes = 65535;       // the GGUF spec's key limit
constexpr std::uint64_t kMaxTensorNameBytes = 256;  // ggml itself allows 63
constexpr std::uint32_t kMaxDims = 4;
constexpr int kMaxArrayDepth = 4;                   // arrays of arrays of ...
constexpr std::uint64_t kMinKvBytes = 8 + 1 + 4 + 1;            // key len, 1-byte key, type, u8
constexpr std::uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;  // 1 dim
// In-memory copies are aligned to this; mmap gives page alignment anyway.
constexpr std::size_t kBufferAlign = 4096;

std::string q(std::string_view s) { return util::quote(s); }
std::string num(std::uint64_t v) { return std::to_string(v); }

bool valid_value_type(std::uint32_t t) { return t <= static_cast<std::uint32_t>(ValueType::F64); }

std::uint64_t fixed_size(ValueType t) {
  switch (t) {
    case ValueType::U8: case ValueType::I8: case ValueType::Bool: return 1;
    case ValueType::U16: case ValueType::I16: return 2;
    case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
    case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
    default: return 0;  // string, array
  }
}

struct AlignedBuffer {
  std::byte* p = nullptr;
  explicit AlignedBuffer(std::size_t n)
      : p(static_cast<std::byte*>(::operator new(n == 0 ? 1 : n, std::align_val_t(kBufferAlign)))) {}
  ~AlignedBuffer() { ::operator delete(p, std::align_val_t(kBufferAlign)); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
};

}  // namespace

// Builds Values (their members are private to the public class).
struct ValueAccess {
  static Value scalar(ValueType t, std::uint64_t bits) {
    Value v;
    v.type_ = t;
    v.bits_ = bits;
    return v;
  }
  static Value string(std::string_view s) {
    Value v;
    v.type_ = ValueType::String;
    v.str_ = s;
    return v;
  }
  static Value array(ValueType elem, std::uint64_t count, const std::byte* data,
                     std::shared_ptr<const std::vector<std::string_view>> strings) {
    Value v;
    v.type_ = ValueType::Array;
    v.elem_type_ = elem;
    v.count_ = count;
    v.data_ = data;
    v.strings_ = std::move(strings);
    return v;
  }
};

struct File::Impl {
  std::string path;
  void* map = nullptr;                  // the mapping, when mmapped
  std::unique_ptr<AlignedBuffer> buf;   // the copy, otherwise
  const std::byte* base = nullptr;
  std::uint64_t size = 0;
  std::uint32_t version = 0;
  std::uint64_t alignment = kDefaultAlignment;
  std::uint64_t data_offset = 0;
  std::vector<KeyValue> metadata;
  std::unordered_map<std::string_view, std::size_t> kv_index;
  std::vector<TensorInfo> tensors;
  std::unordered_map<std::string_view, std::size_t> tensor_index;

  ~Impl() {
    if (map != nullptr) ::munmap(map, size);
  }

  Result<void> parse();
};

namespace {

// Reads the header sections in order; `what` names the thing being read for errors.
class Cursor {
 public:
  Cursor(const std::byte* base, std::uint64_t size) : base_(base), size_(size) {}
  std::uint64_t pos() const { return pos_; }
  std::uint64_t left() const { return size_ - pos_; }
  std::uint64_t size() const { return size_; }
  const std::byte* here() const { return base_ + pos_; }

  Result<void> need(std::uint64_t n, const std::string& what) const {
    if (n > left())
      return Error(Errc::GgufTruncated, "the file ends at byte " + num(size_) + " in " + what +
                                            " (needs " + num(n) + " bytes at offset " + num(pos_) + ")");
    return {};
  }
  Result<std::uint32_t> u32(const std::string& what) {
    CYLLM_TRY_VOID(need(4, what));
    std::uint32_t v = load_u32(here());
    pos_ += 4;
    return v;
  }
  Result<std::uint64_t> u64(const std::string& what) {
    CYLLM_TRY_VOID(need(8, what));
    std::uint64_t v = load_u64(here());
    pos_ += 8;
    return v;
  }
  // A length-prefixed string. A length beyond the whole file is `bogus` (with that code),
  // beyond what is left a truncation.
  Result<std::string_view> str(const std::string& what, Errc bogus) {
    const std::uint64_t len = CYLLM_TRY(u64(what));
    if (len > size_)
      return Error(bogus, what + " has length " + num(len) + ", more than the whole file (" +
                              num(size_) + " bytes)");
    CYLLM_TRY_VOID(need(len, what));
    std::string_view s(reinterpret_cast<const char*>(here()), len);
    pos_ += len;
    return s;
  }
  void skip(std::uint64_t n) { pos_ += n; }

 private:
  const std::byte* base_;
  std::uint64_t size_;
  std::uint64_t pos_ = 0;
};

Result<Value> read_value(Cursor& c, ValueType type, const std::string& what, int depth);

Result<ValueType> read_value_type(Cursor& c, const std::string& what) {
  const std::uint32_t t = CYLLM_TRY(c.u32("the value type of " + what));
  if (!valid_value_type(t))
    return Error(Errc::GgufBadMetadata, "unknown value type " + num(t) + " for " + what);
  return static_cast<ValueType>(t);
}

Result<Value> read_array(Cursor& c, const std::string& what, int depth) {
  const ValueType elem = CYLLM_TRY(read_value_type(c, "the elements of " + what));
  const std::uint64_t count = CYLLM_TRY(c.u64("the length of " + what));
  if (elem == ValueType::Array && depth >= kMaxArrayDepth)
    return Error(Errc::GgufBadMetadata, what + " nests arrays more than " +
                                            num(kMaxArrayDepth) + " deep");
  // Every element takes at least this many bytes.
  const std::uint64_t min_elem = elem == ValueType::String ? 8 : elem == ValueType::Array ? 12 : fixed_size(elem);
  std::uint64_t min_bytes = 0;
  if (__builtin_mul_overflow(count, min_elem, &min_bytes) || min_bytes > c.size())
    return Error(Errc::GgufBadMetadata, what + " claims " + num(count) + " " +
                                            std::string(value_type_name(elem)) +
                                            " elements, more than the whole file (" + num(c.size()) +
                                            " bytes) can hold");
  const std::byte* data = c.here();
  if (elem == ValueType::String) {
    auto strings = std::make_shared<std::vector<std::string_view>>();
    strings->reserve(count);  // bounded: count * 8 <= file size, and a string_view is 16 bytes
    for (std::uint64_t i = 0; i < count; ++i)
      strings->push_back(CYLLM_TRY(c.str("element " + num(i) + " of " + what, Errc::GgufBadMetadata)));
    return ValueAccess::array(elem, count, data, std::move(strings));
  }
  if (elem == ValueType::Array) {
    for (std::uint64_t i = 0; i < count; ++i)
      (void)CYLLM_TRY(read_array(c, "element " + num(i) + " of " + what, depth + 1));
    return ValueAccess::array(elem, count, data, nullptr);
  }
  CYLLM_TRY_VOID(c.need(min_bytes, what));
  if (elem == ValueType::Bool) {
    for (std::uint64_t i = 0; i < count; ++i) {
      const auto b = static_cast<std::uint8_t>(data[i]);
      if (b > 1)
        return Error(Errc::GgufBadMetadata, "element " + num(i) + " of " + what +
                                                " is a bool of value " + num(b) + " (not 0 or 1)");
    }
  }
  c.skip(min_bytes);
  return ValueAccess::array(elem, count, data, nullptr);
}

Result<Value> read_value(Cursor& c, ValueType type, const std::string& what, int depth) {
  switch (type) {
    case ValueType::String: return ValueAccess::string(CYLLM_TRY(c.str(what, Errc::GgufBadMetadata)));
    case ValueType::Array: return read_array(c, what, depth + 1);
    default: break;
  }
  const std::uint64_t n = fixed_size(type);
  CYLLM_TRY_VOID(c.need(n, what));
  std::uint64_t bits = 0;
  std::memcpy(&bits, c.here(), n);  // little-endian host: the low bytes
  c.skip(n);
  if (type == ValueType::Bool && bits > 1)
    return Error(Errc::GgufBadMetadata, what + " is a bool of value " + num(bits) + " (not 0 or 1)");
  return ValueAccess::scalar(type, bits);
}

std::string hex4(const std::byte* p) {
  static const char* digits = "0123456789abcdef";
  std::string s = "0x";
  for (int i = 0; i < 4; ++i) {
    const auto b = static_cast<unsigned>(p[i]);
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

}  // namespace

Result<void> File::Impl::parse() {
  Cursor c(base, size);
  if (size < 4)
    return Error(Errc::GgufTruncated, "the file is " + num(size) + " bytes, too short for a GGUF header (" +
                                          num(kHeaderBytes) + " bytes)");
  if (load_u32(base) != kMagic)
    return Error(Errc::GgufBadMagic, "the file starts with " + hex4(base) + ", not \"GGUF\"");
  c.skip(4);
  version = CYLLM_TRY(c.u32("the header"));
  if (version == 0x02000000u || version == 0x03000000u)
    return Error(Errc::GgufBadVersion, "big-endian GGUF (version bytes " + hex4(base + 4) + ") is not supported");
  if (version != 2 && version != 3)
    return Error(Errc::GgufBadVersion, "GGUF version " + num(version) + " is not supported (only 2 and 3)");
  const std::uint64_t n_tensors = CYLLM_TRY(c.u64("the header"));
  const std::uint64_t n_kv = CYLLM_TRY(c.u64("the header"));
  if (n_kv > kMaxKv || n_kv > size / kMinKvBytes)
    return Error(Errc::GgufBadMetadata, "the header claims " + num(n_kv) + " metadata entries; the limit is " +
                                            num(std::min(kMaxKv, size / kMinKvBytes)) + " for a file of " +
                                            num(size) + " bytes");
  if (n_tensors > kMaxTensors || n_tensors > size / kMinTensorInfoBytes)
    return Error(Errc::GgufBadTensor, "the header claims " + num(n_tensors) + " tensors; the limit is " +
                                          num(std::min(kMaxTensors, size / kMinTensorInfoBytes)) +
                                          " for a file of " + num(size) + " bytes");

  // ---- metadata ----
  metadata.reserve(std::min(n_kv, kMaxReserve));
  kv_index.reserve(std::min(n_kv, kMaxReserve));
  for (std::uint64_t i = 0; i < n_kv; ++i) {
    const std::string entry = "metadata entry " + num(i);
    const std::string_view key = CYLLM_TRY(c.str("the key of " + entry, Errc::GgufBadMetadata));
    if (key.empty()) return Error(Errc::GgufBadMetadata, entry + " has an empty key");
    if (key.size() > kMaxKeyBytes)
      return Error(Errc::GgufBadMetadata, "the key of " + entry + " is " + num(key.size()) +
                                              " bytes long (limit " + num(kMaxKeyBytes) + ")");
    const std::string what = "key " + q(key);
    const ValueType type = CYLLM_TRY(read_value_type(c, what));
    Value v = CYLLM_TRY(read_value(c, type, what, 0));
    if (!kv_index.emplace(key, metadata.size()).second)
      return Error(Errc::GgufBadMetadata, "key " + q(key) + " appears twice");
    metadata.push_back(KeyValue{key, std::move(v)});
  }
  if (auto it = kv_index.find("general.alignment"); it != kv_index.end()) {
    const Value& v = metadata[it->second].value;
    if (v.type() != ValueType::U32)
      return Error(Errc::GgufBadMetadata, "key \"general.alignment\" is a " +
                                              std::string(value_type_name(v.type())) + ", not a u32");
    const std::uint64_t a = *v.as_u64();
    if (a == 0 || (a & (a - 1)) != 0)
      return Error(Errc::GgufBadMetadata, "key \"general.alignment\" is " + num(a) +
                                              ", not a non-zero power of two");
    alignment = a;
  }

  // ---- tensor infos ----
  tensors.reserve(std::min(n_tensors, kMaxReserve));
  tensor_index.reserve(std::min(n_tensors, kMaxReserve));
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    const std::string entry = "tensor info " + num(i);
    TensorInfo t{};
    t.name = CYLLM_TRY(c.str("the name of " + entry, Errc::GgufBadTensor));
    if (t.name.empty()) return Error(Errc::GgufBadTensor, entry + " has an empty name");
    if (t.name.size() > kMaxTensorNameBytes)
      return Error(Errc::GgufBadTensor, "the name of " + entry + " is " + num(t.name.size()) +
                                            " bytes long (limit " + num(kMaxTensorNameBytes) + ")");
    const std::string what = "tensor " + q(t.name);
    const std::uint32_t n_dims = CYLLM_TRY(c.u32(what));
    if (n_dims < 1 || n_dims > kMaxDims)
      return Error(Errc::GgufBadTensor, what + " has " + num(n_dims) + " dimensions (1 to " +
                                            num(kMaxDims) + " allowed)");
    t.ne.resize(n_dims);
    for (std::uint32_t d = 0; d < n_dims; ++d) t.ne[d] = CYLLM_TRY(c.u64(what));
    const std::uint32_t raw_type = CYLLM_TRY(c.u32(what));
    t.offset = CYLLM_TRY(c.u64(what));

    std::uint64_t n_elements = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      if (t.ne[d] == 0) return Error(Errc::GgufBadTensor, what + " has size 0 in dimension " + num(d));
      if (__builtin_mul_overflow(n_elements, t.ne[d], &n_elements) ||
          n_elements > static_cast<std::uint64_t>(INT64_MAX))
        return Error(Errc::GgufBadTensor, what + ": the element count of its shape overflows 63 bits");
    }
    const TypeTraits* tr = type_traits(raw_type);
    if (tr == nullptr) return Error(Errc::GgufBadTensor, what + " has unknown type " + num(raw_type));
    t.type = static_cast<TensorType>(raw_type);
    if (t.ne[0] % tr->block_elems != 0)
      return Error(Errc::GgufBadTensor, what + " has rows of " + num(t.ne[0]) + " elements, not a multiple of the " +
                                            std::string(tr->name) + " block size " + num(tr->block_elems));
    // n_elements < 2^63 and block_bytes/block_elems <= 4, so this may still overflow u64.
    if (__builtin_mul_overflow(n_elements / tr->block_elems, tr->block_bytes, &t.size_bytes))
      return Error(Errc::GgufBadTensor, what + ": its size in bytes overflows 64 bits");
    if (!tensor_index.emplace(t.name, tensors.size()).second)
      return Error(Errc::GgufBadTensor, "tensor name " + q(t.name) + " appears twice");
    tensors.push_back(std::move(t));
  }

  // ---- data section ----
  const std::uint64_t header_end = c.pos();
  if (__builtin_add_overflow(header_end, alignment - 1, &data_offset))
    return Error(Errc::GgufBadMetadata, "the alignment " + num(alignment) + " pushes the data section past 2^64");
  data_offset -= data_offset % alignment;
  for (TensorInfo& t : tensors) {
    const std::string what = "tensor " + q(t.name);
    if (t.offset % alignment != 0)
      return Error(Errc::GgufBadTensorOffset, what + " has offset " + num(t.offset) +
                                                  ", not a multiple of the alignment " + num(alignment));
    std::uint64_t start = 0, end = 0;
    if (__builtin_add_overflow(data_offset, t.offset, &start) ||
        __builtin_add_overflow(start, t.size_bytes, &end))
      return Error(Errc::GgufBadTensorOffset, what + " has offset " + num(t.offset) + " and size " +
                                                  num(t.size_bytes) + ", which overflow 64 bits");
    if (end > size)
      return Error(Errc::GgufBadTensorOffset, what + " ends at " + num(end) + " but the file is " + num(size) +
                                                  " bytes");
    t.data = base + start;
  }
  std::vector<std::size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return tensors[a].offset < tensors[b].offset; });
  for (std::size_t k = 1; k < order.size(); ++k) {
    const TensorInfo& a = tensors[order[k - 1]];
    const TensorInfo& b = tensors[order[k]];
    if (a.offset + a.size_bytes > b.offset)
      return Error(Errc::GgufBadTensorOffset,
                   "tensors " + q(a.name) + " (data bytes " + num(a.offset) + ".." + num(a.offset + a.size_bytes) +
                       ") and " + q(b.name) + " (from " + num(b.offset) + ") overlap");
  }
  return {};
}

std::uint64_t TensorInfo::n_elements() const {
  std::uint64_t n = 1;
  for (std::uint64_t d : ne) n *= d;
  return ne.empty() ? 0 : n;
}

File::File(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

Result<File> File::parse(std::span<const std::byte> bytes) {
  auto impl = std::make_unique<Impl>();
  impl->buf = std::make_unique<AlignedBuffer>(bytes.size());
  if (!bytes.empty()) std::memcpy(impl->buf->p, bytes.data(), bytes.size());
  impl->base = impl->buf->p;
  impl->size = bytes.size();
  CYLLM_TRY_VOID(impl->parse());
  return File(std::move(impl));
}

Result<File> File::open(const std::string& path, const OpenOptions& opts) {
  auto with_path = [&](Error e) { return std::move(e).with_context("while opening " + q(path)); };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    return with_path(Error(e == ENOENT ? Errc::NotFound : Errc::Io,
                           "cannot open " + q(path) + ": " + std::strerror(e)));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st{};
  if (::fstat(fd, &st) != 0)
    return with_path(Error(Errc::Io, "cannot stat " + q(path) + ": " + std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) return with_path(Error(Errc::Io, q(path) + " is not a regular file"));

  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->size = static_cast<std::uint64_t>(st.st_size);
  if (opts.use_mmap && impl->size >= kHeaderBytes) {
    int flags = MAP_PRIVATE;
    if (opts.populate) flags |= MAP_POPULATE;
    void* m = ::mmap(nullptr, impl->size, PROT_READ, flags, fd, 0);
    if (m != MAP_FAILED) {
      impl->map = m;
      impl->base = static_cast<const std::byte*>(m);
    } else if (!opts.mmap_fallback) {
      return with_path(Error(Errc::Io, "cannot map " + q(path) + ": " + std::strerror(errno)));
    }
  }
  if (impl->base == nullptr) {
    try {
      impl->buf = std::make_unique<AlignedBuffer>(impl->size);
    } catch (const std::bad_alloc&) {
      return with_path(Error(Errc::Io, "cannot allocate " + num(impl->size) + " bytes to read " + q(path)));
    }
    std::uint64_t off = 0;
    while (off < impl->size) {
      const ssize_t n = ::pread(fd, impl->buf->p + off, impl->size - off, static_cast<off_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return with_path(Error(Errc::Io, "cannot read " + q(path) + ": " + std::strerror(errno)));
      if (n == 0)
        return with_path(Error(Errc::Io, q(path) + " shrank to " + num(off) + " bytes while being read"));
      off += static_cast<std::uint64_t>(n);
    }
    impl->base = impl->buf->p;
  }
  if (auto r = impl->parse(); !r.ok()) return with_path(std::move(r).error());
  return File(std::move(impl));
}

std::uint32_t File::version() const { return impl_->version; }
std::uint64_t File::alignment() const { return impl_->alignment; }
std::uint64_t File::data_offset() const { return impl_->data_offset; }
std::uint64_t File::file_size() const { return impl_->size; }
bool File::mmapped() const { return impl_->map != nullptr; }
const std::string& File::path() const { return impl_->path; }
const std::vector<KeyValue>& File::metadata() const { return impl_->metadata; }
const std::vector<TensorInfo>& File::tensors() const { return impl_->tensors; }

const Value* File::find(std::string_view key) const {
  auto it = impl_->kv_index.find(key);
  return it == impl_->kv_index.end() ? nullptr : &impl_->metadata[it->second].value;
}

const TensorInfo* File::tensor(std::string_view name) const {
  auto it = impl_->tensor_index.find(name);
  return it == impl_->tensor_index.end() ? nullptr : &impl_->tensors[it->second];
}

namespace {

Error missing(std::string_view key) { return Error(Errc::GgufMissingKey, "key " + q(key) + " is missing"); }

Error wrong_type(std::string_view key, const Value& v, const char* expected) {
  std::string got = std::string(value_type_name(v.type()));
  if (auto i = v.as_i64(); i && *i < 0) got += " of value " + std::to_string(*i);
  return Error(Errc::GgufBadMetadata, "key " + q(key) + " is a " + got + ", expected " + expected);
}

}  // namespace

Result<std::uint64_t> File::get_u64(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  if (auto u = v->as_u64()) return *u;
  return wrong_type(key, *v, "a non-negative integer");
}

Result<double> File::get_f64(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  if (auto d = v->as_f64()) return *d;
  return wrong_type(key, *v, "a number");
}

Result<std::string_view> File::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return missing(key);
  if (auto s = v->as_string()) return *s;
  return wrong_type(key, *v, "a string");
}

Result<std::uint64_t> File::get_u64_or(std::string_view key, std::uint64_t fallback) const {
  if (find(key) == nullptr) return fallback;
  return get_u64(key);
}

Result<double> File::get_f64_or(std::string_view key, double fallback) const {
  if (find(key) == nullptr) return fallback;
  return get_f64(key);
}

}  // namespace cyllm::gguf
