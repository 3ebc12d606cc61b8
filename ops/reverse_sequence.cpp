// reverse_sequence: each row's real steps in reverse order, padding left in
// place, as tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0); what
// the backward direction of a bidirectional layer reads, so that it starts at
// a row's last real token, never at its padding.
//   x: (N, T, D), optional lengths: (N) i32/i64 -> y: (N, T, D)
//   y[n, t] = x[n, L[n] - 1 - t] for t < L[n];  y[n, t] = x[n, t] for t >= L[n]   (no lengths: L[n] = T)
//   dx[n, L[n] - 1 - t] += dy[n, t] for t < L[n];  dx[n, t] += dy[n, t] for t >= L[n]
// The map is its own inverse: reversing twice gives x back.
#include <cstring>

#include <fmt/format.h>

#include "ops/builtin.hpp"
#include "ops/lengths.hpp"

namespace graphrun {
namespace {

class ReverseSequence final : public Op {
public:
    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        expect_dtype("x", in[0], DType::f32);
        expect_rank("x", in[0], 3);
        if (in.size() == 2) expect_lengths("reverse_sequence", in[0], in[1]);
        return {in[0]};
    }

    void forward(const ForwardArgs& args) const override {
        const Tensor& x = args.inputs[0];
        const std::int64_t N = x.dim(0), T = x.dim(1), D = x.dim(2);
        float* y = args.outputs[0].f32();
        for (std::int64_t n = 0; n < N; ++n) {
            const std::int64_t L = real_steps(args.inputs, n, T);
            for (std::int64_t t = 0; t < T; ++t)
                std::memcpy(y + (n * T + t) * D, x.f32() + (n * T + source(t, L)) * D, static_cast<std::size_t>(D) * sizeof(float));
        }
    }

    void backward(const BackwardArgs& args) const override {
        Tensor* dx = args.input_grads[0];
        if (!dx) return;
        const std::int64_t N = dx->dim(0), T = dx->dim(1), D = dx->dim(2);
        const float* dy = args.output_grads[0].f32();
        for (std::int64_t n = 0; n < N; ++n) {
            const std::int64_t L = real_steps(args.inputs, n, T);
            for (std::int64_t t = 0; t < T; ++t) {
                float* to = dx->f32() + (n * T + source(t, L)) * D;
                const float* from = dy + (n * T + t) * D;
                for (std::int64_t k = 0; k < D; ++k) to[k] += from[k];
            }
        }
    }

private:
    static std::int64_t source(std::int64_t t, std::int64_t L) { return t < L ? L - 1 - t : t; }

    static std::int64_t real_steps(std::span<const Tensor> in, std::int64_t n, std::int64_t T) {
        return in.size() < 2 ? T : checked_length("reverse_sequence", in[1], n, T);
    }
};

}  // namespace

void register_reverse_sequence(OpRegistry& registry) {
    registry.add({.name = "reverse_sequence",
                  .summary = "each row's first lengths[n] steps reversed, padding kept in place: (N, T, D) [, lengths (N)] -> (N, T, D)",
                  .min_inputs = 1,
                  .max_inputs = 2,
                  .attrs = {},
                  .make = [](const Attrs&) { return std::make_unique<ReverseSequence>(); }});
}

}  // namespace graphrun
