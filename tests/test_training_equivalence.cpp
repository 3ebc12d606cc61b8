// Training in graphrun gives PyTorch's weights: the Siamese model of
// tests/fixtures/make_training_fixture.py (two unshared branches of
// embedding -> lstm on padded ids -> dense, cosine distance, contrastive loss)
// starts from PyTorch's initial weights, sees the same batches and takes the
// same Adam steps; each step's loss must match to 1e-5 and the final weights
// to 1e-4, relative to each tensor's scale. Twice: with graphrun's one LSTM
// bias against PyTorch's bias_hh frozen at zero (siamese_training.json), and
// with PyTorch's two biases, both trained, against graphrun's `biases: 2`
// (siamese_training_two_biases.json).
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/core/executor.hpp"
#include "engine/train/optimizer.hpp"
#include "ops/builtin.hpp"
#include "ops/composites.hpp"
#include "tests/fixtures.hpp"

using namespace graphrun;
using testing::check_close;
using testing::load_fixture;

namespace {

constexpr std::int64_t kVocab = 50, kEmbed = 8, kUnits = 6, kOut = 5;
constexpr std::int64_t kLeftT = 7, kRightT = 9;
constexpr int kSteps = 3;
constexpr double kLossRel = 1e-5, kWeightRel = 1e-4;

using Fixture = std::map<std::string, Tensor>;

const Tensor& at(const Fixture& f, const std::string& name) {
    INFO("fixture tensor '" << name << "'");
    REQUIRE(f.count(name) == 1);
    return f.at(name);
}

// ids (N, T) -> embedding (N, T, E) -> lstm final state at each row's last real
// token (N, H) -> dense (N, D); every parameter named "<side>_<layer>.<param>".
ValueRef branch(Graph& g, const std::string& side, ValueRef ids, int biases) {
    const ValueRef emb = embedding_layer(g, side + "_embedding", ids, kVocab, kEmbed);
    const ValueRef lengths = g.add(side + "_lstm/lengths", "sequence_lengths", {ids});  // (N)
    const ValueRef h = lstm_layer(g, side + "_lstm", emb, kUnits, false, lengths, "", "f32", biases);
    return dense_layer(g, side + "_dense", h, kOut);
}

}  // namespace

TEST_CASE("training the Siamese model with Adam gives PyTorch's weights", "[training][fixtures]") {
  for (const int biases : {1, 2}) {
    INFO("biases: " << biases);
    const Fixture f = load_fixture(biases == 2 ? "siamese_training_two_biases" : "siamese_training");

    Graph g(builtin_ops());
    const ValueRef x1 = g.input("x1", {DType::i64, {kAnyDim, kLeftT}});
    const ValueRef x2 = g.input("x2", {DType::i64, {kAnyDim, kRightT}});
    const ValueRef y = g.input("y", {DType::f32, {kAnyDim}});  // 1 similar, 0 dissimilar
    const ValueRef a = branch(g, "left", x1, biases);          // (N, D)
    const ValueRef b = branch(g, "right", x2, biases);         // (N, D)
    const ValueRef cos = g.add("cos", "cosine", {a, b});       // (N)
    const ValueRef one = g.add("one", "constant", {}, Attrs{{"value", 1.0}});
    const ValueRef d = g.add("d", "sub", {one, cos});  // () - (N) -> (N)
    const ValueRef loss = contrastive_loss(g, "loss", d, y, 1.0);

    // Every parameter starts from PyTorch's, and the fixture holds no others.
    Executor ex(g);
    std::size_t fixture_params = 0;
    for (const auto& [key, tensor] : f) fixture_params += key.rfind("initial/", 0) == 0;
    REQUIRE(g.parameters().size() == fixture_params);
    for (int p : g.parameters()) ex.set(p, at(f, "initial/" + g.node(p).name).clone());

    Adam adam({.lr = 0.01});
    std::vector<float> losses;
    for (int k = 1; k <= kSteps; ++k) {
        const std::string step = "step" + std::to_string(k) + "/";
        ex.set("x1", at(f, step + "x1").clone());
        ex.set("x2", at(f, step + "x2").clone());
        ex.set("y", at(f, step + "y").clone());
        ex.forward();
        check_close(step + "loss", ex.value(loss), at(f, step + "loss"), kLossRel);
        losses.push_back(ex.value(loss).f32()[0]);
        ex.backward(loss);
        adam.step(ex);
    }
    // Training did something: the loss moved far more than the tolerance.
    INFO("loss at step 1: " << losses.front() << ", at step " << kSteps << ": " << losses.back());
    CHECK(std::abs(losses.back() - losses.front()) > 1e-2 * std::abs(losses.front()));

    for (int p : g.parameters()) {
        const std::string& name = g.node(p).name;
        check_close("final " + name, ex.value(name), at(f, "final/" + name), kWeightRel);
    }
  }
}
