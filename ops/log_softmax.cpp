// log_softmax: over the last axis, as torch.log_softmax(x, dim=-1).
//   x: (N, C) -> y: (N, C)
//   y[n, k] = x[n, k] - lse(x[n])             (lse: ops/log_sum_exp.hpp, stable)
//   dx[n, k] = dy[n, k] - exp(y[n, k]) sum_j dy[n, j]
// Computed as x - lse, never as log(softmax): a class far below the others
// gets a large negative value, not log(0) = -inf. The backward reads the
// output. Plain sequential loops over rows, sums in double.
#include <cmath>

#include <fmt/format.h>

#include "ops/builtin.hpp"
#include "ops/log_sum_exp.hpp"

namespace graphrun {
namespace {

class LogSoftmax final : public Op {
public:
    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        if (in[0].dtype != DType::f32 || in[0].shape.size() != 2)
            throw ShapeError(fmt::format("log_softmax expects x (N, C) of f32, got {}", to_string(in[0])));
        return {in[0]};
    }

    void forward(const ForwardArgs& args) const override {
        const Tensor& x = args.inputs[0];
        const std::int64_t N = x.dim(0), C = x.dim(1);
        float* y = args.outputs[0].f32();
        for (std::int64_t n = 0; n < N; ++n) {
            const float* row = x.f32() + n * C;
            const double lse = log_sum_exp(row, C);
            for (std::int64_t k = 0; k < C; ++k) y[n * C + k] = static_cast<float>(row[k] - lse);
        }
    }

    void backward(const BackwardArgs& args) const override {
        Tensor* dx = args.input_grads[0];
        if (!dx) return;
        const Tensor& y = args.outputs[0];
        const std::int64_t N = y.dim(0), C = y.dim(1);
        const float* dy = args.output_grads[0].f32();
        float* d = dx->f32();
        for (std::int64_t n = 0; n < N; ++n) {
            const float* yn = y.f32() + n * C;
            const float* dyn = dy + n * C;
            double total = 0;  // sum_j dy_j
            for (std::int64_t j = 0; j < C; ++j) total += dyn[j];
            for (std::int64_t k = 0; k < C; ++k) d[n * C + k] += static_cast<float>(dyn[k] - std::exp(static_cast<double>(yn[k])) * total);
        }
    }
};

}  // namespace

void register_log_softmax(OpRegistry& registry) {
    registry.add({.name = "log_softmax",
                  .summary = "log of the softmax over the last axis, stable: (N, C) -> (N, C)",
                  .min_inputs = 1,
                  .max_inputs = 1,
                  .attrs = {},
                  .make = [](const Attrs&) { return std::make_unique<LogSoftmax>(); }});
}

}  // namespace graphrun
