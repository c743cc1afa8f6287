// The avx512 kernels (see kernels_x86.inc). The target is set per function by a pragma, so
// the rest of the library keeps the baseline ISA and this code only runs when
// detect_isa() found the instructions.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "model/kernels/kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

// The intrinsics carry their own target attributes; declare them before the pragma.
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
// GCC 12's 512-bit intrinsics pass _mm512_undefined_*() as the unused merge source of
// their masked builtins, which -Wmaybe-uninitialized (or -Wuninitialized, for
// _mm512_cvtph_ps) reports once they are inlined.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#define CYLLM_VNNI 1
#define CYLLM_ISA Isa::Avx512
#define CYLLM_TABLE_NAME avx512_table
#include "model/kernels/kernels_x86.inc"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

#else

namespace cyllm::model::kernels {
const Table* avx512_table() { return nullptr; }
}  // namespace cyllm::model::kernels

#endif
