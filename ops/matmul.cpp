// matmul: y = a b (+ bias), with b transposed when transpose_b (nn.Linear's
// weight layout (M, K), used by `dense`).
//   a: (..., K)  b: (K, M) or (M, K)  bias: (M) -> y: (..., M)
//   Leading dimensions of a are flattened into R rows.
//   da = dy b^T            (R, K)
//   db = a^T dy            (K, M), or dy^T a (M, K) when transposed
//   dbias = sum_rows dy    (M)
// Forward on oneDNN's matmul primitive (bias fused), created once per R.
// Backward on oneDNN's sgemm with beta = 1, which accumulates in place.
#include <fmt/format.h>

#include "engine/core/dnnl_context.hpp"
#include "ops/builtin.hpp"

namespace graphrun {
namespace {

struct MatmulState : OpState {
    std::int64_t rows = -1;
    dnnl::memory::desc a_desc, b_desc, bias_desc, y_desc;
    dnnl::matmul primitive;
};

class Matmul final : public Op {
public:
    explicit Matmul(bool transpose_b) : transpose_b_(transpose_b) {}

    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        for (std::size_t i = 0; i < in.size(); ++i) expect_dtype(i == 0 ? "a" : i == 1 ? "b" : "bias", in[i], DType::f32);
        if (in[0].shape.empty()) throw ShapeError("matmul expects a of rank >= 1, got a scalar");
        expect_rank("b", in[1], 2);
        const std::int64_t k = in[0].shape.back();
        const std::int64_t bk = transpose_b_ ? in[1].shape[1] : in[1].shape[0];
        const std::int64_t m = transpose_b_ ? in[1].shape[0] : in[1].shape[1];
        if (!dims_agree(k, bk))
            throw ShapeError(fmt::format("matmul expects b of shape {}, got {} (a is {})",
                                         transpose_b_ ? fmt::format("(M, K={})", k) : fmt::format("(K={}, M)", k),
                                         to_string(in[1].shape), to_string(in[0].shape)));
        if (in.size() == 3 && in[2].shape != Shape{m})
            throw ShapeError(fmt::format("matmul expects bias of shape ({},), got {}", m, to_string(in[2].shape)));
        Shape out = in[0].shape;
        out.back() = m;
        return {TensorType{DType::f32, out}};
    }

    std::unique_ptr<OpState> make_state() const override { return std::make_unique<MatmulState>(); }

    // 2 rows K M for (rows, K) x (K, M).
    double forward_flops(std::span<const TensorType> in) const override {
        double rows = 1;
        for (std::size_t d = 0; d + 1 < in[0].shape.size(); ++d) rows *= static_cast<double>(in[0].shape[d]);
        return 2.0 * rows * static_cast<double>(in[1].shape[0] * in[1].shape[1]);
    }

    void forward(const ForwardArgs& args) const override {
        using dt = dnnl::memory::data_type;
        const Tensor &a = args.inputs[0], &b = args.inputs[1];
        const bool has_bias = args.inputs.size() == 3;
        const std::int64_t k = a.shape().back(), m = args.outputs[0].shape().back(), rows = a.numel() / k;
        auto& state = *static_cast<MatmulState*>(args.state);
        if (!state.primitive || state.rows != rows) {
            state.rows = rows;
            state.a_desc = dnnl::memory::desc({rows, k}, dt::f32, dnnl::memory::format_tag::ab);
            // A transposed b is the (M, K) row-major matrix read with swapped strides.
            state.b_desc = transpose_b_ ? dnnl::memory::desc({k, m}, dt::f32, dnnl::memory::dims{1, k})
                                        : dnnl::memory::desc({k, m}, dt::f32, dnnl::memory::format_tag::ab);
            state.bias_desc = dnnl::memory::desc({1, m}, dt::f32, dnnl::memory::format_tag::ab);
            state.y_desc = dnnl::memory::desc({rows, m}, dt::f32, dnnl::memory::format_tag::ab);
            auto desc = has_bias ? dnnl::matmul::desc(state.a_desc, state.b_desc, state.bias_desc, state.y_desc)
                                 : dnnl::matmul::desc(state.a_desc, state.b_desc, state.y_desc);
            state.primitive = make_primitive<dnnl::matmul>(dnnl::matmul::primitive_desc(desc, cpu_engine()));
        }
        auto& engine = cpu_engine();
        std::unordered_map<int, dnnl::memory> memories{
            {DNNL_ARG_SRC, dnnl::memory(state.a_desc, engine, const_cast<void*>(a.raw()))},
            {DNNL_ARG_WEIGHTS, dnnl::memory(state.b_desc, engine, const_cast<void*>(b.raw()))},
            {DNNL_ARG_DST, dnnl::memory(state.y_desc, engine, args.outputs[0].raw())}};
        if (has_bias) memories.emplace(DNNL_ARG_BIAS, dnnl::memory(state.bias_desc, engine, const_cast<void*>(args.inputs[2].raw())));
        state.primitive.execute(cpu_stream(), memories);
        cpu_stream().wait();
    }

    void backward(const BackwardArgs& args) const override {
        const Tensor &a = args.inputs[0], &b = args.inputs[1];
        const float* dy = args.output_grads[0].f32();
        const std::int64_t k = a.shape().back(), m = args.outputs[0].shape().back(), rows = a.numel() / k;
        if (rows == 0) return;
        // Row-major sgemm: C (R x C) = op(A) op(B), leading dimensions are row lengths.
        if (Tensor* da = args.input_grads[0]) {
            // da (R, K) += dy (R, M) . b^T, where b^T is (M, K) when b is (K, M).
            if (transpose_b_) check(dnnl_sgemm('N', 'N', rows, k, m, 1.0f, dy, m, b.f32(), k, 1.0f, da->f32(), k));
            else check(dnnl_sgemm('N', 'T', rows, k, m, 1.0f, dy, m, b.f32(), m, 1.0f, da->f32(), k));
        }
        if (Tensor* db = args.input_grads[1]) {
            if (transpose_b_) check(dnnl_sgemm('T', 'N', m, k, rows, 1.0f, dy, m, a.f32(), k, 1.0f, db->f32(), k));  // (M, K) += dy^T a
            else check(dnnl_sgemm('T', 'N', k, m, rows, 1.0f, a.f32(), k, dy, m, 1.0f, db->f32(), m));              // (K, M) += a^T dy
        }
        if (args.inputs.size() == 3 && args.input_grads[2]) {
            float* dbias = args.input_grads[2]->f32();
            for (std::int64_t r = 0; r < rows; ++r)
                for (std::int64_t j = 0; j < m; ++j) dbias[j] += dy[r * m + j];
        }
    }

private:
    static void check(dnnl_status_t status) {
        if (status != dnnl_success) throw Error(fmt::format("oneDNN sgemm failed with status {}", static_cast<int>(status)));
    }

    bool transpose_b_;
};

}  // namespace

void register_matmul(OpRegistry& registry) {
    registry.add({.name = "matmul",
                  .summary = "a b (+ bias); b is (K, M), or (M, K) with transpose_b",
                  .min_inputs = 2,
                  .max_inputs = 3,
                  .attrs = {{"transpose_b", AttrKind::boolean, AttrValue{false}, "b is stored (M, K), as nn.Linear's weight"}},
                  .make = [](const Attrs& a) { return std::make_unique<Matmul>(a.boolean("transpose_b")); }});
}

}  // namespace graphrun
