// square, relu, sigmoid, tanh, sqrt, abs, exp: element-wise, x: (...) -> y: same shape.
//   square:  y = x^2                 dx = dy * 2x
//   relu:    y = max(x, 0)           dx = dy * [x > 0]   (0 at x = 0, as PyTorch)
//   sigmoid: y = 1 / (1 + e^-x)      dx = dy * y (1 - y)
//   tanh:    y = tanh(x)             dx = dy * (1 - y^2)
//   sqrt:    y = sqrt(x)             dx = dy / (2 y)      (inf at x = 0, as PyTorch)
//   abs:     y = |x|                 dx = dy * sign(x)    (0 at x = 0, as PyTorch)
//   exp:     y = e^x                 dx = dy * y
// Forward and backward both run on oneDNN's eltwise primitives, created once
// per shape. oneDNN's backward writes its result, so it goes to a scratch
// tensor that is then added into the input gradient.
#include "engine/core/accumulate.hpp"
#include "engine/core/dnnl_context.hpp"
#include "ops/builtin.hpp"

namespace graphrun {
namespace {

struct UnaryState : OpState {
    Shape shape;
    dnnl::eltwise_forward forward;
    dnnl::eltwise_backward backward;
    Tensor scratch;  // dx before it is added into the input gradient
};

class Unary final : public Op {
public:
    explicit Unary(dnnl::algorithm algorithm) : algorithm_(algorithm) {}

    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        expect_dtype("input", in[0], DType::f32);
        return {in[0]};
    }

    std::unique_ptr<OpState> make_state() const override { return std::make_unique<UnaryState>(); }

    void forward(const ForwardArgs& args) const override {
        auto& state = prepare(*static_cast<UnaryState*>(args.state), args.inputs[0]);
        state.forward.execute(cpu_stream(), {{DNNL_ARG_SRC, as_memory(args.inputs[0])}, {DNNL_ARG_DST, as_memory(args.outputs[0])}});
        cpu_stream().wait();
    }

    void backward(const BackwardArgs& args) const override {
        Tensor* dx = args.input_grads[0];
        if (!dx) return;
        auto& state = prepare(*static_cast<UnaryState*>(args.state), args.inputs[0]);
        state.backward.execute(cpu_stream(), {{DNNL_ARG_SRC, as_memory(args.inputs[0])},
                                              {DNNL_ARG_DIFF_DST, as_memory(args.output_grads[0])},
                                              {DNNL_ARG_DIFF_SRC, as_memory(state.scratch)}});
        cpu_stream().wait();
        add_into(*dx, state.scratch);
    }

private:
    // Creates the primitives for this shape once; a new batch size makes new ones.
    UnaryState& prepare(UnaryState& state, const Tensor& x) const {
        if (state.forward && state.shape == x.shape()) return state;
        state.shape = x.shape();
        const auto desc = as_memory(x).get_desc();
        dnnl::eltwise_forward::primitive_desc fwd({dnnl::prop_kind::forward_training, algorithm_, desc, 0.0f, 0.0f}, cpu_engine());
        dnnl::eltwise_backward::primitive_desc bwd({algorithm_, desc, desc, 0.0f, 0.0f}, cpu_engine(), fwd);
        state.forward = make_primitive<dnnl::eltwise_forward>(fwd);
        state.backward = make_primitive<dnnl::eltwise_backward>(bwd);
        state.scratch = Tensor(x.type());
        return state;
    }

    dnnl::algorithm algorithm_;
};

OpDef unary_def(const char* name, const char* summary, dnnl::algorithm algorithm) {
    return {.name = name, .summary = summary, .min_inputs = 1, .max_inputs = 1, .attrs = {},
            .make = [algorithm](const Attrs&) { return std::make_unique<Unary>(algorithm); }};
}

}  // namespace

void register_unary(OpRegistry& registry) {
    registry.add(unary_def("square", "x^2, element-wise", dnnl::algorithm::eltwise_square));
    registry.add(unary_def("relu", "max(x, 0), element-wise", dnnl::algorithm::eltwise_relu));
    registry.add(unary_def("sigmoid", "1 / (1 + exp(-x)), element-wise", dnnl::algorithm::eltwise_logistic));
    registry.add(unary_def("tanh", "tanh(x), element-wise", dnnl::algorithm::eltwise_tanh));
    registry.add(unary_def("sqrt", "sqrt(x), element-wise", dnnl::algorithm::eltwise_sqrt));
    registry.add(unary_def("abs", "|x|, element-wise", dnnl::algorithm::eltwise_abs));
    registry.add(unary_def("exp", "exp(x), element-wise", dnnl::algorithm::eltwise_exp));
}

}  // namespace graphrun
