// lstm: one LSTM layer over a sequence from a zero state, PyTorch's
// nn.LSTM(E, H, batch_first=True) with bias = bias_ih + bias_hh.
//   x: (N, T, E), weight_ih: (4H, E), weight_hh: (4H, H), bias: (4H), optional lengths: (N) i32/i64
//   -> y: (N, H) the last hidden state, or (N, T, H) every hidden state with return_sequences.
// Each step t, gates in PyTorch's order i, f, g, o (rows of the weights):
//   [a_i a_f a_g a_o] = x_t W_ih^T + h_{t-1} W_hh^T + b,   h_{-1} = c_{-1} = 0
//   c_t = sigmoid(a_f) c_{t-1} + sigmoid(a_i) tanh(a_g)
//   h_t = sigmoid(a_o) tanh(c_t)
// With lengths L (padding after the real steps, as pack_padded_sequence):
//   y[n] = h_{L[n]-1}[n] (0 when L[n] = 0);  with return_sequences y[n, t] = h_t[n] for t < L[n], else 0.
// The padding steps still run inside oneDNN's primitive (impl dnnl); their
// states are never read, and backward puts dy only at the real steps of
// diff_dst_layer (nothing into diff_dst_iter), so the weights get the gradient
// of the unpadded sequences and x gets exactly 0 at the padding steps.
// graphrun's own LSTM (the default) runs each row's real steps alone, as
// PyTorch's packed sequences: padding costs nothing there.
// Forward and backward (BPTT) run on oneDNN: ops/rnn_dnnl.hpp, the batch cut
// into parts by ops/rnn_batch.hpp.
#include <vector>

#include <fmt/format.h>

#include "ops/builtin.hpp"
#include "ops/lengths.hpp"
#include "ops/rnn_batch.hpp"

namespace graphrun {
namespace {

// The batch cut into parts, one oneDNN LSTM each, and a padded batch's
// buffers: ops/rnn_batch.hpp.
struct LstmOpState final : OpState {
    RnnBatch batch;
    std::vector<std::int64_t> lengths;  // the batch's, for graphrun's own LSTM
    std::int64_t bytes() const override { return batch.bytes(); }
};

class Lstm final : public Op {
public:
    Lstm(std::int64_t units, bool return_sequences, bool bf16, bool fused)
        : units_(units), return_sequences_(return_sequences), bf16_(bf16), fused_(fused) {}

    // x (N, T, E), W_ih (4H, E), W_hh (4H, H), b (4H) with H = units; lengths (N) integer.
    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        expect_dtype("x", in[0], DType::f32);
        expect_rank("x", in[0], 3);
        const Shape& x = in[0].shape;
        const std::int64_t N = x[0], T = x[1], E = x[2], H = units_;
        if (T == 0 || E == 0)
            throw ShapeError(fmt::format("lstm expects input (N, T, E) with T, E > 0, got {}", to_string(x)));
        expect_lstm_weights("lstm", in.subspan(1, 3), E, H);
        if (in.size() == 5) expect_lengths("lstm", in[0], in[4]);
        if (return_sequences_) return {TensorType{DType::f32, {N, T, H}}};
        return {TensorType{DType::f32, {N, H}}};
    }

    std::unique_ptr<OpState> make_state() const override { return std::make_unique<LstmOpState>(); }

    // The gate GEMMs, every step (padding steps included: an upper bound where
    // graphrun's own LSTM trains on the real steps alone): 2 N T 4H (E + H).
    double forward_flops(std::span<const TensorType> in) const override {
        const Shape& x = in[0].shape;
        return 2.0 * static_cast<double>(x[0] * x[1] * 4 * units_ * (x[2] + units_));
    }

    void forward(const ForwardArgs& args) const override {
        const Tensor& x = args.inputs[0];
        auto& state = static_cast<LstmOpState&>(*args.state);
        const std::int64_t N = x.dim(0), T = x.dim(1), E = x.dim(2), H = units_;
        const Tensor* lengths = args.inputs.size() == 5 ? &args.inputs[4] : nullptr;
        if (lengths) {
            check_lengths("lstm", *lengths, T);
            state.batch.reserve_full(N, T, H, args.training);
            state.lengths.resize(static_cast<std::size_t>(N));
            for (std::int64_t n = 0; n < N; ++n) state.lengths[static_cast<std::size_t>(n)] = length_at(*lengths, n);
        }
        state.batch.forward({N, T, E, H, args.training, bf16_, RnnCell::lstm, fused_}, data(args.inputs, args.outputs[0], state));
        // Read each row's real steps out of the full sequence.
        if (lengths) read_real_steps(*lengths, state.batch.y_full(), return_sequences_, args.outputs[0].f32());
    }

