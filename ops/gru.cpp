// gru: one GRU layer over a sequence from a zero state, PyTorch's
// nn.GRU(E, H, batch_first=True).
//   x: (N, T, E), weight_ih: (3H, E), weight_hh: (3H, H), bias_ih: (3H), bias_hh: (3H), optional lengths: (N) i32/i64
//   -> y: (N, H) the last hidden state, or (N, T, H) every hidden state with return_sequences.
// Each step t, gates in PyTorch's order r, z, n (row blocks of the weights and biases):
//   r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
//   z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
//   n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
//   h_t = (1 - z) n + z h_{t-1},   h_{-1} = 0
// This is oneDNN's linear-before-reset GRU with its gates u, r, o (u = z,
// o = n) and a bias of 4 gates, the 4th inside r * (...). Forward reorders
// PyTorch's row blocks into oneDNN's order, backward the gradients back:
//   W = [W_z; W_r; W_n] (for W_ih and W_hh),  b = [b_iz + b_hz, b_ir + b_hr, b_in, b_hn]
//   dW_r = dW[1], dW_z = dW[0], dW_n = dW[2];  db_ir = db_hr = db[1], db_iz = db_hz = db[0], db_in = db[2], db_hn = db[3]
// With lengths L (padding after the real steps, as pack_padded_sequence), as lstm:
//   y[n] = h_{L[n]-1}[n] (0 when L[n] = 0);  with return_sequences y[n, t] = h_t[n] for t < L[n], else 0;
// backward puts dy only at the real steps, so the weights get the gradient of
// the unpadded sequences and x gets exactly 0 at the padding steps.
// Forward and backward (BPTT) run on oneDNN (lbr_gru_forward / lbr_gru_backward,
// ops/rnn_dnnl.hpp), the batch cut into parts by ops/rnn_batch.hpp.
#include <cstring>

#include <fmt/format.h>

#include "ops/builtin.hpp"
#include "ops/lengths.hpp"
#include "ops/rnn_batch.hpp"

namespace graphrun {
namespace {

// oneDNN's gate g (u, r, o) is PyTorch's gate kTorchGate[g] (z, r, n).
constexpr std::int64_t kTorchGate[3] = {1, 0, 2};

// The batch and oneDNN's copies of the weights, allocated once per shape.
struct GruOpState final : OpState {
    RnnBatch batch;
    Tensor w_ih, w_hh, bias;     // (3H, E), (3H, H), (4H) in oneDNN's gate order u, r, o (bias: u, r, o, u')
    Tensor dw_ih, dw_hh, dbias;  // their gradients, the parts' summed

    std::int64_t bytes() const override {
        std::int64_t total = batch.bytes();
        for (const Tensor* t : {&w_ih, &w_hh, &bias, &dw_ih, &dw_hh, &dbias}) total += static_cast<std::int64_t>(t->bytes());
        return total;
    }

    void reserve(std::int64_t E, std::int64_t H) {
        if (w_ih.defined() && w_ih.dim(0) == 3 * H && w_ih.dim(1) == E) return;
        w_ih = Tensor(Shape{3 * H, E});
        w_hh = Tensor(Shape{3 * H, H});
        bias = Tensor(Shape{4 * H});
        dw_ih = Tensor(Shape{3 * H, E});
        dw_hh = Tensor(Shape{3 * H, H});
        dbias = Tensor(Shape{4 * H});
    }
};

// Copies the row blocks of a (3H, D) weight into oneDNN's gate order.
void to_dnnl_gates(const float* torch, float* dnnl, std::int64_t H, std::int64_t D) {
    const std::int64_t block = H * D;
    for (std::int64_t g = 0; g < 3; ++g)
        std::memcpy(dnnl + g * block, torch + kTorchGate[g] * block, static_cast<std::size_t>(block) * sizeof(float));
}

// dtorch += dnnl's row blocks, back in PyTorch's gate order.
void add_torch_gates(const float* dnnl, float* torch, std::int64_t H, std::int64_t D) {
    const std::int64_t block = H * D;
    for (std::int64_t g = 0; g < 3; ++g) {
        const float* from = dnnl + g * block;
        float* to = torch + kTorchGate[g] * block;
        for (std::int64_t j = 0; j < block; ++j) to[j] += from[j];
    }
}

class Gru final : public Op {
public:
    Gru(std::int64_t units, bool return_sequences) : units_(units), return_sequences_(return_sequences) {}

