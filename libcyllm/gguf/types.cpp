// Type tables: ggml tensor types (block geometry, as ggml lays them out) and GGUF
// metadata value types.
#include "cyllm/gguf.h"

namespace cyllm::gguf {

namespace {

// Indexed by the raw ggml type number; name.empty() marks a number that is not a type we
// know (4 and 5 were Q4_2/Q4_3, removed from ggml; 16.. are IQ and other types).
constexpr TypeTraits kTraits[] = {
    /* 0 */ {"f32", 1, 4, true},
    /* 1 */ {"f16", 1, 2, true},
    /* 2 */ {"q4_0", 32, 18, true},    // f16 d; 16 bytes of nibbles
    /* 3 */ {"q4_1", 32, 20, true},    // f16 d, m; 16 bytes of nibbles
    /* 4 */ {"", 0, 0, false},
    /* 5 */ {"", 0, 0, false},
    /* 6 */ {"q5_0", 32, 22, true},    // f16 d; u32 high bits; 16 bytes of nibbles
    /* 7 */ {"q5_1", 32, 24, true},    // f16 d, m; u32 high bits; 16 bytes of nibbles
    /* 8 */ {"q8_0", 32, 34, true},    // f16 d; 32 x i8
    /* 9 */ {"q8_1", 32, 36, false},   // f16 d, s; 32 x i8
    /* 10 */ {"q2_K", 256, 84, false},  // 16 scales; 64 bytes of 2-bit quants; f16 d, dmin
    /* 11 */ {"q3_K", 256, 110, false}, // 32 hmask; 64 qs; 12 scales; f16 d
    /* 12 */ {"q4_K", 256, 144, true},  // f16 d, dmin; 12 bytes of 6-bit scales/mins; 128 qs
    /* 13 */ {"q5_K", 256, 176, true},  // f16 d, dmin; 12 scales; 32 qh; 128 qs
    /* 14 */ {"q6_K", 256, 210, true},  // 128 ql; 64 qh; 16 x i8 scales; f16 d
    /* 15 */ {"q8_K", 256, 292, false}, // f32 d; 256 x i8; 16 x i16 block sums
};
constexpr TypeTraits kBf16 = {"bf16", 1, 2, true};

}  // namespace

const TypeTraits* type_traits(std::uint32_t raw_type) {
  if (raw_type == static_cast<std::uint32_t>(TensorType::BF16)) return &kBf16;
  if (raw_type >= std::size(kTraits)) return nullptr;
  const TypeTraits* t = &kTraits[raw_type];
  return t->name.empty() ? nullptr : t;
}

std::uint64_t row_bytes(TensorType t, std::uint64_t n) {
  const TypeTraits& tr = traits(t);
  CYLLM_ASSERT(n % tr.block_elems == 0);
  return n / tr.block_elems * tr.block_bytes;
}

std::string_view value_type_name(ValueType t) {
  switch (t) {
    case ValueType::U8: return "u8";
    case ValueType::I8: return "i8";
    case ValueType::U16: return "u16";
    case ValueType::I16: return "i16";
    case ValueType::U32: return "u32";
    case ValueType::I32: return "i32";
    case ValueType::F32: return "f32";
    case ValueType::Bool: return "bool";
    case ValueType::String: return "string";
    case ValueType::Array: return "array";
    case ValueType::U64: return "u64";
    case ValueType::I64: return "i64";
    case ValueType::F64: return "f64";
  }
  return "unknown";
}

}  // namespace cyllm::gguf
