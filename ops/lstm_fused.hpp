// graphrun's own float32 LSTM (`impl: graphrun` on the lstm op), beside
// oneDNN's primitive (ops/rnn_dnnl.hpp), with the same interface, so
// RnnBatch runs either on each part of a batch. PyTorch's gates i, f, g, o.
//
// Most of the arithmetic is in large GEMMs run by oneDNN's matmul primitive,
// the per-step work is one small GEMM (graphrun's own AVX2 kernel where H is a
// multiple of 16, else oneDNN's matmul) and one vectorized pass over the 4H
// columns (the gate nonlinearities and the cell update):
//   forward   A (N T, 4H) = x W_ih^T + b, one GEMM for every step; then per
//             step t: A_t += h_{t-1} W_hh^T (a small GEMM with a sum post-op,
//             in place), the gates applied in place, c_t and h_t written
//   backward  per step, from T-1 down: the gates' gradients dA_t (in place of
//             the step's gates) from dh_t = dy_t + dA_{t+1} W_hh and the
//             running dc, then dh_{t-1} = dA_t W_hh (a small GEMM); after the
//             loop, one GEMM each: dW_hh += dA^T H_prev, dW_ih += dA^T x,
//             dx += dA W_ih, and db += the column sums of dA.
// Rows are batch-major as graphrun holds them ((N, T, .)); a step's rows are
// a strided view. Whole sequences from a zero state only (the lstm op's case).
// The gate pass uses AVX2 and FMA where the CPU has them (exp by Cephes'
// polynomial) and plain C++ otherwise; which one depends on the CPU alone.
#pragma once

#include <cstdint>
#include <unordered_map>

#include <dnnl.hpp>

#include "engine/core/op.hpp"
#include "graphrun/tensor.hpp"
#include "ops/rnn_dnnl.hpp"

namespace graphrun {

class FusedLstm final : public OpState {
public:
    // sizes.cell must be lstm and sizes.bf16 false; data.h0 and data.c0 must be null.
    void forward(const RnnSizes& sizes, const RnnForwardData& data);
    // After the forward of the same step, with the same `data`; adds into the gradients.
    void backward(const RnnForwardData& data, const RnnBackwardData& grads);
    std::int64_t bytes() const override;

private:
    void build(const RnnSizes& sizes);

    RnnSizes sizes_;
    bool built_ = false;
    bool forward_done_ = false;
    // The step's matmuls: the input projection, the recurrent product (forward,
    // in place with a sum post-op) and its backward, the weight gradients and dx.
    dnnl::matmul project_, recur_, recur_back_, dw_hh_, dw_ih_, dx_;
    dnnl::memory x_, w_ih_t_, bias_, gates_all_, gates_step_, h_prev_step_, w_hh_t_;
    dnnl::memory w_hh_, gates_step_src_, dh_mem_, gates_t_all_, h_prev_all_, dw_hh_out_, dw_ih_out_, w_ih_, dx_out_;
    // (N, T, 4H) gates: pre-activations, then activations, then in backward their gradients.
    Tensor gates_, cells_, h_prev_, y_own_;  // cells_ c_t, h_prev_ h_{t-1} (zeros at t = 0): (N, T, H)
    Tensor dh_, dc_;                          // (N, H): the running gradients of h and c
    Tensor w_hh_packed_;                      // W_hh^T (forward) or W_hh (backward) packed for graphrun's own step product
};

}  // namespace graphrun
