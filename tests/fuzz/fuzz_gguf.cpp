// libFuzzer target: GGUF files. Invariants checked: parse never reads outside the input
// (ASan) and, when it accepts a file, every tensor lies inside it, aligned and without
// overlap; inspect_json dumps without throwing; the first row of every computable
// tensor (of every known type) dequantizes (the reader vouched for its bytes).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "cyllm/gguf.h"

using namespace cyllm::gguf;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto f = File::parse(std::span(reinterpret_cast<const std::byte*>(data), size));
  if (!f.ok()) return 0;
  CYLLM_ASSERT(f->version() == 2 || f->version() == 3);
  CYLLM_ASSERT(f->data_offset() % f->alignment() == 0);
  (void)inspect_json(*f).dump();
  std::vector<float> row;
  for (const TensorInfo& t : f->tensors()) {
    CYLLM_ASSERT(t.offset % f->alignment() == 0);
    CYLLM_ASSERT(f->data_offset() + t.offset + t.size_bytes <= f->file_size());
    CYLLM_ASSERT(f->tensor(t.name) == &t);
    const TypeTraits& tr = traits(t.type);
    CYLLM_ASSERT(t.ne[0] % tr.block_elems == 0);
    CYLLM_ASSERT(t.size_bytes == row_bytes(t.type, t.ne[0]) * t.n_rows());
    if (t.ne[0] > (1u << 20)) continue;
    row.resize(t.ne[0]);
    dequantize_row(t.type, t.data, row.data(), static_cast<std::int64_t>(t.ne[0]));
  }
  for (const KeyValue& kv : f->metadata()) {
    const Value& v = kv.value;
    CYLLM_ASSERT(f->find(kv.key) == &v);
    if (v.type() == ValueType::Array && v.size() > 0) {
      if (v.elem_type() == ValueType::String) (void)v.string_at(v.size() - 1);
      else if (v.elem_type() == ValueType::Bool) CYLLM_ASSERT(v.int_at(v.size() - 1) <= 1);
      else if (v.elem_type() != ValueType::Array) (void)v.float_at(v.size() - 1);
    }
  }
  return 0;
}
