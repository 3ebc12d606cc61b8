// sum_last: the sum over the last axis, as x.sum(dim=-1); the per-row
// reduction under the euclidean and manhattan distances.
//   x: (..., D) -> y: (...)
//   y[r] = sum_k x[r, k]      dx[r, k] += dy[r]
// Sums in double, rows of a few hundred features.
#include <fmt/format.h>

#include "ops/builtin.hpp"

namespace graphrun {
namespace {

class SumLast final : public Op {
public:
    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        expect_dtype("x", in[0], DType::f32);
        if (in[0].shape.empty()) throw ShapeError(fmt::format("sum_last expects x (..., D) with a last axis, got the scalar {}", to_string(in[0])));
        Shape out = in[0].shape;
        out.pop_back();
        return {TensorType{DType::f32, out}};
    }

    void forward(const ForwardArgs& args) const override {
        const Tensor& x = args.inputs[0];
        const std::int64_t D = x.shape().back(), rows = args.outputs[0].numel();
        for (std::int64_t r = 0; r < rows; ++r) {
            double sum = 0;
            for (std::int64_t k = 0; k < D; ++k) sum += x.f32()[r * D + k];
            args.outputs[0].f32()[r] = static_cast<float>(sum);
        }
    }

    void backward(const BackwardArgs& args) const override {
        Tensor* dx = args.input_grads[0];
        if (!dx) return;
        const std::int64_t D = dx->shape().back(), rows = args.output_grads[0].numel();
        for (std::int64_t r = 0; r < rows; ++r)
            for (std::int64_t k = 0; k < D; ++k) dx->f32()[r * D + k] += args.output_grads[0].f32()[r];
    }
};

}  // namespace

void register_sum_last(OpRegistry& registry) {
    registry.add({.name = "sum_last",
                  .summary = "the sum over the last axis: (..., D) -> (...)",
                  .min_inputs = 1,
                  .max_inputs = 1,
                  .attrs = {},
                  .make = [](const Attrs&) { return std::make_unique<SumLast>(); }});
}

}  // namespace graphrun
