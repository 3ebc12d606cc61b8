// lstm_cell: one LSTM step from a given state, PyTorch's nn.LSTMCell(E, H)
// with bias = bias_ih + bias_hh.
//   x: (N, E), h: (N, H), c: (N, H), weight_ih: (4H, E), weight_hh: (4H, H), bias: (4H)
//   -> h': (N, H), c': (N, H)
// Gates in PyTorch's order i, f, g, o (rows of the weights):
//   [a_i a_f a_g a_o] = x W_ih^T + h W_hh^T + b
//   c' = sigmoid(a_f) c + sigmoid(a_i) tanh(a_g)
//   h' = sigmoid(a_o) tanh(c')
// It is the `lstm` primitive with T = 1 and a given initial state
// (ops/rnn_dnnl.hpp): x is (N, 1, E) to oneDNN, h' its dst_layer, c' its
// dst_iter_c; backward takes dh' and dc' and gives all six gradients.
#include <fmt/format.h>

#include "ops/builtin.hpp"
#include "ops/rnn_dnnl.hpp"

namespace graphrun {
namespace {

class LstmCell final : public Op {
public:
    explicit LstmCell(std::int64_t units) : units_(units) {}

    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        const char* names[] = {"x", "h", "c"};
        for (std::size_t k = 0; k < 3; ++k) {
            expect_dtype(names[k], in[k], DType::f32);
            expect_rank(names[k], in[k], 2);
        }
        const std::int64_t H = units_, E = in[0].shape[1];
        if (E == 0) throw ShapeError(fmt::format("lstm_cell expects x (N, E) with E > 0, got {}", to_string(in[0].shape)));
        // The batch may be open (kAnyDim) in any of x, h, c; take a known one.
        std::int64_t N = in[0].shape[0];
        for (std::size_t k = 1; k < 3; ++k) {
            const Shape& s = in[k].shape;
            if (!dims_agree(s[0], N) || !dims_agree(s[1], H))
                throw ShapeError(fmt::format("lstm_cell expects {} ({}, units={}), got {}", names[k],
                                             N == kAnyDim ? "N" : fmt::format("N={}", N), H, to_string(s)));
            if (N == kAnyDim) N = s[0];
        }
        expect_lstm_weights("lstm_cell", in.subspan(3, 3), E, H);
        return {TensorType{DType::f32, {N, H}}, TensorType{DType::f32, {N, H}}};
    }

    std::unique_ptr<OpState> make_state() const override { return std::make_unique<RnnState>(); }

    void forward(const ForwardArgs& args) const override {
        const Tensor& x = args.inputs[0];
        auto& state = static_cast<RnnState&>(*args.state);
        state.forward({x.dim(0), 1, x.dim(1), units_, args.training}, data(args.inputs, args.outputs));
    }

    // dh' flows in as oneDNN's diff_dst_layer, dc' as diff_dst_iter_c.
    void backward(const BackwardArgs& args) const override {
        auto& state = static_cast<RnnState&>(*args.state);
        const auto grad = [&](std::size_t k) { return args.input_grads[k] ? args.input_grads[k]->f32() : nullptr; };
        RnnBackwardData g;
        g.dy = args.output_grads[0].f32();
        g.dc_last = args.output_grads[1].f32();
        g.dx = grad(0);
        g.dh0 = grad(1);
        g.dc0 = grad(2);
        g.dw_ih = grad(3);
        g.dw_hh = grad(4);
        g.dbias = grad(5);
        state.backward(data(args.inputs, args.outputs), g);
    }

private:
    // h' is oneDNN's dst_layer (N, 1, H); its dst_iter, the same values, stays inside.
    static RnnForwardData data(std::span<const Tensor> in, std::span<const Tensor> out) {
        RnnForwardData d;
        d.x = in[0].f32();
        d.h0 = in[1].f32();
        d.c0 = in[2].f32();
        d.w_ih = in[3].f32();
        d.w_hh = in[4].f32();
        d.bias = in[5].f32();
        // Backward passes the forward's outputs back as const; oneDNN only reads them then.
        d.y = const_cast<float*>(out[0].f32());
        d.c_last = const_cast<float*>(out[1].f32());
        return d;
    }

    std::int64_t units_;
};

}  // namespace

void register_lstm_cell(OpRegistry& registry) {
    registry.add({.name = "lstm_cell",
                  .summary = "one LSTM step (x, h, c) -> (h', c'), PyTorch's weight layout and gate order",
                  .min_inputs = 6,
                  .max_inputs = 6,
                  .attrs = {{"units", AttrKind::integer, std::nullopt, "hidden size H; the weights must be (4H, E), (4H, H), (4H)"}},
                  .make = [](const Attrs& a) { return std::make_unique<LstmCell>(a.integer("units")); }});
}

}  // namespace graphrun
