// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors):
//   8 bytes: N, the header length, little-endian u64
//   N bytes: JSON {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}}
//   the data: raw little-endian tensors, offsets relative to the end of the header.
#pragma once

#include <map>
#include <string>

#include "graphrun/tensor.hpp"

namespace graphrun::io {

struct Checkpoint {
    std::map<std::string, Tensor> tensors;  // "<node>.<param>" -> value (see docs/checkpoints.md)
    std::map<std::string, std::string> metadata;
};

// Tensors in name order, contiguous, the header padded with spaces so the data
// starts 8-byte aligned; dtypes F32, I32, I64. Written atomically.
void write_safetensors(const std::string& path, const Checkpoint& checkpoint);

// Strict: any malformed header, unknown dtype, bad shape, or offsets that do not
// tile the data section exactly throws graphrun::Error naming the path and tensor.
Checkpoint read_safetensors(const std::string& path);

}  // namespace graphrun::io
