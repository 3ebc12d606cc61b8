// add, sub, mul: element-wise with NumPy broadcasting.
//   a: (...), b: (...) -> y: broadcast of the two shapes
//   add: y = a + b    da = dy          db = dy
//   sub: y = a - b    da = dy          db = -dy
//   mul: y = a * b    da = dy * b      db = dy * a
// A gradient is summed over the dimensions its input was broadcast along.
// Forward runs on oneDNN's binary primitive; backward is a loop (oneDNN has no
// backward for binary ops).
#include "ops/broadcast.hpp"
#include "ops/builtin.hpp"

namespace graphrun {
namespace {

enum class Kind { add, sub, mul };

class Binary final : public Op {
public:
    explicit Binary(Kind kind) : kind_(kind) {}

    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        expect_dtype("first input", in[0], DType::f32);
        expect_dtype("second input", in[1], DType::f32);
        return {TensorType{DType::f32, broadcast_shapes(in[0].shape, in[1].shape)}};
    }

    std::unique_ptr<OpState> make_state() const override {
        const auto algorithm = kind_ == Kind::add ? dnnl::algorithm::binary_add
                             : kind_ == Kind::sub ? dnnl::algorithm::binary_sub
                                                  : dnnl::algorithm::binary_mul;
        return std::make_unique<BinaryState>(algorithm);
    }

    void forward(const ForwardArgs& args) const override {
        static_cast<BinaryState*>(args.state)->primitive.run(args.inputs[0], args.inputs[1], args.outputs[0]);
    }

    void backward(const BackwardArgs& args) const override {
        const Tensor &a = args.inputs[0], &b = args.inputs[1];
        const float* dy = args.output_grads[0].f32();
        float* da = args.input_grads[0] ? args.input_grads[0]->f32() : nullptr;
        float* db = args.input_grads[1] ? args.input_grads[1]->f32() : nullptr;
        const float* pa = a.f32();
        const float* pb = b.f32();
        const float sign_b = kind_ == Kind::sub ? -1.0f : 1.0f;
        BroadcastIndex(a.shape(), b.shape(), args.outputs[0].shape()).for_each([&](std::int64_t j, std::int64_t ia, std::int64_t ib) {
            if (kind_ == Kind::mul) {
                if (da) da[ia] += dy[j] * pb[ib];
                if (db) db[ib] += dy[j] * pa[ia];
            } else {
                if (da) da[ia] += dy[j];
                if (db) db[ib] += sign_b * dy[j];
            }
        });
    }

private:
    Kind kind_;
};

OpDef binary_def(const char* name, const char* summary, Kind kind) {
    return {.name = name, .summary = summary, .min_inputs = 2, .max_inputs = 2, .attrs = {},
            .make = [kind](const Attrs&) { return std::make_unique<Binary>(kind); }};
}

}  // namespace

void register_binary(OpRegistry& registry) {
    registry.add(binary_def("add", "a + b, element-wise with broadcasting", Kind::add));
    registry.add(binary_def("sub", "a - b, element-wise with broadcasting", Kind::sub));
    registry.add(binary_def("mul", "a * b, element-wise with broadcasting", Kind::mul));
}

}  // namespace graphrun
