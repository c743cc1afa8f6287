#include "model/repack.h"

#include <cstdint>
#include <cstring>

namespace cyllm::model {
namespace {

using T = gguf::TensorType;

struct X8Format {
  std::size_t block_bytes;  // of one row's block in the GGUF encoding
  std::size_t pieces;       // 4-byte pieces of quants per row and block
  std::uint32_t flip;       // XORed into every piece (Q8_0: each int8 -> int8 + 128)
};

X8Format format(T t) { return t == T::Q4_0 ? X8Format{18, 4, 0} : X8Format{34, 8, 0x80808080u}; }

void copy_piece(std::byte* to, const std::byte* from, std::uint32_t flip) {
  std::uint32_t v;
  std::memcpy(&v, from, 4);
  v ^= flip;
  std::memcpy(to, &v, 4);
}

// The byte offsets of row i's block inside a group's block: scale, and piece p.
constexpr std::size_t scale_at(std::size_t i) { return 2 * i; }
constexpr std::size_t piece_at(std::size_t p, std::size_t i) { return 16 + 32 * p + 4 * i; }

}  // namespace

bool x8_supported(T t, std::size_t n_rows, std::size_t n_cols) {
  if (n_rows % 8 != 0 || n_rows == 0) return false;
  return t == T::Q4_0 || t == T::Q8_0 || (t == T::F16 && n_cols % 16 == 0 && n_cols > 0);
}

void repack_x8(T t, const std::byte* src, std::size_t row_bytes, std::size_t n_rows, std::byte* dst) {
  if (t == T::F16) {  // 32-byte pieces: piece c of row i at 256 * c + 32 * i of the group
    for (std::size_t g = 0; g < n_rows / 8; ++g)
      for (std::size_t i = 0; i < 8; ++i) {
        const std::byte* row = src + (8 * g + i) * row_bytes;
        std::byte* out = dst + 8 * g * row_bytes + 32 * i;
        for (std::size_t c = 0; c < row_bytes / 32; ++c) std::memcpy(out + 256 * c, row + 32 * c, 32);
      }
    return;
  }
  const X8Format f = format(t);
  const std::size_t nb = row_bytes / f.block_bytes, group_block = 8 * f.block_bytes;
  for (std::size_t g = 0; g < n_rows / 8; ++g) {
    const std::byte* rows = src + g * 8 * row_bytes;
    std::byte* out = dst + g * 8 * row_bytes;
    for (std::size_t b = 0; b < nb; ++b, out += group_block)
      for (std::size_t i = 0; i < 8; ++i) {
        const std::byte* blk = rows + i * row_bytes + b * f.block_bytes;
        std::memcpy(out + scale_at(i), blk, 2);
        for (std::size_t p = 0; p < f.pieces; ++p) copy_piece(out + piece_at(p, i), blk + 2 + 4 * p, f.flip);
      }
  }
}

void unpack_row_x8(T t, const std::byte* data, std::size_t row_bytes, std::size_t r, std::byte* out) {
  if (t == T::F16) {
    const std::byte* in = data + r / 8 * 8 * row_bytes + 32 * (r % 8);
    for (std::size_t c = 0; c < row_bytes / 32; ++c) std::memcpy(out + 32 * c, in + 256 * c, 32);
    return;
  }
  const X8Format f = format(t);
  const std::size_t nb = row_bytes / f.block_bytes, group_block = 8 * f.block_bytes, i = r % 8;
  const std::byte* in = data + r / 8 * 8 * row_bytes;
  for (std::size_t b = 0; b < nb; ++b, in += group_block) {
    std::byte* blk = out + b * f.block_bytes;
    std::memcpy(blk, in + scale_at(i), 2);
    for (std::size_t p = 0; p < f.pieces; ++p) copy_piece(blk + 2 + 4 * p, in + piece_at(p, i), f.flip);
  }
}

}  // namespace cyllm::model
