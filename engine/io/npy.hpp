// NumPy .npy files: token ids and labels in, predictions out.
// Spec: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
#pragma once

#include <string>

#include "graphrun/tensor.hpp"

namespace graphrun::io {

// Reads format versions 1.0, 2.0 and 3.0, C order, little-endian only.
// '<i4' -> i32, '<i8' -> i64, '<f4' -> f32, '<f8' -> f32 (rounded).
// Anything else (other dtypes, big-endian, Fortran order, a malformed header,
// truncated or trailing data) throws graphrun::Error naming the path.
Tensor read_npy(const std::string& path);

// Writes version 1.0 (2.0 if the header would not fit), C order, little-endian,
// header padded to a multiple of 64 bytes as NumPy does; atomically.
void write_npy(const std::string& path, const Tensor& t);

}  // namespace graphrun::io