    // x (N, T, E), W_ih (3H, E), W_hh (3H, H), b_ih (3H), b_hh (3H) with H = units; lengths (N) integer.
    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        expect_dtype("x", in[0], DType::f32);
        expect_rank("x", in[0], 3);
        const Shape& x = in[0].shape;
        const std::int64_t N = x[0], T = x[1], E = x[2], H = units_;
        if (T == 0 || E == 0) throw ShapeError(fmt::format("gru expects input (N, T, E) with T, E > 0, got {}", to_string(x)));
        if (H <= 0) throw ShapeError(fmt::format("gru expects units > 0, got {}", H));
        const char* names[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
        const Shape want[] = {{3 * H, E}, {3 * H, H}, {3 * H}, {3 * H}};
        const char* rule[] = {"(3*units={}, E={})", "(3*units={}, units={})", "(3*units={})", "(3*units={})"};
        for (std::size_t k = 0; k < 4; ++k) {
            expect_dtype(names[k], in[k + 1], DType::f32);
            const Shape& have = in[k + 1].shape;
            bool ok = have.size() == want[k].size();
            for (std::size_t d = 0; ok && d < have.size(); ++d) ok = dims_agree(have[d], want[k][d]);
            if (!ok)
                throw ShapeError(fmt::format("gru expects {} {}, got {}", names[k],
                                             fmt::format(fmt::runtime(rule[k]), 3 * H, k == 0 ? E : H), to_string(have)));
        }
        if (in.size() == 6) expect_lengths("gru", in[0], in[5]);
        if (return_sequences_) return {TensorType{DType::f32, {N, T, H}}};
        return {TensorType{DType::f32, {N, H}}};
    }

    std::unique_ptr<OpState> make_state() const override { return std::make_unique<GruOpState>(); }

    // The gate GEMMs, every step (padding steps run too): 2 N T 3H (E + H).
    double forward_flops(std::span<const TensorType> in) const override {
        const Shape& x = in[0].shape;
        return 2.0 * static_cast<double>(x[0] * x[1] * 3 * units_ * (x[2] + units_));
    }

    void forward(const ForwardArgs& args) const override {
        const Tensor& x = args.inputs[0];
        auto& state = static_cast<GruOpState&>(*args.state);
        const std::int64_t N = x.dim(0), T = x.dim(1), E = x.dim(2), H = units_;
        const Tensor* lengths = args.inputs.size() == 6 ? &args.inputs[5] : nullptr;
        if (lengths) {
            check_lengths("gru", *lengths, T);
            state.batch.reserve_full(N, T, H, args.training);
        }
        // W = [W_z; W_r; W_n], b = [b_iz + b_hz, b_ir + b_hr, b_in, b_hn].
        state.reserve(E, H);
        to_dnnl_gates(args.inputs[1].f32(), state.w_ih.f32(), H, E);
        to_dnnl_gates(args.inputs[2].f32(), state.w_hh.f32(), H, H);
        const float* b_ih = args.inputs[3].f32();
        const float* b_hh = args.inputs[4].f32();
        float* b = state.bias.f32();
        for (std::int64_t g = 0; g < 2; ++g)
            for (std::int64_t k = 0; k < H; ++k) b[g * H + k] = b_ih[kTorchGate[g] * H + k] + b_hh[kTorchGate[g] * H + k];
        std::memcpy(b + 2 * H, b_ih + 2 * H, static_cast<std::size_t>(H) * sizeof(float));
        std::memcpy(b + 3 * H, b_hh + 2 * H, static_cast<std::size_t>(H) * sizeof(float));

        state.batch.forward({N, T, E, H, args.training, false, RnnCell::lbr_gru}, data(args.inputs, args.outputs[0], state));
        // Read each row's real steps out of the full sequence.
        if (lengths) read_real_steps(*lengths, state.batch.y_full(), return_sequences_, args.outputs[0].f32());
    }

