// graphrun's own float32 LSTM (`impl: graphrun` on the lstm op), beside
// oneDNN's primitive (ops/rnn_dnnl.hpp), with the same interface, so
// RnnBatch runs either on each part of a batch. PyTorch's gates i, f, g, o.
//
// Most of the arithmetic is in large GEMMs run by oneDNN's matmul primitive,
// the per-step work is small GEMMs (graphrun's own AVX2 or AVX-512 kernel
// where H is a multiple of 16, else oneDNN's matmul) and one vectorized pass
// over the 4H columns (the gate nonlinearities and the cell update):
//   forward   A (T N, 4H) = [x 1] [W_ih b]^T, one GEMM per chunk of about
//             256 rows just before the steps that read them, so their gates
//             are still in cache; then per step t: A_t += h_{t-1} W_hh^T (in
//             place), the gates applied in place, c_t and h_t written
//   backward  per step, from T-1 down: the gates' gradients dA_t (in place of
//             the step's gates) from dh_t = dy_t + dA_{t+1} W_hh and the
//             running dc, then [dh_{t-1} | dx_t] = dA_t [W_hh | W_ih] (one
//             small product while dA_t is in cache; dx as one GEMM after the
//             loop where E is no multiple of 16), dx then added into the
//             caller's; once a chunk's dA is done,
//             one GEMM [dW_ih | db | dW_hh]^T += [x | 1 | H_prev]^T dA over it.
// Training keeps every step's gates, c and h_{t-1} for backward; inference
// only a chunk's gates and x (a ring) and two steps' c: a few hundred KB a
// part instead of tens of MB.
// Inside, rows are time-major: a step's rows lie side by side, so a step
// reads and writes a few contiguous kilobytes. (Batch-major, a step's rows
// were T rows apart, on the same cache sets, and the gate pass waited on
// memory.) Given the rows' lengths, they are sorted longest first and step t
// runs only the rows longer than t, so padding costs no arithmetic: in
// training the rows are also packed as PyTorch's PackedSequence (step t's
// rows, then step t + 1's), and the GEMMs over all steps run per chunk of
// rows rather than of steps; inference's ring keeps N rows a step. The
// caller's x, y, dy and dx stay (N, T, .), and what lies past a row's length
// there is left untouched. Whole sequences from a zero state only (the lstm
// op's case).
// The gate pass uses AVX2 and FMA where the CPU has them (tanh by a rational
// function, the sigmoid from it) and plain C++ otherwise; which one depends on
// the CPU alone.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

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
    void forward_training(const RnnForwardData& data);
    void forward_inference(const RnnForwardData& data);
    // Row j's gates at step t (a, in place), c_t into c; h_t into y (or y_own_) and then into
    // next_h_prev, the next step's h_{t-1}, or at the row's last step (next_h_prev null) into
    // the final state.
    void gate_row(const RnnForwardData& data, std::int64_t j, std::int64_t t, float* a, const float* c_prev, float* c, float* next_h_prev);
    // The final state of rows of no steps: zeros.
    void zero_empty_rows(const RnnForwardData& data);
    // order_, steps_of_, step_rows_, step_first_ and the row counts for these lengths.
    void plan_rows(std::span<const std::int64_t> lengths);
    // c_rows_ pointing at `rows` rows of C, ldc floats apart, for graphrun's own step product.
    float* const* strided_rows(float* c, std::int64_t ldc, std::int64_t rows);
    // Views of A and C for oneDNN's per-step product, by row count (0..N): made at the first
    // step of that many rows, so a warm step creates none.
    struct StepViews {
        std::vector<dnnl::memory> a, c;
    };
    // C (rows, cols) (+)= A (rows, K) B by oneDNN's matmul `product` (M given per call), where
    // graphrun's own step product cannot run; A and C strided by lda and ldc. `views` null:
    // views made for this call (dx after the loop, once a backward).
    static void step_product_dnnl(dnnl::matmul& product, StepViews* views, const float* a, std::int64_t lda, std::int64_t K, const dnnl::memory& b,
                                  float* c, std::int64_t ldc, std::int64_t cols, std::int64_t rows);

    RnnSizes sizes_;
    bool built_ = false;
    bool forward_done_ = false;
    // oneDNN's matmuls for the recurrent product (forward, in place with a sum
    // post-op) and its backward, where graphrun's own product cannot run, and
    // for dx where the step product cannot take it (training only).
    dnnl::matmul recur_, recur_back_, dx_;
    StepViews recur_views_, recur_back_views_;
    dnnl::memory w_ih_t_, w_hh_t_, w_hh_, dw_all_out_, w_ih_;
    // The input projection and the weight gradients' GEMM of a chunk of steps: the full
    // chunk's, and the last chunk's where T is no multiple of it.
    struct ChunkGemms {
        dnnl::matmul project, dw;
        dnnl::memory x, gates, xh_t;
    };
    ChunkGemms full_chunk_, last_chunk_;
    std::int64_t chunk_steps_ = 1, chunk_rows_ = 1;  // chunk_rows_ = chunk_steps_ N
    ChunkGemms& chunk_at(std::int64_t t);  // inference: the chunk that starts at step t
    // The rows inside: order_[j] the caller's row of row j (longest first), steps_of_[j] its
    // length; step t runs rows 0..step_rows_[t] - 1, in training at rows step_first_[t].. of the
    // buffers; steps_run_ the longest length, rows_run_ all steps' rows, rows_padded_ rounded up to chunks.
    std::vector<std::int64_t> order_, steps_of_, step_rows_, step_first_;
    std::int64_t steps_run_ = 0, rows_run_ = 0, rows_padded_ = 0;
    // (rows, 4H) gates (training: every step's rows; inference: a chunk of steps, a ring):
    // pre-activations, then activations, then in backward their gradients.
    Tensor gates_, cells_, y_own_;  // cells_ c_t: (rows, H) (inference: 2 steps); y_own_ (2, N, H) where the caller keeps no y
    // (rows, E + 1 + H) (inference: a chunk's steps): x_t, a 1, and h_{t-1} (zeros at t = 0): the
    // projection reads [x 1], and the weight gradients' GEMM [dW_ih | db | dW_hh]^T = xh_^T dA.
    Tensor xh_;
    Tensor dw_all_;          // (E + 1 + H, 4H): that GEMM's result, [dW_ih | db | dW_hh]^T, added into the gradients
    Tensor w_ih_bias_;       // (4H, E + 1): [W_ih b], the input projection's weights
    Tensor dx_rows_;         // (rows, E): dx in the rows' order inside, where the step product cannot take it
    std::vector<float*> c_rows_;  // (N): the rows of C of a step product
    Tensor dh_, dc_;         // (N, H): the running gradients of h and c
    Tensor weights_packed_;  // W_hh^T (forward) or [W_hh | W_ih] (backward) packed for graphrun's own step product
};

}  // namespace graphrun
