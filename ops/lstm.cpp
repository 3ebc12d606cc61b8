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
// The padding steps still run inside oneDNN; their states are never read, and
// backward puts dy only at the real steps of diff_dst_layer (nothing into
// diff_dst_iter), so the weights get the gradient of the unpadded sequences
// and x gets exactly 0 at the padding steps.
// Forward and backward (BPTT) run on oneDNN: ops/lstm_dnnl.hpp.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "engine/core/accumulate.hpp"
#include "engine/core/threads.hpp"
#include "ops/builtin.hpp"
#include "ops/lengths.hpp"
#include "ops/lstm_dnnl.hpp"

namespace graphrun {
namespace {

// The batch is cut into parts of consecutive rows (batch_parts: by the batch
// size alone), one oneDNN LSTM each, run as parallel tasks with one OpenMP
// thread each: on a few cores that beats one call with several OpenMP threads
// (its per-step GEMMs are too small to split well). Rows are contiguous in (N, T, E), so a part reads and writes its rows
// in place. With lengths, oneDNN's full output and its gradient live in our
// own buffers (allocated once per shape).
struct LstmOpState final : OpState {
    std::vector<LstmState> parts;
    // Each part's weight gradients, summed in part order after backward (with one part, none).
    std::vector<Tensor> part_grads;  // [part * 3 + k], k: weight_ih, weight_hh, bias
    Tensor y_full;   // (N, T, H) dst_layer: every h_t, padding steps included
    Tensor dy_full;  // (N, T, H) diff_dst_layer: dy at the real steps, 0 elsewhere

    std::int64_t bytes() const override {
        std::int64_t total = static_cast<std::int64_t>(y_full.bytes() + dy_full.bytes());
        for (const auto& part : parts) total += part.bytes();
        for (const auto& g : part_grads) total += static_cast<std::int64_t>(g.bytes());
        return total;
    }

    void reserve(std::int64_t N, std::int64_t T, std::int64_t H) {
        if (y_full.defined() && y_full.dim(0) == N && y_full.dim(1) == T && y_full.dim(2) == H) return;
        y_full = Tensor(Shape{N, T, H});
        dy_full = Tensor(Shape{N, T, H});
    }
};

class Lstm final : public Op {
public:
    Lstm(std::int64_t units, bool return_sequences, bool bf16) : units_(units), return_sequences_(return_sequences), bf16_(bf16) {}

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

    // The gate GEMMs, every step (padding steps run too): 2 N T 4H (E + H).
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
            check_lengths(*lengths, T);
            state.reserve(N, T, H);
        }
        // The parts follow the batch size alone: any thread count computes the
        // same parts and sums their weight gradients in the same order.
        const int P = batch_parts(N);
        if (static_cast<int>(state.parts.size()) != P) {
            state.parts = std::vector<LstmState>(static_cast<std::size_t>(P));
            state.part_grads.clear();
        }
        const LstmForwardData whole = data(args.inputs, args.outputs[0], state);
        run_parts(P, [&](int p) {
            const auto [first, count] = split_rows(N, P, p);
            state.parts[static_cast<std::size_t>(p)].forward({count, T, E, H, args.training, bf16_}, rows_of(whole, first, T, E));
        });
        if (!lengths) return;

        // Read each row's real steps out of the full sequence.
        const float* y_full = state.y_full.f32();
        float* y = args.outputs[0].f32();
        const std::size_t row_bytes = static_cast<std::size_t>(H) * sizeof(float);
        for (std::int64_t n = 0; n < N; ++n) {
            const std::int64_t L = length_at(*lengths, n);
            if (return_sequences_) {
                std::memcpy(y + n * T * H, y_full + n * T * H, static_cast<std::size_t>(L) * row_bytes);
                std::memset(y + (n * T + L) * H, 0, static_cast<std::size_t>(T - L) * row_bytes);
            } else if (L > 0) {
                std::memcpy(y + n * H, y_full + (n * T + L - 1) * H, row_bytes);
            } else {
                std::memset(y + n * H, 0, row_bytes);
            }
        }
    }