    // dy flows in as oneDNN's diff_dst_layer (every h_t) or diff_dst_iter (the
    // last h); with lengths, only into diff_dst_layer at each row's real steps.
    // The weight gradients come out in oneDNN's order and are added back in PyTorch's.
    void backward(const BackwardArgs& args) const override {
        auto& state = static_cast<GruOpState&>(*args.state);
        const Tensor& x = args.inputs[0];
        const std::int64_t E = x.dim(2), H = units_;
        const float* dy = args.output_grads[0].f32();
        const auto grad = [&](std::size_t k) { return args.input_grads[k] ? args.input_grads[k]->f32() : nullptr; };
        float* const db_ih = grad(3);
        float* const db_hh = grad(4);
        RnnBackwardData g;
        g.dx = grad(0);
        if (grad(1)) g.dw_ih = state.dw_ih.f32();
        if (grad(2)) g.dw_hh = state.dw_hh.f32();
        if (db_ih || db_hh) g.dbias = state.dbias.f32();
        for (Tensor* t : {&state.dw_ih, &state.dw_hh, &state.dbias}) t->zero();
        if (args.inputs.size() == 6) {
            scatter_dy(args.inputs[5], dy, return_sequences_, state.batch.dy_full());
            g.dy = state.batch.dy_full().f32();
        } else {
            (return_sequences_ ? g.dy : g.dh_last) = dy;
        }
        const TensorType weight_types[] = {state.dw_ih.type(), state.dw_hh.type(), state.dbias.type()};
        state.batch.backward(data(args.inputs, args.outputs[0], state), g, weight_types);

        // dW_r = dW[1], dW_z = dW[0], dW_n = dW[2]; the biases summed in forward share their gradient.
        if (g.dw_ih) add_torch_gates(state.dw_ih.f32(), grad(1), H, E);
        if (g.dw_hh) add_torch_gates(state.dw_hh.f32(), grad(2), H, H);
        const float* db = state.dbias.f32();
        for (std::int64_t gate = 0; gate < 3; ++gate)
            for (std::int64_t k = 0; k < H; ++k) {
                const std::int64_t at = kTorchGate[gate] * H + k;
                if (db_ih) db_ih[at] += db[gate * H + k];
                if (db_hh) db_hh[at] += db[(gate == 2 ? 3 : gate) * H + k];  // b_hn is oneDNN's 4th bias
            }
    }

private:
    // Without lengths, the output is oneDNN's dst_layer (N, T, H) or dst_iter
    // (N, H); the other one stays inside the state. With lengths, oneDNN
    // writes dst_layer into the batch's y_full and the output is read from it.
    RnnForwardData data(std::span<const Tensor> in, const Tensor& out, GruOpState& state) const {
        RnnForwardData d;
        d.x = in[0].f32();
        d.w_ih = state.w_ih.f32();
        d.w_hh = state.w_hh.f32();
        d.bias = state.bias.f32();
        if (in.size() == 6) {
            d.y = state.batch.y_full().f32();
            return d;
        }
        float* y = const_cast<float*>(out.f32());  // backward passes the forward's output back
        (return_sequences_ ? d.y : d.h_last) = y;
        return d;
    }

    std::int64_t units_;
    bool return_sequences_;
};

}  // namespace

void register_gru(OpRegistry& registry) {
    registry.add({.name = "gru",
                  .summary = "GRU layer over (N, T, E) from a zero state, PyTorch's nn.GRU weights, biases and gate order; optional lengths (N) for padded batches",
                  .min_inputs = 5,
                  .max_inputs = 6,
                  .attrs = {{"units", AttrKind::integer, std::nullopt, "hidden size H; the weights must be (3H, E), (3H, H), (3H), (3H)"},
                            {"return_sequences", AttrKind::boolean, false, "output every hidden state (N, T, H), not just the last (N, H)"}},
                  .make = [](const Attrs& a) { return std::make_unique<Gru>(a.integer("units"), a.boolean("return_sequences")); }});
}

}  // namespace graphrun
