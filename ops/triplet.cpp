// triplet: the triplet margin loss with negatives mined within the batch,
// on a score matrix whose diagonal holds the positives (higher = more similar,
// e.g. cosine_matrix of the left and right embeddings).
//   S: (N, N) f32 -> loss: () a scalar
//   For anchor i: positive s_p = S[i, i]; negative s_n = S[i, j*] for one j* != i;
//   loss = (1/N) sum_i max(0, s_n - s_p + margin)
//   (in distances d = 1 - s: max(0, d_p - d_n + margin), FaceNet's loss)
//   dS[i, j*] += dloss / N and dS[i, i] -= dloss / N where the hinge is positive.
// Mining, per anchor, among the other columns of its row:
//   hardest    the most similar negative (Hermans et al.'s batch-hard)
//   semi_hard  the most similar negative that is less similar than the
//              positive (farther, as FaceNet's semi-hard negatives); when every
//              negative is more similar than the positive, the least similar
//              one (TensorFlow Addons' triplet_semihard_loss does the same)
// A row with no other column (N = 1) adds 0. Ties go to the first column.
// The choice is recomputed in backward from S, so nothing is kept.
#include <limits>

#include <fmt/format.h>

#include "ops/builtin.hpp"

namespace graphrun {
namespace {

enum class Mining { hardest, semi_hard };

class Triplet final : public Op {
public:
    Triplet(double margin, Mining mining) : margin_(margin), mining_(mining) {}

    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        expect_dtype("scores", in[0], DType::f32);
        expect_rank("scores", in[0], 2);
        if (!dims_agree(in[0].shape[0], in[0].shape[1]))
            throw ShapeError(fmt::format("triplet expects a square score matrix (N, N) with the positives on its diagonal, got {}",
                                         to_string(in[0].shape)));
        return {TensorType{DType::f32, {}}};
    }

    void forward(const ForwardArgs& args) const override {
        const Tensor& S = args.inputs[0];
        const std::int64_t N = S.dim(0);
        double total = 0;
        for (std::int64_t i = 0; i < N; ++i) total += hinge(S.f32() + i * N, i, N).value;
        args.outputs[0].f32()[0] = N == 0 ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(total / static_cast<double>(N));
    }

    void backward(const BackwardArgs& args) const override {
        Tensor* dS = args.input_grads[0];
        if (!dS) return;
        const Tensor& S = args.inputs[0];
        const std::int64_t N = S.dim(0);
        const float g = static_cast<float>(static_cast<double>(args.output_grads[0].f32()[0]) / static_cast<double>(N));
        for (std::int64_t i = 0; i < N; ++i) {
            const Hinge h = hinge(S.f32() + i * N, i, N);
            if (h.value <= 0) continue;
            dS->f32()[i * N + h.negative] += g;
            dS->f32()[i * N + i] -= g;
        }
    }

private:
    struct Hinge {
        double value = 0;            // max(0, s_n - s_p + margin)
        std::int64_t negative = -1;  // j*, or -1 when the row has no other column
    };

    Hinge hinge(const float* row, std::int64_t i, std::int64_t N) const {
        const float positive = row[i];
        std::int64_t hardest = -1, farther = -1, easiest = -1;
        for (std::int64_t j = 0; j < N; ++j) {
            if (j == i) continue;
            if (hardest < 0 || row[j] > row[hardest]) hardest = j;
            if (easiest < 0 || row[j] < row[easiest]) easiest = j;
            if (row[j] < positive && (farther < 0 || row[j] > row[farther])) farther = j;
        }
        if (hardest < 0) return {};
        const std::int64_t j = mining_ == Mining::hardest ? hardest : farther >= 0 ? farther : easiest;
        return {std::max(0.0, static_cast<double>(row[j]) - positive + margin_), j};
    }

    double margin_;
    Mining mining_;
};

}  // namespace

void register_triplet(OpRegistry& registry) {
    registry.add({.name = "triplet",
                  .summary = "triplet margin loss on an (N, N) score matrix, positives on the diagonal, negatives mined in the batch -> ()",
                  .min_inputs = 1,
                  .max_inputs = 1,
                  .attrs = {{"margin", AttrKind::number, AttrValue{0.2}, "how much more similar the positive must be than the negative"},
                            {"mining", AttrKind::string, AttrValue{std::string("semi_hard")}, "hardest | semi_hard: which negative of the batch each anchor is compared with"}},
                  .make = [](const Attrs& a) {
                      const std::string& mining = a.string("mining");
                      if (mining != "hardest" && mining != "semi_hard")
                          throw Error(fmt::format("triplet: mining must be hardest or semi_hard, got '{}'", mining));
                      return std::make_unique<Triplet>(a.number("margin"), mining == "hardest" ? Mining::hardest : Mining::semi_hard);
                  }});
}

}  // namespace graphrun
