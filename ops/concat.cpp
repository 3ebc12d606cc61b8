// concat: tensors joined along their last axis, as torch.cat(xs, dim=-1);
// a bidirectional layer's two directions side by side.
//   x_k: (..., D_k), the same leading shape -> y: (..., sum_k D_k)
//   y[r, off_k + j] = x_k[r, j]          dx_k[r, j] += dy[r, off_k + j]
#include <cstring>

#include <fmt/format.h>

#include "ops/builtin.hpp"

namespace graphrun {
namespace {

class Concat final : public Op {
public:
    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        Shape out = in[0].shape;
        if (out.empty()) throw ShapeError(fmt::format("concat expects tensors with a last axis to join, got the scalar {}", to_string(in[0])));
        for (std::size_t k = 0; k < in.size(); ++k) {
            expect_dtype("each input", in[k], DType::f32);
            const Shape& s = in[k].shape;
            bool lead_agrees = s.size() == out.size();
            for (std::size_t d = 0; lead_agrees && d + 1 < s.size(); ++d) lead_agrees = dims_agree(s[d], out[d]);
            if (!lead_agrees)
                throw ShapeError(fmt::format("concat expects inputs that differ only in the last axis, got {} and {}", to_string(in[0].shape),
                                             to_string(s)));
            if (k > 0) out.back() += s.back();
            for (std::size_t d = 0; d + 1 < s.size(); ++d)
                if (out[d] == kAnyDim) out[d] = s[d];
        }
        return {TensorType{DType::f32, out}};
    }

    void forward(const ForwardArgs& args) const override {
        Tensor& y = args.outputs[0];
        const std::int64_t width = y.shape().back(), rows = y.numel() / std::max<std::int64_t>(width, 1);
        std::int64_t offset = 0;
        for (const Tensor& x : args.inputs) {
            const std::int64_t d = x.shape().back();
            for (std::int64_t r = 0; r < rows; ++r)
                std::memcpy(y.f32() + r * width + offset, x.f32() + r * d, static_cast<std::size_t>(d) * sizeof(float));
            offset += d;
        }
    }

    void backward(const BackwardArgs& args) const override {
        const Tensor& dy = args.output_grads[0];
        const std::int64_t width = dy.shape().back(), rows = dy.numel() / std::max<std::int64_t>(width, 1);
        std::int64_t offset = 0;
        for (std::size_t k = 0; k < args.inputs.size(); ++k) {
            const std::int64_t d = args.inputs[k].shape().back();
            if (Tensor* dx = args.input_grads[k])
                for (std::int64_t r = 0; r < rows; ++r)
                    for (std::int64_t j = 0; j < d; ++j) dx->f32()[r * d + j] += dy.f32()[r * width + offset + j];
            offset += d;
        }
    }
};

}  // namespace

void register_concat(OpRegistry& registry) {
    registry.add({.name = "concat",
                  .summary = "tensors joined along the last axis: (..., D1), (..., D2), ... -> (..., D1 + D2 + ...)",
                  .min_inputs = 2,
                  .max_inputs = 8,
                  .attrs = {},
                  .make = [](const Attrs&) { return std::make_unique<Concat>(); }});
}

}  // namespace graphrun
