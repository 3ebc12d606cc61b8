// The optional `lengths` input of the ops that read padded sequences (lstm,
// max_pool, mean_pool, reverse_sequence): (N) i32 or i64, the real steps of
// each row, padding after them.
#pragma once

#include <fmt/format.h>

#include "engine/core/op.hpp"

namespace graphrun {

// Shape rule: lengths (N) of i32 or i64 with the batch of x. Throws ShapeError naming `op`.
inline void expect_lengths(const char* op, const TensorType& x, const TensorType& lengths) {
    if ((lengths.dtype != DType::i32 && lengths.dtype != DType::i64) || lengths.shape.size() != 1 || !dims_agree(lengths.shape[0], x.shape.at(0)))
        throw ShapeError(fmt::format("{} expects lengths (N) of i32 or i64 with the batch of x {}, got {}", op, to_string(x.shape), to_string(lengths)));
}

inline std::int64_t length_at(const Tensor& lengths, std::int64_t n) {
    return lengths.dtype() == DType::i32 ? lengths.i32()[n] : lengths.i64()[n];
}

// Row n's length, which must lie in [0, T].
inline std::int64_t checked_length(const char* op, const Tensor& lengths, std::int64_t n, std::int64_t T) {
    const std::int64_t L = length_at(lengths, n);
    if (L < 0 || L > T) throw Error(fmt::format("{} expects lengths in [0, T={}], got {} for row {}", op, T, L, n));
    return L;
}

}  // namespace graphrun