    // dy flows in as oneDNN's diff_dst_layer (every h_t) or diff_dst_iter (the
    // last h); with lengths, only into diff_dst_layer at each row's real steps.
    void backward(const BackwardArgs& args) const override {
        auto& state = static_cast<LstmOpState&>(*args.state);
        const Tensor& x = args.inputs[0];
        const std::int64_t N = x.dim(0), T = x.dim(1), E = x.dim(2);
        const float* dy = args.output_grads[0].f32();
        const auto grad = [&](std::size_t k) { return args.input_grads[k] ? args.input_grads[k]->f32() : nullptr; };
        LstmBackwardData g;
        g.dx = grad(0);
        g.dw_ih = grad(1);
        g.dw_hh = grad(2);
        g.dbias = grad(3);
        if (args.inputs.size() == 5) {
            scatter_dy(args.inputs[4], T, dy, state.dy_full);
            g.dy = state.dy_full.f32();
        } else {
            (return_sequences_ ? g.dy : g.dh_last) = dy;
        }
        const LstmForwardData whole = data(args.inputs, args.outputs[0], state);
        const int P = static_cast<int>(state.parts.size());
        if (P == 1) {
            state.parts[0].backward(whole, g);
            return;
        }
        // Parts write disjoint rows of dx; their weight gradients go to buffers
        // of their own, summed in part order so the result does not depend on timing.
        if (state.part_grads.empty())
            for (int p = 0; p < P; ++p)
                for (std::size_t k = 1; k <= 3; ++k) state.part_grads.emplace_back(args.inputs[k].type());
        run_parts(P, [&](int p) {
            const auto [first, count] = split_rows(N, P, p);
            LstmBackwardData part = rows_of(g, first, T, E);
            float** weight_grads[] = {&part.dw_ih, &part.dw_hh, &part.dbias};
            for (std::size_t k = 0; k < 3; ++k) {
                if (!*weight_grads[k]) continue;
                Tensor& own = state.part_grads[static_cast<std::size_t>(p) * 3 + k];
                own.zero();
                *weight_grads[k] = own.f32();
            }
            state.parts[static_cast<std::size_t>(p)].backward(rows_of(whole, first, T, E), part);
        });
        float* const weight_grads[] = {g.dw_ih, g.dw_hh, g.dbias};
        for (std::size_t k = 0; k < 3; ++k) {
            if (!weight_grads[k]) continue;
            for (int p = 0; p < P; ++p) {
                add_into(weight_grads[k], state.part_grads[static_cast<std::size_t>(p) * 3 + k]);
            }
        }
    }

private:
    static void check_lengths(const Tensor& lengths, std::int64_t T) {
        for (std::int64_t n = 0; n < lengths.numel(); ++n) checked_length("lstm", lengths, n, T);
    }

    // dy_full (N, T, H) = dy at (n, t) for t < L[n] (sequences) or at (n, L[n] - 1) (final state), 0 elsewhere.
    void scatter_dy(const Tensor& lengths, std::int64_t T, const float* dy, Tensor& dy_full) const {
        const std::int64_t H = units_, N = lengths.numel();
        dy_full.zero();
        float* d = dy_full.f32();
        const std::size_t row_bytes = static_cast<std::size_t>(H) * sizeof(float);
        for (std::int64_t n = 0; n < N; ++n) {
            const std::int64_t L = length_at(lengths, n);
            if (return_sequences_) std::memcpy(d + n * T * H, dy + n * T * H, static_cast<std::size_t>(L) * row_bytes);
            else if (L > 0) std::memcpy(d + (n * T + L - 1) * H, dy + n * H, row_bytes);
        }
    }

    // The rows [first, first + count) of the whole batch's pointers.
    LstmForwardData rows_of(LstmForwardData d, std::int64_t first, std::int64_t T, std::int64_t E) const {
        const std::int64_t H = units_;
        d.x += first * T * E;
        if (d.y) d.y += first * T * H;
        if (d.h_last) d.h_last += first * H;
        return d;
    }
    LstmBackwardData rows_of(LstmBackwardData g, std::int64_t first, std::int64_t T, std::int64_t E) const {
        const std::int64_t H = units_;
        if (g.dx) g.dx += first * T * E;
        if (g.dy) g.dy += first * T * H;
        if (g.dh_last) g.dh_last += first * H;
        return g;
    }

    // Without lengths, the output is oneDNN's dst_layer (N, T, H) or dst_iter
    // (N, H); the other one, and the last cell state, stay inside the state.
    // With lengths, oneDNN writes dst_layer into the state's y_full and the
    // output is read from it.
    LstmForwardData data(std::span<const Tensor> in, const Tensor& out, LstmOpState& state) const {
        LstmForwardData d;
        d.x = in[0].f32();
        d.w_ih = in[1].f32();
        d.w_hh = in[2].f32();
        d.bias = in[3].f32();
        if (in.size() == 5) {
            d.y = state.y_full.f32();
            return d;
        }
        float* y = const_cast<float*>(out.f32());  // backward passes the forward's output back
        (return_sequences_ ? d.y : d.h_last) = y;
        return d;
    }

    std::int64_t units_;
    bool return_sequences_;
    bool bf16_;  // bfloat16 compute (oneDNN's brgemm LSTM); float32 data and gradients outside
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
                             "and gradients); several times faster where the CPU has AVX512-BF16"}},
                  .make = [](const Attrs& a) {
                      const std::string& precision = a.string("precision");
                      if (precision != "f32" && precision != "bf16") throw Error(fmt::format("lstm: precision must be f32 or bf16, got '{}'", precision));
                      return std::make_unique<Lstm>(a.integer("units"), a.boolean("return_sequences"), precision == "bf16");
                  }});
}

}  // namespace graphrun
