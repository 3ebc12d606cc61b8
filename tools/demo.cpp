// `graphrun demo`: a small Siamese LSTM trained on synthetic pairs, built in
// C++ with the engine's API. It is the main job until YAML specs land.
//
// Each sequence belongs to one of a few latent classes, and each class draws
// most of its tokens from its own slice of the vocabulary; a similar pair
// (y = 1) shares a class, a dissimilar one (y = 0) does not. Half the pairs are
// dissimilar: with positives only, the contrastive loss is minimized by
// mapping every input to one point (the collapse this demo shows avoided).
#include "tools/demo.hpp"

#include <algorithm>
#include <chrono>
#include <random>

#include <fmt/format.h>

#include "engine/initializer.hpp"
#include "engine/optimizer.hpp"
#include "ops/builtin.hpp"
#include "ops/composites.hpp"

namespace graphrun {
namespace {

constexpr std::int64_t kVocab = 64, kClasses = 4, kLeftLength = 12, kRightLength = 20;

struct Pairs {
    std::vector<std::int32_t> left, right;  // (count, kLeftLength), (count, kRightLength)
    std::vector<float> label;
};

void draw_sequence(std::mt19937& rng, std::int64_t cls, std::int64_t length, std::vector<std::int32_t>& out) {
    const std::int64_t slice = kVocab / kClasses;
    std::uniform_int_distribution<std::int64_t> own(cls * slice, cls * slice + slice - 1), any(0, kVocab - 1);
    std::bernoulli_distribution from_own(0.6);
    for (std::int64_t t = 0; t < length; ++t) out.push_back(static_cast<std::int32_t>(from_own(rng) ? own(rng) : any(rng)));
}

Pairs make_pairs(std::mt19937& rng, std::int64_t count) {
    Pairs p;
    std::uniform_int_distribution<std::int64_t> cls(0, kClasses - 1), shift(1, kClasses - 1);
    for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t a = cls(rng);
        const bool similar = i % 2 == 0;
        const std::int64_t b = similar ? a : (a + shift(rng)) % kClasses;
        draw_sequence(rng, a, kLeftLength, p.left);
        draw_sequence(rng, b, kRightLength, p.right);
        p.label.push_back(similar ? 1.0f : 0.0f);
    }
    return p;
}

Tensor ids(const std::vector<std::int32_t>& all, std::int64_t length, std::int64_t first, std::int64_t count) {
    Tensor t({count, length}, DType::i32);
    std::copy_n(all.begin() + first * length, count * length, t.i32());
    return t;
}

// ROC AUC of the similarity: the chance that a random similar pair scores above a random dissimilar one.
double roc_auc(const std::vector<float>& sim, const std::vector<float>& label) {
    double wins = 0, pairs = 0;
    for (std::size_t i = 0; i < sim.size(); ++i)
        for (std::size_t j = 0; j < sim.size(); ++j)
            if (label[i] == 1 && label[j] == 0) {
                wins += sim[i] > sim[j] ? 1.0 : sim[i] == sim[j] ? 0.5 : 0.0;
                pairs += 1;
            }
    return pairs ? wins / pairs : 0.5;
}

}  // namespace

int run_demo(int epochs) {
    // Two branches that do not share weights, as in the Keras model.
    Graph g(builtin_ops());
    const ValueRef x1 = g.input("x1", {DType::i32, {kAnyDim, kLeftLength}});
    const ValueRef x2 = g.input("x2", {DType::i32, {kAnyDim, kRightLength}});
    const ValueRef y = g.input("y", {DType::f32, {kAnyDim}});
    const ValueRef left = dense_layer(g, "left_dense", lstm_layer(g, "left_lstm", embedding_layer(g, "left_embedding", x1, kVocab, 16), 32), 32);
    const ValueRef right = dense_layer(g, "right_dense", lstm_layer(g, "right_lstm", embedding_layer(g, "right_embedding", x2, kVocab, 16), 32), 32);
    const ValueRef similarity = g.add("similarity", "cosine", {left, right});
    // The loss wants a distance: d = 1 - cosine, not the similarity itself.
    const ValueRef distance = g.add("distance", "sub", {g.add("one", "constant", {}, {{"value", 1.0}}), similarity});
    const ValueRef loss = contrastive_loss(g, "loss", distance, y, 1.0);

    Executor ex(g);
    initialize_parameters(ex, 42);
    Adam adam({.lr = 0.01});
    std::mt19937 rng(7);
    const std::int64_t batch = 32, train_count = 2048, val_count = 256;
    const Pairs val = make_pairs(rng, val_count);
    fmt::print("graphrun demo: Siamese Embedding({}, 16) -> LSTM(32) -> Dense(32) on lengths {} and {}, {} parameters\n", kVocab,
               kLeftLength, kRightLength, g.parameter_count());

    std::vector<std::int64_t> order(static_cast<std::size_t>(train_count / batch));
    for (std::size_t b = 0; b < order.size(); ++b) order[b] = static_cast<std::int64_t>(b);
    double last_auc = 0;
    for (int epoch = 1; epoch <= epochs; ++epoch) {
        const auto start = std::chrono::steady_clock::now();
        // Fresh pairs every epoch: the generator is endless, so nothing is memorized.
        const Pairs train = make_pairs(rng, train_count);
        std::shuffle(order.begin(), order.end(), rng);
        double train_loss = 0;
        for (std::int64_t b : order) {
            ex.set("x1", ids(train.left, kLeftLength, b * batch, batch));
            ex.set("x2", ids(train.right, kRightLength, b * batch, batch));
            ex.set("y", Tensor::from_floats({batch}, std::span(train.label).subspan(static_cast<std::size_t>(b * batch), batch)));
            ex.forward();
            train_loss += ex.value(loss).f32()[0];
            ex.backward(loss);
            adam.step(ex);
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

        ex.set("x1", ids(val.left, kLeftLength, 0, val_count));
        ex.set("x2", ids(val.right, kRightLength, 0, val_count));
        ex.set("y", Tensor::from_floats({val_count}, val.label));
        ex.forward();
        const auto sim = ex.value(similarity).floats();
        std::vector<float> sims(sim.begin(), sim.end());
        double pos = 0, neg = 0;
        for (std::size_t i = 0; i < sims.size(); ++i) (val.label[i] == 1 ? pos : neg) += sims[i];
        last_auc = roc_auc(sims, val.label);
        fmt::print("epoch {:2d}  train_loss {:.4f}  val_loss {:.4f}  val_auc {:.3f}  pos_sim {:+.3f}  neg_sim {:+.3f}  {:.0f} samples/s\n",
                   epoch, train_loss / static_cast<double>(order.size()), ex.value(loss).f32()[0], last_auc, pos / (val_count / 2),
                   neg / (val_count / 2), static_cast<double>(train_count) / seconds);
    }
    return 0;
}

}  // namespace graphrun
