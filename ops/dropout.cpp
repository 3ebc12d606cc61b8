// dropout: in training, each element zeroed with probability `rate` and the
// rest scaled by 1 / (1 - rate), as nn.Dropout(p = rate); outside training
// (validation, evaluate, embed) the identity.
//   x: (N, ...) -> y: (N, ...)
//   y = x * m / (1 - rate),  m ~ Bernoulli(1 - rate) per element;   dx = dy * m / (1 - rate)
// The masks are drawn per sample: element j of row n keeps or drops by a hash
// of the node's draw seed (the run's seed, the optimizer step and the node's
// name), the row's index among all ranks' rows and j. So a mask does not
// depend on the thread count, on how a batch is split among ranks, or on
// whether the run was stopped and resumed. The mask is kept for backward.
#include <fmt/format.h>

#include "engine/core/hash.hpp"
#include "ops/builtin.hpp"

namespace graphrun {
namespace {

struct DropoutState final : OpState {
    std::vector<float> scale;  // m / (1 - rate) per element, from the last training forward
    std::int64_t bytes() const override { return static_cast<std::int64_t>(scale.size() * sizeof(float)); }
};

class Dropout final : public Op {
public:
    explicit Dropout(double rate) : rate_(rate) {}

    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        expect_dtype("x", in[0], DType::f32);
        if (in[0].shape.empty()) throw ShapeError(fmt::format("dropout expects a batch (N, ...), got the scalar {}", to_string(in[0])));
        return {in[0]};
    }

    std::unique_ptr<OpState> make_state() const override { return std::make_unique<DropoutState>(); }

    void forward(const ForwardArgs& args) const override {
        const Tensor& x = args.inputs[0];
        float* y = args.outputs[0].f32();
        const std::int64_t count = x.numel();
        if (!args.training || rate_ == 0.0) {
            std::copy_n(x.f32(), count, y);
            return;
        }
        auto& state = static_cast<DropoutState&>(*args.state);
        state.scale.resize(static_cast<std::size_t>(count));
        const std::int64_t N = x.dim(0), per_row = N > 0 ? count / N : 0;
        const float kept = static_cast<float>(1.0 / (1.0 - rate_));
        for (std::int64_t n = 0; n < N; ++n) {
            const std::uint64_t row_seed = splitmix64(args.draw_seed ^ splitmix64(static_cast<std::uint64_t>(args.first_row + n)));
            for (std::int64_t j = 0; j < per_row; ++j) {
                // The top 53 bits as a uniform double in [0, 1).
                const double u = static_cast<double>(splitmix64(row_seed + static_cast<std::uint64_t>(j)) >> 11) * 0x1.0p-53;
                const float s = u < rate_ ? 0.0f : kept;
                state.scale[static_cast<std::size_t>(n * per_row + j)] = s;
                y[n * per_row + j] = x.f32()[n * per_row + j] * s;
            }
        }
    }

    void backward(const BackwardArgs& args) const override {
        Tensor* dx = args.input_grads[0];
        if (!dx) return;
        const float* dy = args.output_grads[0].f32();
        const auto& state = static_cast<const DropoutState&>(*args.state);
        if (rate_ == 0.0 || state.scale.empty()) {
            for (std::int64_t j = 0; j < dx->numel(); ++j) dx->f32()[j] += dy[j];
            return;
        }
        for (std::int64_t j = 0; j < dx->numel(); ++j) dx->f32()[j] += dy[j] * state.scale[static_cast<std::size_t>(j)];
    }

private:
    double rate_;
};

}  // namespace

void register_dropout(OpRegistry& registry) {
    registry.add({.name = "dropout",
                  .summary = "in training, zero each element with probability rate and scale the rest by 1/(1-rate); else the identity",
                  .min_inputs = 1,
                  .max_inputs = 1,
                  .attrs = {{"rate", AttrKind::number, std::nullopt, "the probability of zeroing an element, in [0, 1)"}},
                  .make = [](const Attrs& a) {
                      const double rate = a.number("rate");
                      if (!(rate >= 0.0 && rate < 1.0)) throw Error(fmt::format("dropout: rate must be in [0, 1), got {}", rate));
                      return std::make_unique<Dropout>(rate);
                  }});
}

}  // namespace graphrun
