// NumPy broadcasting for the element-wise binary ops (add, sub, mul, max):
// the shape rule, a oneDNN binary primitive that computes the forward, and the
// index mapping the backward uses to sum a gradient back to a broadcast input.
#pragma once

#include <dnnl.hpp>

#include "engine/core/op.hpp"

namespace graphrun {

// The broadcast of two shapes, aligned at their last dimension; ShapeError when
// they do not broadcast. oneDNN's binary primitive can only broadcast its
// second source, so when both inputs need broadcasting (e.g. (N, 1) and (1, D))
// this is refused too, with a message saying so.
Shape broadcast_shapes(const Shape& a, const Shape& b);

// For each element of `out` (row-major), the offsets into a and b, where a
// broadcast dimension has stride 0. Used by the backward passes.
class BroadcastIndex {
public:
    BroadcastIndex(const Shape& a, const Shape& b, const Shape& out);
    template <class F>
    void for_each(F&& f) const {  // f(out_offset, a_offset, b_offset)
        std::vector<std::int64_t> index(out_.size(), 0);
        std::int64_t ia = 0, ib = 0;
        const std::int64_t count = element_count(out_);
        for (std::int64_t j = 0; j < count; ++j) {
            f(j, ia, ib);
            for (std::size_t d = out_.size(); d-- > 0;) {  // odometer step
                ia += stride_a_[d];
                ib += stride_b_[d];
                if (++index[d] < out_[d]) break;
                ia -= stride_a_[d] * out_[d];
                ib -= stride_b_[d] * out_[d];
                index[d] = 0;
            }
        }
    }

private:
    Shape out_;
    std::vector<std::int64_t> stride_a_, stride_b_;
};

// out = a (op) b with broadcasting, on oneDNN's binary primitive. The
// primitive is created once per shape pair and kept here.
class BinaryPrimitive {
public:
    explicit BinaryPrimitive(dnnl::algorithm algorithm) : algorithm_(algorithm) {}
    void run(const Tensor& a, const Tensor& b, Tensor& out);

private:
    dnnl::algorithm algorithm_;
    Shape a_shape_, b_shape_;
    bool swapped_ = false;
    dnnl::memory::desc src0_, src1_, dst_;
    dnnl::binary primitive_;
};

struct BinaryState : OpState {
    explicit BinaryState(dnnl::algorithm algorithm) : primitive(algorithm) {}
    BinaryPrimitive primitive;
};

}  // namespace graphrun
