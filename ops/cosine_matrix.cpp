// cosine_matrix: the cosine similarity of every row of a with every row of b,
// as F.normalize(a, dim=1, eps) @ F.normalize(b, dim=1, eps).T, the score
// matrix of in-batch objectives (sentence-transformers' cos_sim).
//   a: (N, D), b: (M, D) -> S: (N, M)
//   S[i, j] = a_i . b_j / (|a_i|_e |b_j|_e),  |v|_e = max(|v|, eps)
//   da_i = sum_j dS[i, j] b_j / (|a_i|_e |b_j|_e) - [|a_i| >= eps] (sum_j dS[i, j] S[i, j]) a_i / |a_i|_e^2
//   db_j = sum_i dS[i, j] a_i / (|a_i|_e |b_j|_e) - [|b_j| >= eps] (sum_i dS[i, j] S[i, j]) b_j / |b_j|_e^2
// The eps clamp is the one of `cosine`: a zero row gives similarities 0 and
// finite gradients. Plain loops with double sums: N, M are a batch (tens of
// rows) and D a few hundred, far below what a GEMM call would pay off.
#include <cmath>

#include <fmt/format.h>

#include "ops/builtin.hpp"

namespace graphrun {
namespace {

class CosineMatrix final : public Op {
public:
    explicit CosineMatrix(double eps) : eps_(eps) {}

    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        expect_dtype("a", in[0], DType::f32);
        expect_dtype("b", in[1], DType::f32);
        expect_rank("a", in[0], 2);
        expect_rank("b", in[1], 2);
        if (!dims_agree(in[0].shape[1], in[1].shape[1]))
            throw ShapeError(fmt::format("cosine_matrix expects a (N, D) and b (M, D) with the same D, got {} and {}", to_string(in[0].shape),
                                         to_string(in[1].shape)));
        return {TensorType{DType::f32, {in[0].shape[0], in[1].shape[0]}}};
    }

    double forward_flops(std::span<const TensorType> in) const override {
        return 2.0 * static_cast<double>(in[0].shape[0] * in[1].shape[0] * in[0].shape[1]);
    }

    void forward(const ForwardArgs& args) const override {
        const Tensor &a = args.inputs[0], &b = args.inputs[1];
        const std::int64_t N = a.dim(0), M = b.dim(0), D = a.dim(1);
        const std::vector<Norm> na = norms(a), nb = norms(b);
        float* S = args.outputs[0].f32();
        for (std::int64_t i = 0; i < N; ++i)
            for (std::int64_t j = 0; j < M; ++j)
                S[i * M + j] = static_cast<float>(dot(a.f32() + i * D, b.f32() + j * D, D) / (na[i].value * nb[j].value));
    }

    void backward(const BackwardArgs& args) const override {
        const Tensor &a = args.inputs[0], &b = args.inputs[1];
        const std::int64_t M = b.dim(0);
        const float* dS = args.output_grads[0].f32();
        const float* S = args.outputs[0].f32();
        const std::vector<Norm> na = norms(a), nb = norms(b);
        // da reads dS by rows, db by columns: one loop over either side's rows.
        if (Tensor* da = args.input_grads[0]) row_gradients(a, na, b, nb, dS, S, M, 1, *da);
        if (Tensor* db = args.input_grads[1]) row_gradients(b, nb, a, na, dS, S, 1, M, *db);
    }

private:
    struct Norm {
        double value;  // clamped to eps
        bool clamped;  // |v| < eps: the norm passes no gradient
    };

    static double dot(const float* x, const float* y, std::int64_t D) {
        double s = 0;
        for (std::int64_t k = 0; k < D; ++k) s += static_cast<double>(x[k]) * y[k];
        return s;
    }

    // For each row x_r of one side (the other side's rows y_c), with dS[r, c] and S[r, c]
    // at r * row_step + c * column_step: the dS-weighted sum of the y_c, then the pull along x_r,
    //   dx_r += sum_c dS[r, c] y_c / (|x_r|_e |y_c|_e) - [|x_r| >= eps] (sum_c dS[r, c] S[r, c]) x_r / |x_r|_e^2
    static void row_gradients(const Tensor& x, const std::vector<Norm>& nx, const Tensor& y, const std::vector<Norm>& ny, const float* dS,
                              const float* S, std::int64_t row_step, std::int64_t column_step, Tensor& dx) {
        const std::int64_t R = x.dim(0), C = y.dim(0), D = x.dim(1);
        std::vector<double> acc(static_cast<std::size_t>(D));
        for (std::int64_t r = 0; r < R; ++r) {
            std::fill(acc.begin(), acc.end(), 0.0);
            double along = 0;
            for (std::int64_t c = 0; c < C; ++c) {
                const std::int64_t at = r * row_step + c * column_step;
                const double w = dS[at] / (nx[r].value * ny[c].value);
                const float* yc = y.f32() + c * D;
                for (std::int64_t k = 0; k < D; ++k) acc[k] += w * yc[k];
                along += static_cast<double>(dS[at]) * S[at];
            }
            const double pull = nx[r].clamped ? 0.0 : along / (nx[r].value * nx[r].value);
            const float* xr = x.f32() + r * D;
            float* d = dx.f32() + r * D;
            for (std::int64_t k = 0; k < D; ++k) d[k] += static_cast<float>(acc[k] - pull * xr[k]);
        }
    }

    std::vector<Norm> norms(const Tensor& x) const {
        const std::int64_t rows = x.dim(0), D = x.dim(1);
        std::vector<Norm> out(static_cast<std::size_t>(rows));
        for (std::int64_t r = 0; r < rows; ++r) {
            const double n = std::sqrt(dot(x.f32() + r * D, x.f32() + r * D, D));
            out[static_cast<std::size_t>(r)] = {std::max(n, eps_), n < eps_};
        }
        return out;
    }

    double eps_;
};

}  // namespace

void register_cosine_matrix(OpRegistry& registry) {
    registry.add({.name = "cosine_matrix",
                  .summary = "cosine similarity of every row of a (N, D) with every row of b (M, D) -> (N, M)",
                  .min_inputs = 2,
                  .max_inputs = 2,
                  .attrs = {{"eps", AttrKind::number, AttrValue{1e-8}, "the smallest norm divided by, as F.normalize's eps"}},
                  .make = [](const Attrs& a) { return std::make_unique<CosineMatrix>(a.number("eps")); }});
}

}  // namespace graphrun
