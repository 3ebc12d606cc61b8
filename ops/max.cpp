// max: element-wise maximum of two tensors (with broadcasting), or of a tensor
// and the scalar attribute when there is one input.
//   a: (...), b: (...) or scalar s -> y = max(a, b)
//   da = dy * ([a > b] + [a == b] / 2)    db = dy * ([b > a] + [a == b] / 2)
// Tie rule: at a == b the gradient is split equally between the two, as
// PyTorch's torch.maximum does; the scalar's half is dropped (it has none).
// Forward on oneDNN's binary max; backward is a loop.
#include <fmt/format.h>

#include "ops/broadcast.hpp"
#include "ops/builtin.hpp"

namespace graphrun {
namespace {

struct MaxState : BinaryState {
    MaxState(float scalar) : BinaryState(dnnl::algorithm::binary_max), scalar(Shape{}) { this->scalar.fill(scalar); }
    Tensor scalar;  // b for the one-input form
};

class Max final : public Op {
public:
    explicit Max(float scalar) : scalar_(scalar) {}

    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        expect_dtype("first input", in[0], DType::f32);
        if (in.size() == 1) return {in[0]};
        expect_dtype("second input", in[1], DType::f32);
        if (scalar_ != 0.0f) throw ShapeError("max of two inputs takes no `scalar` attribute");
        return {TensorType{DType::f32, broadcast_shapes(in[0].shape, in[1].shape)}};
    }

    std::unique_ptr<OpState> make_state() const override { return std::make_unique<MaxState>(scalar_); }

    void forward(const ForwardArgs& args) const override {
        auto& state = *static_cast<MaxState*>(args.state);
        const Tensor& b = args.inputs.size() == 2 ? args.inputs[1] : state.scalar;
        state.primitive.run(args.inputs[0], b, args.outputs[0]);
    }

    void backward(const BackwardArgs& args) const override {
        auto& state = *static_cast<MaxState*>(args.state);
        const Tensor& a = args.inputs[0];
        const Tensor& b = args.inputs.size() == 2 ? args.inputs[1] : state.scalar;
        float* da = args.input_grads[0] ? args.input_grads[0]->f32() : nullptr;
        float* db = args.inputs.size() == 2 && args.input_grads[1] ? args.input_grads[1]->f32() : nullptr;
        const float* dy = args.output_grads[0].f32();
        const float* pa = a.f32();
        const float* pb = b.f32();
        BroadcastIndex(a.shape(), b.shape(), args.outputs[0].shape()).for_each([&](std::int64_t j, std::int64_t ia, std::int64_t ib) {
            const float share_a = pa[ia] > pb[ib] ? 1.0f : pa[ia] == pb[ib] ? 0.5f : 0.0f;
            if (da) da[ia] += dy[j] * share_a;
            if (db) db[ib] += dy[j] * (1.0f - share_a);
        });
    }

private:
    float scalar_;
};

}  // namespace

void register_max(OpRegistry& registry) {
    registry.add({.name = "max",
                  .summary = "element-wise max(a, b), or max(a, scalar) with one input; ties split the gradient",
                  .min_inputs = 1,
                  .max_inputs = 2,
                  .attrs = {{"scalar", AttrKind::number, AttrValue{0.0}, "the second operand when there is one input"}},
                  .make = [](const Attrs& a) { return std::make_unique<Max>(static_cast<float>(a.number("scalar"))); }});
}

}  // namespace graphrun
