// The oneDNN recurrent layer shared by `lstm` (a whole sequence from a zero
// state), `lstm_cell` (one step, T = 1, from a given state) and `gru`
// (oneDNN's linear-before-reset GRU, a whole sequence from a zero state).
//
// Shapes: N batch, T steps, E input size, H units, G gates (4 for the LSTM, 3
// for the GRU). Layouts are graphrun's (PyTorch's, batch_first): x (N, T, E),
// h and c (N, H), weight_ih (G*H, E), weight_hh (G*H, H), gate blocks of rows.
// The LSTM's gates are i, f, g, o, which is also oneDNN's order (i, f, c~, o),
// and its bias (4H). The GRU's weights here are already in oneDNN's gate
// order u, r, o and its bias has oneDNN's 4 gates (4H): `gru` reorders
// PyTorch's r, z, n into it (ops/gru.cpp). To oneDNN, x is `ntc`, a state is
// `ldnc` with L = D = 1, and the user weights are `ldgoi`.
//
// RnnState is a node's OpState. It creates the forward_training and backward
// primitives once per shape (and again when N or T changes), keeps the
// workspace forward writes for backward, and owns the scratchpad
// (scratchpad_mode::user, so any thread may run the node) and every buffer
// oneDNN needs in its own layout. After the first call for a shape, forward
// and backward allocate nothing.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include <dnnl.hpp>

#include "engine/core/op.hpp"
#include "graphrun/tensor.hpp"

namespace graphrun {

// The shape rule both LSTM ops share: weight_ih (4H, E), weight_hh (4H, H),
// bias (4H), all f32, with H = units. Throws ShapeError naming `op`.
void expect_lstm_weights(const char* op, std::span<const TensorType> weights, std::int64_t E, std::int64_t H);

// Whether this CPU runs the bfloat16 LSTM (precision bf16): oneDNN 2.6 has it for AVX-512 only.
bool lstm_bf16_supported();

// The cell: oneDNN's vanilla LSTM (no peepholes, no projection), or its
// linear-before-reset GRU (PyTorch's GRU: r multiplies W_hn h + b_hn).
enum class RnnCell { lstm, lbr_gru };

struct RnnSizes {
    std::int64_t N = 0, T = 0, E = 0, H = 0;
    bool training = true;  // false: forward_inference, no workspace, no backward
    bool bf16 = false;     // bfloat16 sources, weights and hidden states inside; f32 for everything the caller sees
    RnnCell cell = RnnCell::lstm;
    bool fused = false;    // lstm impl graphrun (ops/lstm_fused.hpp), not oneDNN's primitive
    bool operator==(const RnnSizes&) const = default;
};

// What forward reads and writes. Pointers marked "nullptr: ..." are optional.
struct RnnForwardData {
    const float* x = nullptr;     // (N, T, E)
    const float* h0 = nullptr;    // (N, H); nullptr: zeros
    const float* c0 = nullptr;    // (N, H); nullptr: zeros (LSTM only)
    const float* w_ih = nullptr;  // (G*H, E)
    const float* w_hh = nullptr;  // (G*H, H)
    const float* bias = nullptr;  // (4H)
    float* y = nullptr;           // (N, T, H) every hidden state; nullptr: kept inside
    float* h_last = nullptr;      // (N, H); nullptr: kept inside
    float* c_last = nullptr;      // (N, H); nullptr: kept inside (LSTM only)
    // (N) each row's real steps, or empty: all T. graphrun's own LSTM (ops/lstm_fused.hpp)
    // then runs each row's real steps alone and leaves y (and dx) past them
    // untouched; oneDNN's primitive runs every step and ignores it.
    std::span<const std::int64_t> lengths{};
};

// What backward reads, and the gradients it ADDS into (nullptr: not wanted).
struct RnnBackwardData {
    const float* dy = nullptr;       // (N, T, H); nullptr: zeros
    const float* dh_last = nullptr;  // (N, H); nullptr: zeros
    const float* dc_last = nullptr;  // (N, H); nullptr: zeros (LSTM only)
    float* dx = nullptr;             // (N, T, E)
    float* dh0 = nullptr;            // (N, H)
    float* dc0 = nullptr;            // (N, H) (LSTM only)
    float* dw_ih = nullptr;          // (G*H, E)
    float* dw_hh = nullptr;          // (G*H, H)
    float* dbias = nullptr;          // (4H)
};

class RnnState final : public OpState {
public:
    void forward(const RnnSizes& sizes, const RnnForwardData& data);
    // Needs the forward of the same step first, called with the same `data`
    // (the workspace and the saved states belong to that call).
    void backward(const RnnForwardData& data, const RnnBackwardData& grads);
    std::int64_t bytes() const override;  // our buffers, oneDNN's workspace and scratchpad

private:
    using Args = std::unordered_map<int, dnnl::memory>;
    // A reorder primitive with its arguments, created once per shape.
    struct Copy {
        dnnl::reorder prim;
        Args args;
        dnnl::memory::desc scratchpad;  // its share of the scratchpad
    };