    // dy flows in as oneDNN's diff_dst_layer (every h_t) or diff_dst_iter (the
    // last h); with lengths, only into diff_dst_layer at each row's real steps.
    void backward(const BackwardArgs& args) const override {
        auto& state = static_cast<LstmOpState&>(*args.state);
        const float* dy = args.output_grads[0].f32();
        const auto grad = [&](std::size_t k) { return args.input_grads[k] ? args.input_grads[k]->f32() : nullptr; };
        RnnBackwardData g;
        g.dx = grad(0);
        g.dw_ih = grad(1);
        g.dw_hh = grad(2);
        g.dbias = grad(3);
        if (args.inputs.size() == 5) {
            scatter_dy(args.inputs[4], dy, return_sequences_, state.batch.dy_full());
            g.dy = state.batch.dy_full().f32();
        } else {
            (return_sequences_ ? g.dy : g.dh_last) = dy;
        }
        const TensorType weight_types[] = {args.inputs[1].type(), args.inputs[2].type(), args.inputs[3].type()};
        state.batch.backward(data(args.inputs, args.outputs[0], state), g, weight_types);
    }

private:
    // Without lengths, the output is oneDNN's dst_layer (N, T, H) or dst_iter
    // (N, H); the other one, and the last cell state, stay inside the state.
    // With lengths, oneDNN writes dst_layer into the batch's y_full and the
    // output is read from it.
    RnnForwardData data(std::span<const Tensor> in, const Tensor& out, LstmOpState& state) const {
        RnnForwardData d;
        d.x = in[0].f32();
        d.w_ih = in[1].f32();
        d.w_hh = in[2].f32();
        d.bias = in[3].f32();
        if (in.size() == 5) {
            d.y = state.batch.y_full().f32();
            d.lengths = state.lengths;
            return d;
        }
        float* y = const_cast<float*>(out.f32());  // backward passes the forward's output back
        (return_sequences_ ? d.y : d.h_last) = y;
        return d;
    }

    std::int64_t units_;
    bool return_sequences_;
    bool bf16_;   // bfloat16 compute (oneDNN's brgemm LSTM); float32 data and gradients outside
    bool fused_;  // impl graphrun: ops/lstm_fused.hpp, not oneDNN's primitive
};

}  // namespace

void register_lstm(OpRegistry& registry) {
    registry.add({.name = "lstm",
                  .summary = "LSTM layer over (N, T, E) from a zero state, PyTorch's weight layout and gate order; optional lengths (N) for padded batches",
                  .min_inputs = 4,
                  .max_inputs = 5,
                  .attrs = {{"units", AttrKind::integer, std::nullopt, "hidden size H; the weights must be (4H, E), (4H, H), (4H)"},
                            {"return_sequences", AttrKind::boolean, false, "output every hidden state (N, T, H), not just the last (N, H)"},
                            {"precision", AttrKind::string, std::string("f32"),
                             "f32, or bf16: inputs, weights and states rounded to bfloat16 inside (float32 accumulation, cell state "
                             "and gradients); several times faster where the CPU has AVX512-BF16"},
                            {"impl", AttrKind::string, std::string(),
                             "graphrun (graphrun's own float32 LSTM: large GEMMs over chunks of steps, fused gates; ops/lstm_fused.hpp) or "
                             "dnnl (oneDNN's LSTM primitive); empty: graphrun for f32, dnnl for bf16 (the faster on bench/run)",
                             false}},
                  .make = [](const Attrs& a) {
                      const std::string& precision = a.string("precision");
                      if (precision != "f32" && precision != "bf16") throw Error(fmt::format("lstm: precision must be f32 or bf16, got '{}'", precision));
                      // The default: graphrun's own LSTM, faster than oneDNN's float32 one
                      // in bench/run (docs/performance.md); bf16 exists on oneDNN's only.
                      const std::string impl = a.string("impl").empty() ? (precision == "bf16" ? "dnnl" : "graphrun") : a.string("impl");
                      if (impl != "dnnl" && impl != "graphrun") throw Error(fmt::format("lstm: impl must be dnnl or graphrun, got '{}'", impl));
                      if (impl == "graphrun" && precision == "bf16")
                          throw Error("lstm: impl graphrun is float32 only; precision bf16 runs on oneDNN's primitive (impl dnnl)");
                      return std::make_unique<Lstm>(a.integer("units"), a.boolean("return_sequences"), precision == "bf16", impl == "graphrun");
                  }});
}

}  // namespace graphrun
