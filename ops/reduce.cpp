// sum, mean: over every element, x: (...) -> y: () a scalar, as torch's
// x.sum() and x.mean() with no dim; what a loss needs to become one number.
//   sum:  y = sum_j x_j        dx_j = dy
//   mean: y = sum_j x_j / n    dx_j = dy / n
// Forward on oneDNN's reduction primitive; backward is a broadcast loop.
#include <limits>

#include "engine/core/dnnl_context.hpp"
#include "ops/builtin.hpp"

namespace graphrun {
namespace {

struct ReduceState : OpState {
    Shape shape;
    dnnl::reduction primitive;
};

class Reduce final : public Op {
public:
    explicit Reduce(bool mean) : mean_(mean) {}

    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        expect_dtype("input", in[0], DType::f32);
        return {TensorType{DType::f32, {}}};
    }

    std::unique_ptr<OpState> make_state() const override { return std::make_unique<ReduceState>(); }

    void forward(const ForwardArgs& args) const override {
        const Tensor& x = args.inputs[0];
        Tensor& y = args.outputs[0];
        if (x.numel() == 0) {  // oneDNN refuses empty tensors; torch gives 0 for sum, NaN for mean
            y.fill(mean_ ? std::numeric_limits<float>::quiet_NaN() : 0.0f);
            return;
        }
        if (x.numel() == 1) {  // oneDNN refuses a reduction whose source is already one element
            y.f32()[0] = x.f32()[0];
            return;
        }
        auto& state = *static_cast<ReduceState*>(args.state);
        const auto src = as_memory(x);
        if (!state.primitive || state.shape != x.shape()) {
            state.shape = x.shape();
            const auto src_desc = src.get_desc();
            dnnl::memory::dims ones(src_desc.dims().size(), 1);
            dnnl::memory::desc dst_desc(ones, dnnl::memory::data_type::f32, plain_tag(ones.size()));
            const auto algorithm = mean_ ? dnnl::algorithm::reduction_mean : dnnl::algorithm::reduction_sum;
            state.primitive = make_primitive<dnnl::reduction>(dnnl::reduction::primitive_desc({algorithm, src_desc, dst_desc, 0.0f, 0.0f}, cpu_engine()));
        }
        dnnl::memory::dims ones(src.get_desc().dims().size(), 1);
        dnnl::memory dst({ones, dnnl::memory::data_type::f32, plain_tag(ones.size())}, cpu_engine(), y.raw());
        state.primitive.execute(cpu_stream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
        cpu_stream().wait();
    }

    void backward(const BackwardArgs& args) const override {
        Tensor* dx = args.input_grads[0];
        if (!dx || dx->numel() == 0) return;
        const float g = args.output_grads[0].f32()[0] / (mean_ ? static_cast<float>(dx->numel()) : 1.0f);
        float* d = dx->f32();
        for (std::int64_t j = 0; j < dx->numel(); ++j) d[j] += g;
    }

private:
    bool mean_;
};

}  // namespace

void register_reduce(OpRegistry& registry) {
    registry.add({.name = "sum", .summary = "the sum of every element, a scalar", .min_inputs = 1, .max_inputs = 1, .attrs = {},
                  .make = [](const Attrs&) { return std::make_unique<Reduce>(false); }});
    registry.add({.name = "mean", .summary = "the mean of every element, a scalar", .min_inputs = 1, .max_inputs = 1, .attrs = {},
                  .make = [](const Attrs&) { return std::make_unique<Reduce>(true); }});
}

}  // namespace graphrun