    void build(const RnnSizes& sizes);
    // The forward (and, for training, backward) primitive descriptors of the sizes' cell.
    void describe(const RnnSizes& sizes, const dnnl::memory::desc& x, const dnnl::memory::desc& x_diff, const dnnl::memory::desc& y,
                  const dnnl::memory::desc& y_diff, const dnnl::memory::desc& h, const dnnl::memory::desc& state);
    void finish_build(const RnnSizes& sizes);  // the scratchpad, shared by every primitive
    void bind(const RnnForwardData& data);
    // Memory in the primitive's layout `want`: the user's memory itself when
    // the layouts agree, else a buffer of our own that `copies` fills.
    dnnl::memory adopt(const dnnl::memory& user, const dnnl::memory::desc& want, std::vector<Copy>& copies);
    // A reorder from `from` to `to`; with `add`, a sum post-op makes it to += from.
    Copy make_copy(const dnnl::memory& from, const dnnl::memory& to, bool add);

    RnnSizes sizes_;
    bool built_ = false;
    bool forward_done_ = false;

    dnnl::primitive_attr attr_;  // scratchpad_mode::user, for every primitive here
    dnnl::rnn_primitive_desc_base fwd_pd_, bwd_pd_;  // lstm_ or lbr_gru_ forward / backward
    dnnl::primitive fwd_, bwd_;
    Args fwd_args_, bwd_args_;

    // Views of the caller's tensors: their data handles are set on each call
    // (c0_, c_last_, dc_last_: LSTM only, empty for the GRU).
    dnnl::memory x_, h0_, c0_, w_ih_, w_hh_, bias_, y_, h_last_, c_last_;
    dnnl::memory dy_, dh_last_, dc_last_, dw_ih_user_, dw_hh_user_, dbias_user_;

    // Our buffers in graphrun's layouts: zeros for a missing state or
    // gradient, outputs the caller did not ask for, and oneDNN's gradients of
    // x and of the initial state (it overwrites them; we must add).
    Tensor zeros_nh_, zeros_nth_, y_own_, h_last_own_, c_last_own_, dx_own_, dh0_own_, dc0_own_;
    // Buffers in oneDNN's layouts: workspace (forward -> backward), the diff
    // weights oneDNN accumulates into, and one scratchpad for all primitives.
    dnnl::memory workspace_, dw_ih_, dw_hh_, dbias_;
    Tensor scratchpad_;

    std::vector<Copy> fwd_weights_;  // user weights -> forward layouts (when they differ)
    std::vector<Copy> bwd_weights_;  // user weights -> backward layouts (when they differ)
    std::vector<Copy> grad_adds_;    // dW_ih, dW_hh, db: oneDNN layouts -> += user grads
    std::vector<Copy> to_low_;       // bf16: x, h0 -> the primitive's bfloat16 copies, before forward
    std::vector<Copy> from_low_;     // bf16: the primitive's y, h_last -> the caller's f32, after forward
};

}  // namespace graphrun
