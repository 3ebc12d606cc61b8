// constant: a scalar float, () -> y: ()
// Used by losses: the margin, the 1 in `1 - cosine`. It has no inputs and no gradient.
#include <fmt/format.h>

#include "ops/builtin.hpp"

namespace graphrun {
namespace {

class Constant final : public Op {
public:
    explicit Constant(float value) : value_(value) {}

    std::vector<TensorType> infer(std::span<const TensorType>) const override { return {TensorType{DType::f32, {}}}; }

    void forward(const ForwardArgs& args) const override { args.outputs[0].fill(value_); }

    void backward(const BackwardArgs&) const override {}

private:
    float value_;
};

}  // namespace

void register_constant(OpRegistry& registry) {
    registry.add({.name = "constant",
                  .summary = "a scalar float constant",
                  .min_inputs = 0,
                  .max_inputs = 0,
                  .attrs = {{"value", AttrKind::number, std::nullopt, "the constant's value"}},
                  .make = [](const Attrs& a) { return std::make_unique<Constant>(static_cast<float>(a.number("value"))); }});
}

}  // namespace graphrun
