// lstm: one LSTM layer over a sequence from a zero state, PyTorch's
// nn.LSTM(E, H, batch_first=True) with bias = bias_ih + bias_hh.
//   x: (N, T, E), weight_ih: (4H, E), weight_hh: (4H, H), bias: (4H)
//   -> y: (N, H) the last hidden state, or (N, T, H) every hidden state with return_sequences.
// Each step t, gates in PyTorch's order i, f, g, o (rows of the weights):
//   [a_i a_f a_g a_o] = x_t W_ih^T + h_{t-1} W_hh^T + b,   h_{-1} = c_{-1} = 0
//   c_t = sigmoid(a_f) c_{t-1} + sigmoid(a_i) tanh(a_g)
//   h_t = sigmoid(a_o) tanh(c_t)
// Forward and backward (BPTT) run on oneDNN: ops/lstm_dnnl.hpp.
#include <fmt/format.h>

#include "ops/builtin.hpp"
#include "ops/lstm_dnnl.hpp"

namespace graphrun {
namespace {

class Lstm final : public Op {
public:
    Lstm(std::int64_t units, bool return_sequences) : units_(units), return_sequences_(return_sequences) {}

    // x (N, T, E), W_ih (4H, E), W_hh (4H, H), b (4H) with H = units.
    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        expect_dtype("x", in[0], DType::f32);
        expect_rank("x", in[0], 3);
        const Shape& x = in[0].shape;
        const std::int64_t N = x[0], T = x[1], E = x[2], H = units_;
        if (T == 0 || E == 0)
            throw ShapeError(fmt::format("lstm expects input (N, T, E) with T, E > 0, got {}", to_string(x)));
        expect_lstm_weights("lstm", in.subspan(1, 3), E, H);
        if (return_sequences_) return {TensorType{DType::f32, {N, T, H}}};
        return {TensorType{DType::f32, {N, H}}};
    }

    std::unique_ptr<OpState> make_state() const override { return std::make_unique<LstmState>(); }

    void forward(const ForwardArgs& args) const override {
        const Tensor& x = args.inputs[0];
        auto& state = static_cast<LstmState&>(*args.state);
        state.forward({x.dim(0), x.dim(1), x.dim(2), units_}, data(args.inputs, args.outputs[0]));
    }

    // dy flows in as oneDNN's diff_dst_layer (every h_t) or diff_dst_iter (the last h).
    void backward(const BackwardArgs& args) const override {
        auto& state = static_cast<LstmState&>(*args.state);
        const float* dy = args.output_grads[0].f32();
        const auto grad = [&](std::size_t k) { return args.input_grads[k] ? args.input_grads[k]->f32() : nullptr; };
        LstmBackwardData g;
        (return_sequences_ ? g.dy : g.dh_last) = dy;
        g.dx = grad(0);
        g.dw_ih = grad(1);
        g.dw_hh = grad(2);
        g.dbias = grad(3);
        state.backward(data(args.inputs, args.outputs[0]), g);
    }

private:
    // The output is oneDNN's dst_layer (N, T, H) or dst_iter (N, H); the other
    // one, and the last cell state, stay inside the state.
    LstmForwardData data(std::span<const Tensor> in, const Tensor& out) const {
        LstmForwardData d;
        d.x = in[0].f32();
        d.w_ih = in[1].f32();
        d.w_hh = in[2].f32();
        d.bias = in[3].f32();
        float* y = const_cast<float*>(out.f32());  // backward passes the forward's output back
        (return_sequences_ ? d.y : d.h_last) = y;
        return d;
    }

    std::int64_t units_;
    bool return_sequences_;
};

}  // namespace

void register_lstm(OpRegistry& registry) {
    registry.add({.name = "lstm",
                  .summary = "LSTM layer over (N, T, E) from a zero state, PyTorch's weight layout and gate order",
                  .min_inputs = 4,
                  .max_inputs = 4,
                  .attrs = {{"units", AttrKind::integer, std::nullopt, "hidden size H; the weights must be (4H, E), (4H, H), (4H)"},
                            {"return_sequences", AttrKind::boolean, false, "output every hidden state (N, T, H), not just the last (N, H)"}},
                  .make = [](const Attrs& a) { return std::make_unique<Lstm>(a.integer("units"), a.boolean("return_sequences")); }});
}

}  // namespace graphrun
