// transpose: the matrix transposed, as x.T in PyTorch.
//   x: (A, B) -> y: (B, A),  y[b, a] = x[a, b]
//   dx[a, b] = dy[b, a]
// In-batch objectives score right against left with the transposed score
// matrix (the symmetric in_batch_softmax).
#include <fmt/format.h>

#include "ops/builtin.hpp"

namespace graphrun {
namespace {

class Transpose final : public Op {
public:
    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        expect_dtype("x", in[0], DType::f32);
        expect_rank("x", in[0], 2);
        return {TensorType{DType::f32, {in[0].shape[1], in[0].shape[0]}}};
    }

    void forward(const ForwardArgs& args) const override {
        const Tensor& x = args.inputs[0];
        const std::int64_t A = x.dim(0), B = x.dim(1);
        float* y = args.outputs[0].f32();
        for (std::int64_t a = 0; a < A; ++a)
            for (std::int64_t b = 0; b < B; ++b) y[b * A + a] = x.f32()[a * B + b];
    }

    void backward(const BackwardArgs& args) const override {
        Tensor* dx = args.input_grads[0];
        if (!dx) return;
        const std::int64_t A = dx->dim(0), B = dx->dim(1);
        const float* dy = args.output_grads[0].f32();
        for (std::int64_t a = 0; a < A; ++a)
            for (std::int64_t b = 0; b < B; ++b) dx->f32()[a * B + b] += dy[b * A + a];
    }
};

}  // namespace

void register_transpose(OpRegistry& registry) {
    registry.add({.name = "transpose",
                  .summary = "a matrix transposed: (A, B) -> (B, A)",
                  .min_inputs = 1,
                  .max_inputs = 1,
                  .attrs = {},
                  .make = [](const Attrs&) { return std::make_unique<Transpose>(); }});
}

}  // namespace graphrun
