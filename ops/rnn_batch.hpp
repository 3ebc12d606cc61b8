// What the sequence ops `lstm` and `gru` share around RnnState
// (ops/rnn_dnnl.hpp): the batch cut into parts, and padded batches.
//
// The batch is cut into parts of consecutive rows (batch_parts: by the batch
// size alone), one oneDNN RNN (or graphrun's own LSTM, ops/lstm_fused.hpp)
// each, run by run_parts (on this thread and idle ones, the costliest
// concurrent node's parts first) with one OpenMP thread each: on a few cores
// that beats one call with several OpenMP threads
// (its per-step GEMMs are too small to split well). Rows are contiguous in
// (N, T, E), so a part reads and writes its rows in place. Each part's weight
// gradients go to buffers of its own, summed in part order: the result does
// not depend on the thread count or on timing.
//
// With lengths (N) i32/i64, padding after each row's real steps (as
// pack_padded_sequence): oneDNN's full output (N, T, H) and its gradient live
// in our own buffers (allocated once per shape); the op reads each row's real
// steps out of the first and puts dy only at the real steps of the second.
// The lengths' shape rule and values: ops/lengths.hpp.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ops/lstm_fused.hpp"
#include "ops/rnn_dnnl.hpp"

namespace graphrun {

class RnnBatch {
public:
    // Runs the RNN of `sizes` over the whole batch of sizes.N rows; `whole`
    // points at the whole batch's tensors, as RnnState::forward takes them.
    void forward(const RnnSizes& sizes, const RnnForwardData& whole);
    // BPTT after forward, with the same `whole`. The weight gradients of `g`
    // (of the types `weight_types`: weight_ih, weight_hh, bias) get each
    // part's added, in part order.
    void backward(const RnnForwardData& whole, const RnnBackwardData& g, std::span<const TensorType> weight_types);

    // The (N, T, H) buffers of a padded batch, allocated when the shape changes;
    // dy_full only for training (an inference plan never runs backward).
    void reserve_full(std::int64_t N, std::int64_t T, std::int64_t H, bool training);
    Tensor& y_full() { return y_full_; }    // dst_layer: every h_t, padding steps included
    Tensor& dy_full() { return dy_full_; }  // diff_dst_layer: dy at the real steps, 0 elsewhere

    std::int64_t bytes() const;

private:
    int part_count() const { return static_cast<int>(sizes_.fused ? fused_parts_.size() : parts_.size()); }

    RnnSizes sizes_;  // of the whole batch
    std::vector<RnnState> parts_;       // oneDNN's primitive, one per part
    std::vector<FusedLstm> fused_parts_;  // or graphrun's own LSTM (sizes.fused)
    std::vector<Tensor> part_grads_;  // [part * 3 + k], k: weight_ih, weight_hh, bias
    Tensor y_full_, dy_full_;
};

// Every length in [0, T]; else an Error naming `op`, the row and the value (ops/lengths.hpp).
void check_lengths(const char* op, const Tensor& lengths, std::int64_t T);
// y (N, T, H) = y_full at (n, t) for t < L[n], 0 elsewhere (sequences), or
// y (N, H) = y_full at (n, L[n] - 1), 0 where L[n] = 0 (final state).
void read_real_steps(const Tensor& lengths, const Tensor& y_full, bool return_sequences, float* y);
// dy_full (N, T, H) = dy at (n, t) for t < L[n] (sequences) or at (n, L[n] - 1) (final state), 0 elsewhere.
void scatter_dy(const Tensor& lengths, const float* dy, bool return_sequences, Tensor& dy_full);

}  // namespace graphrun
