// Weights rearranged once at load for kernels that compute 8 rows at a time.
//
// Layout X8 (Q4_0 and Q8_0 weights whose row count is a multiple of 8): the rows in groups
// of 8; a group holds, block after block, the 8 rows' blocks interleaved:
//   16 bytes   the 8 rows' f16 scales, row 0 first
//   then the quants in 4-byte pieces, piece p of rows 0..7 at 16 + 32 * p:
//     Q4_0: the block's 16 bytes of nibbles unchanged (4 pieces): low nibbles are elements
//           4p..4p+3, high nibbles elements 16+4p..16+4p+3;
//     Q8_0: the 32 int8 plus 128, as unsigned bytes (8 pieces): elements 4p..4p+3.
// So a 256-bit load of a piece holds 4 elements of each of the 8 rows; against 4
// activation bytes broadcast to every lane, one vpdpbusd adds 4 products to each row's own
// lane, and a block ends with each row's integer dot whole in its lane: no horizontal
// sums, and one float multiply-add per block for 8 rows.
//
// F16 weights whose column count is a multiple of 16: per 16 columns, the 8 rows' 16
// halves one after another (256 bytes; row i at 32 * i). Decoding then reads one stream in
// address order and keeps 8 independent multiply-add chains (one per row); a prompt's tile
// of 4 rows x 4 tokens reads 4 consecutive 32-byte pieces, and each output is the same
// single chain in both.
//
// Q4_K weights: per 256-column super-block, the group's 1184 bytes (148 per row, against
// 144 in the file: the scales decoded):
//   0     the 8 rows' d (f16), then at 16 their dmin (f16)
//   32    sub-block scales, 6-bit values as bytes: scale j of row i at 32 + 8 * j + i
//   96    sub-block mins as byte pairs: mins 2k, 2k+1 of row i at 96 + 16 * k + 2 * i
//   160   quants in 4-byte pieces: bytes 32k + 4p .. +3 of row i's qs at 160 + 256 * k +
//         32 * p + 4 * i (low nibbles: sub-block 2k, high: 2k + 1)
// So each sub-block's integer dot is whole in its row's lane (vpdpbusd as for Q4_0), is
// scaled by one 32-bit multiply for 8 rows, and the mins meet the activation sums in one
// vpdpwssd per pair of sub-blocks.
//
// The other layouts take the same bytes as before (8 * the row's bytes), read in address
// order.
#pragma once

#include <cstddef>

#include "cyllm/gguf.h"

namespace cyllm::model {

// True when weights of this type and shape are repacked to X8.
bool x8_supported(gguf::TensorType t, std::size_t n_rows, std::size_t n_cols);

// Bytes per row in X8 (a group of 8 rows takes 8 times that): row_bytes, or more for Q4_K.
std::size_t x8_row_bytes(gguf::TensorType t, std::size_t row_bytes);

// src: n_rows rows of row_bytes in the GGUF encoding -> dst (n_rows * x8_row_bytes) in X8.
void repack_x8(gguf::TensorType t, const std::byte* src, std::size_t row_bytes, std::size_t n_rows,
               std::byte* dst);

// Row r of X8 data back in the GGUF encoding (row_bytes into out).
void unpack_row_x8(gguf::TensorType t, const std::byte* data, std::size_t row_bytes, std::size_t r, std::byte* out);

}  // namespace cyllm::model
