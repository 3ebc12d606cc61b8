// cosine: row-wise cosine similarity, as torch.nn.functional.cosine_similarity(a, b, dim=-1, eps).
//   a, b: (N, D) -> y: (N)
//   y = a.b / (|a|_e |b|_e),  |v|_e = max(|v|, eps)
//   da = dy * (b / (|a|_e |b|_e) - [|a| >= eps] y a / |a|_e^2), and db alike.
// A zero vector gives y = 0 and finite gradients: the clamp keeps the
// denominators at least eps, and the norm's own derivative is dropped where
// it is clamped. oneDNN has no cosine primitive: this is a loop over rows.
#include <cmath>

#include <fmt/format.h>

#include "ops/builtin.hpp"

namespace graphrun {
namespace {

class Cosine final : public Op {
public:
    explicit Cosine(double eps) : eps_(eps) {}

    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        expect_dtype("a", in[0], DType::f32);
        expect_dtype("b", in[1], DType::f32);
        expect_rank("a", in[0], 2);
        if (!shapes_agree(in[0].shape, in[1].shape))
            throw ShapeError(fmt::format("cosine expects a and b of the same shape (N, D), got {} and {}", to_string(in[0].shape),
                                         to_string(in[1].shape)));
        return {TensorType{DType::f32, {in[0].shape[0] == kAnyDim ? in[1].shape[0] : in[0].shape[0]}}};
    }

    void forward(const ForwardArgs& args) const override {
        const Tensor &a = args.inputs[0], &b = args.inputs[1];
        const std::int64_t n = a.dim(0), d = a.dim(1);
        for (std::int64_t i = 0; i < n; ++i) {
            const Row r = row(a.f32() + i * d, b.f32() + i * d, d);
            args.outputs[0].f32()[i] = static_cast<float>(r.dot / (r.norm_a * r.norm_b));
        }
    }

    void backward(const BackwardArgs& args) const override {
        const Tensor &a = args.inputs[0], &b = args.inputs[1];
        float* da = args.input_grads[0] ? args.input_grads[0]->f32() : nullptr;
        float* db = args.input_grads[1] ? args.input_grads[1]->f32() : nullptr;
        const std::int64_t n = a.dim(0), d = a.dim(1);
        for (std::int64_t i = 0; i < n; ++i) {
            const float* pa = a.f32() + i * d;
            const float* pb = b.f32() + i * d;
            const Row r = row(pa, pb, d);
            const double dy = args.output_grads[0].f32()[i];
            const double y = r.dot / (r.norm_a * r.norm_b);
            const double scale = dy / (r.norm_a * r.norm_b);
            // The norm's derivative only where it was not clamped to eps.
            const double pull_a = r.clamped_a ? 0.0 : dy * y / (r.norm_a * r.norm_a);
            const double pull_b = r.clamped_b ? 0.0 : dy * y / (r.norm_b * r.norm_b);
            for (std::int64_t k = 0; k < d; ++k) {
                if (da) da[i * d + k] += static_cast<float>(scale * pb[k] - pull_a * pa[k]);
                if (db) db[i * d + k] += static_cast<float>(scale * pa[k] - pull_b * pb[k]);
            }
        }
    }

private:
    struct Row {
        double dot, norm_a, norm_b;  // norms already clamped to eps
        bool clamped_a, clamped_b;
    };

    // Sums in double: D is small and the result feeds a loss near its optimum.
    Row row(const float* a, const float* b, std::int64_t d) const {
        double dot = 0, aa = 0, bb = 0;
        for (std::int64_t k = 0; k < d; ++k) {
            dot += static_cast<double>(a[k]) * b[k];
            aa += static_cast<double>(a[k]) * a[k];
            bb += static_cast<double>(b[k]) * b[k];
        }
        const double na = std::sqrt(aa), nb = std::sqrt(bb);
        return {dot, std::max(na, eps_), std::max(nb, eps_), na < eps_, nb < eps_};
    }

    double eps_;
};

}  // namespace

void register_cosine(OpRegistry& registry) {
    registry.add({.name = "cosine",
                  .summary = "row-wise cosine similarity of two (N, D) tensors -> (N)",
                  .min_inputs = 2,
                  .max_inputs = 2,
                  .attrs = {{"eps", AttrKind::number, AttrValue{1e-8}, "the smallest norm divided by, as PyTorch's eps"}},
                  .make = [](const Attrs& a) { return std::make_unique<Cosine>(a.number("eps")); }});
}

}  // namespace graphrun
