// Initial values for a graph's parameters, drawn the way PyTorch's layers draw
// theirs, from the rule each parameter node carries in its attrs:
//   {"init": "normal", "std": s}        N(0, s^2)           (nn.Embedding: s = 1)
//   {"init": "uniform", "bound": b}     U(-b, b)            (nn.LSTM: 1/sqrt(H); nn.Linear: 1/sqrt(in))
//   {"init": "zeros"} or no rule        zeros
#pragma once

#include <cstdint>

#include "engine/core/executor.hpp"

namespace graphrun {

// Sets every parameter of the executor's graph; the same seed gives the same values.
void initialize_parameters(Executor& executor, std::uint64_t seed);

}  // namespace graphrun
