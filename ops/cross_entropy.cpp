// cross_entropy: the mean negative log-likelihood of the labelled classes, as
// torch.nn.functional.cross_entropy(logits, labels) (reduction='mean').
//   logits: (N, C) f32, labels: (N) i32 or i64 -> loss: () a scalar
//   loss = (1/N) sum_n (lse(logits[n]) - logits[n, labels[n]])   (lse: ops/log_sum_exp.hpp, stable)
//   dlogits[n, k] = dloss (softmax(logits[n])_k - [k == labels[n]]) / N
// No gradient for the labels. A label outside [0, C) is an error naming the
// row, the label and C, checked before anything is computed (PyTorch's
// ignore_index -100 is such a label here). N = 0 gives NaN, as PyTorch's mean
// of nothing. Plain sequential loops over rows, sums in double.
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "ops/builtin.hpp"
#include "ops/log_sum_exp.hpp"

namespace graphrun {
namespace {

std::int64_t label_at(const Tensor& labels, std::int64_t n) { return labels.dtype() == DType::i32 ? labels.i32()[n] : labels.i64()[n]; }

void check_labels(const Tensor& labels, std::int64_t C) {
    for (std::int64_t n = 0; n < labels.numel(); ++n) {
        const std::int64_t label = label_at(labels, n);
        if (label < 0 || label >= C)
            throw Error(fmt::format("label {} at row {} is outside the classes [0, C={})", label, n, C));
    }
}

class CrossEntropy final : public Op {
public:
    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        const TensorType &logits = in[0], &labels = in[1];
        if (logits.dtype != DType::f32 || logits.shape.size() != 2)
            throw ShapeError(fmt::format("cross_entropy expects logits (N, C) of f32, got {}", to_string(logits)));
        if (labels.dtype != DType::i32 && labels.dtype != DType::i64)
            throw ShapeError(fmt::format("cross_entropy expects labels (N) of i32 or i64, got {}", to_string(labels)));
        if (labels.shape.size() != 1 || !dims_agree(labels.shape[0], logits.shape[0]))
            throw ShapeError(fmt::format("cross_entropy expects labels (N) with the batch of logits {}, got {}", to_string(logits.shape),
                                         to_string(labels.shape)));
        return {TensorType{DType::f32, {}}};
    }

    void forward(const ForwardArgs& args) const override {
        const Tensor &logits = args.inputs[0], &labels = args.inputs[1];
        const std::int64_t N = logits.dim(0), C = logits.dim(1);
        check_labels(labels, C);
        double total = 0;
        for (std::int64_t n = 0; n < N; ++n) {
            const float* row = logits.f32() + n * C;
            total += log_sum_exp(row, C) - row[label_at(labels, n)];
        }
        args.outputs[0].f32()[0] = N == 0 ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(total / static_cast<double>(N));
    }

    void backward(const BackwardArgs& args) const override {
        Tensor* dlogits = args.input_grads[0];
        if (!dlogits) return;
        const Tensor &logits = args.inputs[0], &labels = args.inputs[1];
        const std::int64_t N = logits.dim(0), C = logits.dim(1);
        const double scale = static_cast<double>(args.output_grads[0].f32()[0]) / static_cast<double>(N);
        float* d = dlogits->f32();
        for (std::int64_t n = 0; n < N; ++n) {
            const float* row = logits.f32() + n * C;
            const double lse = log_sum_exp(row, C);
            const std::int64_t label = label_at(labels, n);
            for (std::int64_t k = 0; k < C; ++k)
                d[n * C + k] += static_cast<float>(scale * (std::exp(row[k] - lse) - (k == label ? 1.0 : 0.0)));
        }
    }
};

}  // namespace

void register_cross_entropy(OpRegistry& registry) {
    registry.add({.name = "cross_entropy",
                  .summary = "mean cross-entropy of (N, C) logits and (N) integer labels -> () a scalar",
                  .min_inputs = 2,
                  .max_inputs = 2,
                  .attrs = {},
                  .make = [](const Attrs&) { return std::make_unique<CrossEntropy>(); }});
}

}  // namespace graphrun
