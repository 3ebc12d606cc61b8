// layer_norm: each row normalized over its last axis, then scaled and
// shifted, as nn.LayerNorm(D, eps) (biased variance, eps inside the root).
//   x: (..., D), weight: (D), bias: (D) -> y: (..., D)
//   mu = mean(x_r), rstd = 1 / sqrt(mean((x_r - mu)^2) + eps), xhat = (x_r - mu) rstd
//   y_r = xhat * weight + bias
//   dweight += sum_r dy_r * xhat_r,  dbias += sum_r dy_r
//   g = dy_r * weight:  dx_r = rstd (g - mean(g) - xhat mean(g * xhat))
// Row statistics in double; rows are a feature vector (tens to hundreds).
#include <cmath>

#include <fmt/format.h>

#include "ops/builtin.hpp"

namespace graphrun {
namespace {

class LayerNorm final : public Op {
public:
    explicit LayerNorm(double eps) : eps_(eps) {}

    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        expect_dtype("x", in[0], DType::f32);
        if (in[0].shape.empty()) throw ShapeError(fmt::format("layer_norm expects x (..., D), got the scalar {}", to_string(in[0])));
        const std::int64_t D = in[0].shape.back();
        for (std::size_t k : {std::size_t{1}, std::size_t{2}}) {
            expect_dtype(k == 1 ? "weight" : "bias", in[k], DType::f32);
            if (in[k].shape.size() != 1 || !dims_agree(in[k].shape[0], D))
                throw ShapeError(fmt::format("layer_norm expects {} (D) with D = {}, the last axis of x {}, got {}", k == 1 ? "weight" : "bias", D,
                                             to_string(in[0].shape), to_string(in[k].shape)));
        }
        return {in[0]};
    }

    void forward(const ForwardArgs& args) const override {
        const Tensor &x = args.inputs[0], &w = args.inputs[1], &b = args.inputs[2];
        const std::int64_t D = x.shape().back(), rows = D > 0 ? x.numel() / D : 0;
        float* y = args.outputs[0].f32();
        for (std::int64_t r = 0; r < rows; ++r) {
            const Stats s = stats(x.f32() + r * D, D);
            for (std::int64_t k = 0; k < D; ++k)
                y[r * D + k] = static_cast<float>((x.f32()[r * D + k] - s.mean) * s.rstd * w.f32()[k] + b.f32()[k]);
        }
    }

    void backward(const BackwardArgs& args) const override {
        const Tensor &x = args.inputs[0], &w = args.inputs[1];
        const std::int64_t D = x.shape().back(), rows = D > 0 ? x.numel() / D : 0;
        const float* dy = args.output_grads[0].f32();
        Tensor *dx = args.input_grads[0], *dw = args.input_grads[1], *db = args.input_grads[2];
        std::vector<double> xhat(static_cast<std::size_t>(D));
        for (std::int64_t r = 0; r < rows; ++r) {
            const float* xr = x.f32() + r * D;
            const float* dyr = dy + r * D;
            const Stats s = stats(xr, D);
            double mean_g = 0, mean_g_xhat = 0;
            for (std::int64_t k = 0; k < D; ++k) {
                xhat[static_cast<std::size_t>(k)] = (xr[k] - s.mean) * s.rstd;
                const double g = static_cast<double>(dyr[k]) * w.f32()[k];
                mean_g += g;
                mean_g_xhat += g * xhat[static_cast<std::size_t>(k)];
                if (dw) dw->f32()[k] += static_cast<float>(dyr[k] * xhat[static_cast<std::size_t>(k)]);
                if (db) db->f32()[k] += dyr[k];
            }
            if (!dx) continue;
            mean_g /= static_cast<double>(D);
            mean_g_xhat /= static_cast<double>(D);
            for (std::int64_t k = 0; k < D; ++k) {
                const double g = static_cast<double>(dyr[k]) * w.f32()[k];
                dx->f32()[r * D + k] += static_cast<float>(s.rstd * (g - mean_g - xhat[static_cast<std::size_t>(k)] * mean_g_xhat));
            }
        }
    }

private:
    struct Stats {
        double mean, rstd;
    };
    Stats stats(const float* x, std::int64_t D) const {
        double mean = 0, var = 0;
        for (std::int64_t k = 0; k < D; ++k) mean += x[k];
        mean /= static_cast<double>(D);
        for (std::int64_t k = 0; k < D; ++k) var += (x[k] - mean) * (x[k] - mean);
        var /= static_cast<double>(D);
        return {mean, 1.0 / std::sqrt(var + eps_)};
    }

    double eps_;
};

}  // namespace

void register_layer_norm(OpRegistry& registry) {
    registry.add({.name = "layer_norm",
                  .summary = "each row normalized over its last axis, then scaled by weight (D) and shifted by bias (D)",
                  .min_inputs = 3,
                  .max_inputs = 3,
                  .attrs = {{"eps", AttrKind::number, AttrValue{1e-5}, "added to the variance, as nn.LayerNorm's eps"}},
                  .make = [](const Attrs& a) { return std::make_unique<LayerNorm>(a.number("eps")); }});
}

}  // namespace graphrun
