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

// Q4_K: a row's block is d, dmin (f16), 12 bytes of 6-bit scales and mins, 128 of quants.
constexpr std::size_t kQ4KBlock = 144, kQ4KGroupBlock = 1184;

void repack_q4_k(const std::byte* src, std::size_t row_bytes, std::size_t n_rows, std::byte* dst) {
  const std::size_t nb = row_bytes / kQ4KBlock;
  for (std::size_t g = 0; g < n_rows / 8; ++g)
    for (std::size_t b = 0; b < nb; ++b) {
      std::byte* out = dst + (g * nb + b) * kQ4KGroupBlock;
      for (std::size_t i = 0; i < 8; ++i) {
        const auto* blk = reinterpret_cast<const std::uint8_t*>(src + (8 * g + i) * row_bytes + b * kQ4KBlock);
        std::memcpy(out + 2 * i, blk, 2);
        std::memcpy(out + 16 + 2 * i, blk + 2, 2);
        const std::uint8_t* s = blk + 4;
        for (int j = 0; j < 8; ++j) {  // the 6-bit scale and min of sub-block j
          const int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
          const int m = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
          out[32 + 8 * j + i] = static_cast<std::byte>(sc);
          out[96 + 16 * (j / 2) + 2 * i + j % 2] = static_cast<std::byte>(m);
        }
        for (std::size_t k = 0; k < 4; ++k)
          for (std::size_t p = 0; p < 8; ++p) std::memcpy(out + 160 + 256 * k + 32 * p + 4 * i, blk + 16 + 32 * k + 4 * p, 4);
      }
    }
}

void unpack_row_q4_k(const std::byte* data, std::size_t row_bytes, std::size_t r, std::byte* out) {
  const std::size_t nb = row_bytes / kQ4KBlock, i = r % 8;
  for (std::size_t b = 0; b < nb; ++b) {
    const auto* in = reinterpret_cast<const std::uint8_t*>(data + (r / 8 * nb + b) * kQ4KGroupBlock);
    auto* blk = reinterpret_cast<std::uint8_t*>(out + b * kQ4KBlock);
    std::memcpy(blk, in + 2 * i, 2);
    std::memcpy(blk + 2, in + 16 + 2 * i, 2);
    int sc[8], m[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = in[32 + 8 * j + i];
      m[j] = in[96 + 16 * (j / 2) + 2 * i + j % 2];
    }
    std::uint8_t* s = blk + 4;  // the inverse of the decoding in repack_q4_k: every bit is used
    for (int j = 0; j < 4; ++j) {
      s[j] = static_cast<std::uint8_t>(sc[j] | (sc[j + 4] >> 4) << 6);
      s[j + 4] = static_cast<std::uint8_t>(m[j] | (m[j + 4] >> 4) << 6);
      s[j + 8] = static_cast<std::uint8_t>((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
    }
    for (std::size_t k = 0; k < 4; ++k)
      for (std::size_t p = 0; p < 8; ++p) std::memcpy(blk + 16 + 32 * k + 4 * p, in + 160 + 256 * k + 32 * p + 4 * i, 4);
  }
}

}  // namespace

bool x8_supported(T t, std::size_t n_rows, std::size_t n_cols) {
  if (n_rows % 8 != 0 || n_rows == 0) return false;
  return t == T::Q4_0 || t == T::Q8_0 || t == T::Q4_K || (t == T::F16 && n_cols % 16 == 0 && n_cols > 0);
}

std::size_t x8_row_bytes(T t, std::size_t row_bytes) {
  return t == T::Q4_K ? row_bytes / kQ4KBlock * (kQ4KGroupBlock / 8) : row_bytes;
}

void repack_x8(T t, const std::byte* src, std::size_t row_bytes, std::size_t n_rows, std::byte* dst) {
  if (t == T::Q4_K) return repack_q4_k(src, row_bytes, n_rows, dst);
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
  if (t == T::Q4_K) return unpack_row_q4_k(data, row_bytes, r, out);
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
