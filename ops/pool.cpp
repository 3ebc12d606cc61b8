// max_pool, mean_pool: one vector per sequence from its real steps, as
// sentence-transformers' pooling (mean over the attention mask; max with the
// padding set to -inf) and Keras's GlobalMaxPooling1D/GlobalAveragePooling1D
// with a mask.
//   x: (N, T, D), optional lengths: (N) i32/i64 -> y: (N, D)   (no lengths: L[n] = T)
//   max_pool:  y[n, d] = max_{t < L[n]} x[n, t, d]      dx[n, t*, d] += dy[n, d], t* the first step holding the max
//   mean_pool: y[n, d] = (1/L[n]) sum_{t < L[n]} x[n, t, d]   dx[n, t, d] += dy[n, d] / L[n] for t < L[n]
// A row with L[n] = 0 gives 0 and passes no gradient. Padding never reaches
// y: with lengths, an LSTM's padded steps (zeros) cannot win a max or dilute a mean.
#include <fmt/format.h>

#include "ops/builtin.hpp"
#include "ops/lengths.hpp"

namespace graphrun {
namespace {

class Pool final : public Op {
public:
    explicit Pool(bool max) : max_(max) {}

    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        const char* op = max_ ? "max_pool" : "mean_pool";
        expect_dtype("x", in[0], DType::f32);
        expect_rank("x", in[0], 3);
        if (in.size() == 2) expect_lengths(op, in[0], in[1]);
        return {TensorType{DType::f32, {in[0].shape[0], in[0].shape[2]}}};
    }

    void forward(const ForwardArgs& args) const override {
        const Tensor& x = args.inputs[0];
        const std::int64_t N = x.dim(0), T = x.dim(1), D = x.dim(2);
        float* y = args.outputs[0].f32();
        for (std::int64_t n = 0; n < N; ++n) {
            const std::int64_t L = real_steps(args.inputs, n, T);
            for (std::int64_t d = 0; d < D; ++d) {
                if (L == 0) {
                    y[n * D + d] = 0.0f;
                } else if (max_) {
                    y[n * D + d] = x.f32()[(n * T + first_max(x, n, d, L)) * D + d];
                } else {
                    double sum = 0;
                    for (std::int64_t t = 0; t < L; ++t) sum += x.f32()[(n * T + t) * D + d];
                    y[n * D + d] = static_cast<float>(sum / static_cast<double>(L));
                }
            }
        }
    }

    void backward(const BackwardArgs& args) const override {
        Tensor* dx = args.input_grads[0];
        if (!dx) return;
        const Tensor& x = args.inputs[0];
        const std::int64_t N = x.dim(0), T = x.dim(1), D = x.dim(2);
        const float* dy = args.output_grads[0].f32();
        for (std::int64_t n = 0; n < N; ++n) {
            const std::int64_t L = real_steps(args.inputs, n, T);
            if (L == 0) continue;
            for (std::int64_t d = 0; d < D; ++d) {
                if (max_) {
                    dx->f32()[(n * T + first_max(x, n, d, L)) * D + d] += dy[n * D + d];
                } else {
                    const float share = dy[n * D + d] / static_cast<float>(L);
                    for (std::int64_t t = 0; t < L; ++t) dx->f32()[(n * T + t) * D + d] += share;
                }
            }
        }
    }

private:
    static std::int64_t first_max(const Tensor& x, std::int64_t n, std::int64_t d, std::int64_t L) {
        const std::int64_t T = x.dim(1), D = x.dim(2);
        std::int64_t best = 0;
        for (std::int64_t t = 1; t < L; ++t)
            if (x.f32()[(n * T + t) * D + d] > x.f32()[(n * T + best) * D + d]) best = t;
        return best;
    }

    std::int64_t real_steps(std::span<const Tensor> in, std::int64_t n, std::int64_t T) const {
        return in.size() < 2 ? T : checked_length(max_ ? "max_pool" : "mean_pool", in[1], n, T);
    }

    bool max_;
};

}  // namespace

void register_pool(OpRegistry& registry) {
    registry.add({.name = "max_pool",
                  .summary = "the maximum over each sequence's real steps: (N, T, D) [, lengths (N)] -> (N, D)",
                  .min_inputs = 1,
                  .max_inputs = 2,
                  .attrs = {},
                  .make = [](const Attrs&) { return std::make_unique<Pool>(true); }});
    registry.add({.name = "mean_pool",
                  .summary = "the mean over each sequence's real steps: (N, T, D) [, lengths (N)] -> (N, D)",
                  .min_inputs = 1,
                  .max_inputs = 2,
                  .attrs = {},
                  .make = [](const Attrs&) { return std::make_unique<Pool>(false); }});
}

}  // namespace graphrun
