// Small tensors and one-op graphs the tests build again and again: integer
// tensors (ids, lengths, labels), a row or a run of steps of a batch, an op run
// alone, and a spec's layers run over one padded row of ids.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/attrs.hpp"
#include "graphrun/tensor.hpp"

namespace graphrun::testing {

// An i32 or i64 tensor of `shape` holding `values` (as many as the shape holds).
Tensor int_tensor(DType dtype, Shape shape, const std::vector<std::int64_t>& values);
// Element j of an i32 or i64 tensor.
std::int64_t int_at(const Tensor& t, std::int64_t j);

// Row n of a tensor whose first dimension is the batch, as (1, ...), any dtype.
Tensor row_of(const Tensor& t, std::int64_t n);
// Steps [begin, end) of row n of a (N, T, ...) tensor, as (1, end - begin, ...), any dtype.
Tensor steps_of(const Tensor& t, std::int64_t n, std::int64_t begin, std::int64_t end);

// One `op` node run forward (inference) on `inputs`, each fed as a graph input; its first output.
Tensor run_op(const std::string& op, const std::vector<Tensor>& inputs, const Attrs& attrs = {});

// The spec's `nodes` (YAML lines) after an embedding (vocab 20, dim 5) of one
// row of ids padded with 0 to T, the output node named `out`; weights from seed 11.
std::vector<float> embed_padded(const std::string& nodes, std::int64_t T, const std::vector<std::int32_t>& tokens);

}  // namespace graphrun::testing
