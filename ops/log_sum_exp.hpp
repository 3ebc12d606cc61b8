// The stable log-sum-exp of one row, shared by softmax, log_softmax and
// cross_entropy so that the trick lives in one place:
//   lse(x) = m + log(sum_k exp(x_k - m)),  m = max_k x_k
// Every exponent is <= 0, so nothing overflows, and the largest term is 1, so
// the sum is at least 1 and its log finite: logits (1000, -1000) give 1000.
// Summed in double: C is small and the rows feed a loss.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace graphrun {

// x: (C) -> lse(x); -inf for C = 0.
inline double log_sum_exp(const float* x, std::int64_t C) {
    double m = -std::numeric_limits<double>::infinity();
    for (std::int64_t k = 0; k < C; ++k) m = std::max(m, static_cast<double>(x[k]));
    if (C == 0) return m;
    double sum = 0;
    for (std::int64_t k = 0; k < C; ++k) sum += std::exp(static_cast<double>(x[k]) - m);
    return m + std::log(sum);
}

}  // namespace graphrun
