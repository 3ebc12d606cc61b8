// Gradients are summed into buffers: an op's backward adds into its inputs'
// gradients, the executor adds each use's gradient of a shared value, the
// lstm adds its batch parts' weight gradients. One loop for all of them.
#pragma once

#include <cstdint>

#include "graphrun/tensor.hpp"

namespace graphrun {

inline void add_into(float* to, const float* from, std::int64_t count) {
    for (std::int64_t j = 0; j < count; ++j) to[j] += from[j];
}

// to += from, element by element; both f32 with `from`'s element count.
inline void add_into(float* to, const Tensor& from) { add_into(to, from.f32(), from.numel()); }
inline void add_into(Tensor& to, const Tensor& from) { add_into(to.f32(), from); }

}  // namespace graphrun
