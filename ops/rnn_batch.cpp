// The batch parts and padded batches of `lstm` and `gru`; see ops/rnn_batch.hpp.
#include "ops/rnn_batch.hpp"

#include <cstring>

#include "engine/core/accumulate.hpp"
#include "engine/core/threads.hpp"
#include "ops/lengths.hpp"

namespace graphrun {
namespace {

// The rows [first, first + count) of the whole batch's pointers.
RnnForwardData rows_of(RnnForwardData d, std::int64_t first, std::int64_t count, const RnnSizes& s) {
    d.x += first * s.T * s.E;
    if (!d.lengths.empty()) d.lengths = d.lengths.subspan(static_cast<std::size_t>(first), static_cast<std::size_t>(count));
    if (d.y) d.y += first * s.T * s.H;
    if (d.h_last) d.h_last += first * s.H;
    if (d.c_last) d.c_last += first * s.H;
    return d;
}
RnnBackwardData rows_of(RnnBackwardData g, std::int64_t first, const RnnSizes& s) {
    if (g.dx) g.dx += first * s.T * s.E;
    if (g.dy) g.dy += first * s.T * s.H;
    if (g.dh_last) g.dh_last += first * s.H;
    return g;
}

// FLOPs of one part's forward (backward: twice that), which orders the parts
// of concurrent nodes (run_parts: the costliest first).
double part_flops(const RnnSizes& s, int parts) {
    const double gates = s.cell == RnnCell::lstm ? 4 : 3;
    return 2.0 * static_cast<double>(s.N) / parts * static_cast<double>(s.T) * gates * static_cast<double>(s.H) * static_cast<double>(s.E + s.H);
}

}  // namespace

void RnnBatch::forward(const RnnSizes& sizes, const RnnForwardData& whole) {
    // The parts follow the batch size alone: any thread count computes the
    // same parts and sums their weight gradients in the same order.
    const std::int64_t N = sizes.N;
    const int P = batch_parts(N);
    if (part_count() != P || sizes.fused != sizes_.fused) {
        parts_.clear();
        fused_parts_.clear();
        if (sizes.fused) fused_parts_ = std::vector<FusedLstm>(static_cast<std::size_t>(P));
        else parts_ = std::vector<RnnState>(static_cast<std::size_t>(P));
        part_grads_.clear();
    }
    sizes_ = sizes;
    run_parts(P, part_flops(sizes, P), [&](int p) {
        const auto [first, count] = split_rows(N, P, p);
        RnnSizes part = sizes;
        part.N = count;
        const auto k = static_cast<std::size_t>(p);
        if (sizes.fused) fused_parts_[k].forward(part, rows_of(whole, first, count, sizes));
        else parts_[k].forward(part, rows_of(whole, first, count, sizes));
    });
}

void RnnBatch::backward(const RnnForwardData& whole, const RnnBackwardData& g, std::span<const TensorType> weight_types) {
    const int P = part_count();
    const auto part_backward = [&](int p, const RnnForwardData& d, const RnnBackwardData& pg) {
        if (sizes_.fused) fused_parts_[static_cast<std::size_t>(p)].backward(d, pg);
        else parts_[static_cast<std::size_t>(p)].backward(d, pg);
    };
    if (P == 1) {
        part_backward(0, whole, g);
        return;
    }
    // Parts write disjoint rows of dx; their weight gradients go to buffers
    // of their own, summed in part order so the result does not depend on timing.
    if (part_grads_.empty())
        for (int p = 0; p < P; ++p)
            for (std::size_t k = 0; k < 3; ++k) part_grads_.emplace_back(weight_types[k]);
    run_parts(P, 2 * part_flops(sizes_, P), [&](int p) {
        const auto [first, count] = split_rows(sizes_.N, P, p);
        RnnBackwardData part = rows_of(g, first, sizes_);
        float** weight_grads[] = {&part.dw_ih, &part.dw_hh, &part.dbias};
        for (std::size_t k = 0; k < 3; ++k) {
            if (!*weight_grads[k]) continue;
            Tensor& own = part_grads_[static_cast<std::size_t>(p) * 3 + k];
            own.zero();
            *weight_grads[k] = own.f32();
        }
        part_backward(p, rows_of(whole, first, count, sizes_), part);
    });
    float* const weight_grads[] = {g.dw_ih, g.dw_hh, g.dbias};
    for (std::size_t k = 0; k < 3; ++k) {
        if (!weight_grads[k]) continue;
        for (int p = 0; p < P; ++p) add_into(weight_grads[k], part_grads_[static_cast<std::size_t>(p) * 3 + k]);
    }
}

void RnnBatch::reserve_full(std::int64_t N, std::int64_t T, std::int64_t H, bool training) {
    const auto fits = [&](const Tensor& t) { return t.defined() && t.dim(0) == N && t.dim(1) == T && t.dim(2) == H; };
    if (!fits(y_full_)) y_full_ = Tensor(Shape{N, T, H});
    if (training && !fits(dy_full_)) dy_full_ = Tensor(Shape{N, T, H});
}

std::int64_t RnnBatch::bytes() const {
    std::int64_t total = static_cast<std::int64_t>(y_full_.bytes() + dy_full_.bytes());
    for (const auto& part : parts_) total += part.bytes();
    for (const auto& part : fused_parts_) total += part.bytes();
    for (const auto& g : part_grads_) total += static_cast<std::int64_t>(g.bytes());
    return total;
}

void check_lengths(const char* op, const Tensor& lengths, std::int64_t T) {
    for (std::int64_t n = 0; n < lengths.numel(); ++n) checked_length(op, lengths, n, T);
}

void read_real_steps(const Tensor& lengths, const Tensor& y_full, bool return_sequences, float* y) {
    const std::int64_t N = y_full.dim(0), T = y_full.dim(1), H = y_full.dim(2);
    const float* full = y_full.f32();
    const std::size_t row_bytes = static_cast<std::size_t>(H) * sizeof(float);
    for (std::int64_t n = 0; n < N; ++n) {
        const std::int64_t L = length_at(lengths, n);
        if (return_sequences) {
            std::memcpy(y + n * T * H, full + n * T * H, static_cast<std::size_t>(L) * row_bytes);
            std::memset(y + (n * T + L) * H, 0, static_cast<std::size_t>(T - L) * row_bytes);
        } else if (L > 0) {
            std::memcpy(y + n * H, full + (n * T + L - 1) * H, row_bytes);
        } else {
            std::memset(y + n * H, 0, row_bytes);
        }
    }
}

void scatter_dy(const Tensor& lengths, const float* dy, bool return_sequences, Tensor& dy_full) {
    const std::int64_t N = dy_full.dim(0), T = dy_full.dim(1), H = dy_full.dim(2);
    dy_full.zero();
    float* d = dy_full.f32();
    const std::size_t row_bytes = static_cast<std::size_t>(H) * sizeof(float);
    for (std::int64_t n = 0; n < N; ++n) {
        const std::int64_t L = length_at(lengths, n);
        if (return_sequences) std::memcpy(d + n * T * H, dy + n * T * H, static_cast<std::size_t>(L) * row_bytes);
        else if (L > 0) std::memcpy(d + (n * T + L - 1) * H, dy + n * H, row_bytes);
    }
}

}  // namespace graphrun
