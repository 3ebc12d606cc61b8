// batch_index: each row's position in the batch, as torch.arange(len(x)).
//   x: (N, ...) any dtype -> y: (N) i64,  y[n] = n
// The labels of in-batch objectives: row n of the score matrix has its
// positive in column n. No gradient: the output is integer and does not
// depend on x's values.
#include <fmt/format.h>

#include "ops/builtin.hpp"

namespace graphrun {
namespace {

class BatchIndex final : public Op {
public:
    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        if (in[0].shape.empty()) throw ShapeError(fmt::format("batch_index expects a tensor with a batch dimension (N, ...), got {}", to_string(in[0])));
        return {TensorType{DType::i64, {in[0].shape[0]}}};
    }

    void forward(const ForwardArgs& args) const override {
        std::int64_t* y = args.outputs[0].i64();
        for (std::int64_t n = 0; n < args.outputs[0].numel(); ++n) y[n] = n;
    }

    void backward(const BackwardArgs&) const override {}
};

}  // namespace

void register_batch_index(OpRegistry& registry) {
    registry.add({.name = "batch_index",
                  .summary = "each row's index in the batch: (N, ...) -> (N) i64, 0 .. N-1",
                  .min_inputs = 1,
                  .max_inputs = 1,
                  .attrs = {},
                  .make = [](const Attrs&) { return std::make_unique<BatchIndex>(); }});
}

}  // namespace graphrun
