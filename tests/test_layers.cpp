// layer_norm, dropout, the euclidean and manhattan distances and the
// element-wise ops under them (sqrt, abs, exp, sum_last): finite differences,
// PyTorch (tests/fixtures/layers.json, make_layer_fixtures.py), and what
// dropout promises: its rate, the identity outside training, masks per
// sample that do not depend on how a batch is split.
#include <cmath>

#include <catch2/catch.hpp>

#include "engine/core/executor.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/initializer.hpp"
#include "ops/builtin.hpp"
#include "ops/composites.hpp"
#include "tests/fixtures.hpp"
#include "tests/gradcheck.hpp"

using namespace graphrun;
using Catch::Matchers::Contains;
using testing::check_close;
using testing::check_op_gradients;
using testing::load_fixture;
using testing::random_tensor;

namespace {
constexpr double kRel = 1e-5;
}

TEST_CASE("sqrt, abs, exp, sum_last, layer_norm and dropout pass gradcheck", "[layers][gradcheck]") {
    int checked = 0;
    checked += check_op_gradients("sqrt", {random_tensor({3, 4}, 1, 0.5f, 2.0f)});
    checked += check_op_gradients("abs", {random_tensor({3, 4}, 2, 0.1f, 1.0f)});
    checked += check_op_gradients("abs", {random_tensor({3, 4}, 3, -1.0f, -0.1f)});
    checked += check_op_gradients("exp", {random_tensor({3, 4}, 4)});
    checked += check_op_gradients("sum_last", {random_tensor({2, 3, 5}, 5)});
    checked += check_op_gradients("layer_norm", {random_tensor({2, 3, 6}, 6, -2.0f, 2.0f), random_tensor({6}, 7, 0.5f, 1.5f), random_tensor({6}, 8)});
    // In training the mask is fixed for a step, so dropout is linear in x and checkable.
    checked += check_op_gradients("dropout", {random_tensor({4, 10}, 9)}, {{"rate", 0.3}});
    CHECK(checked > 0);
}

TEST_CASE("layer_norm, euclidean and manhattan match PyTorch", "[layers][fixtures]") {
    const auto f = load_fixture("layers");
    {
        Graph g(builtin_ops());
        const ValueRef x = g.parameter("x", f.at("x").type());
        const ValueRef y = layer_norm_layer(g, "norm", x);
        Executor ex(g);
        ex.set("x", f.at("x").clone());
        ex.set("norm.weight", f.at("weight").clone());
        ex.set("norm.bias", f.at("bias").clone());
        ex.forward();
        check_close("layer_norm y", ex.value(y), f.at("y"), kRel);
        ex.backward({{y, f.at("w").clone()}});
        check_close("dx", ex.grad("x"), f.at("dx"), kRel);
        check_close("dweight", ex.grad("norm.weight"), f.at("dweight"), kRel);
        check_close("dbias", ex.grad("norm.bias"), f.at("dbias"), kRel);
    }
    for (const std::string name : {"euclidean", "manhattan"}) {
        INFO(name);
        Graph g(builtin_ops());
        const ValueRef a = g.parameter("a", f.at("a").type()), b = g.parameter("b", f.at("b").type());
        const ValueRef d = name == "euclidean" ? euclidean_distance(g, "d", a, b) : manhattan_distance(g, "d", a, b);
        Executor ex(g);
        ex.set("a", f.at("a").clone());
        ex.set("b", f.at("b").clone());
        ex.forward();
        check_close(name, ex.value(d), f.at(name), kRel);
        ex.backward({{d, f.at("w_d").clone()}});
        check_close("da", ex.grad("a"), f.at("da_" + name), kRel);
        check_close("db", ex.grad("b"), f.at("db_" + name), kRel);
    }
}

TEST_CASE("the euclidean distance of identical rows has a finite gradient", "[layers]") {
    Graph g(builtin_ops());
    const ValueRef a = g.parameter("a", {DType::f32, {2, 3}}), b = g.parameter("b", {DType::f32, {2, 3}});
    const ValueRef d = euclidean_distance(g, "d", a, b);
    Executor ex(g);
    const Tensor same = random_tensor({2, 3}, 1);
    ex.set("a", same.clone());
    ex.set("b", same.clone());
    ex.forward();
    CHECK(ex.value(d).f32()[0] == Approx(std::sqrt(3) * 1e-6).epsilon(1e-3));
    ex.backward({{d, random_tensor({2}, 2)}});
    for (float v : ex.grad("a").floats()) CHECK(std::isfinite(v));
}

namespace {
// One dropout node on x, run in training with the executor's draws set as given.
Tensor dropped(const Tensor& x, double rate, std::uint64_t seed, std::uint64_t step, std::int64_t first_row, bool training = true) {
    Graph g(builtin_ops());
    const ValueRef in = g.input("x", x.type());
    const ValueRef y = g.add("drop", "dropout", {in}, {{"rate", rate}});
    Executor ex(g);
    ex.set("x", x.clone());
    ex.set_draws(seed, step, first_row);
    ex.forward(training ? Executor::Mode::training : Executor::Mode::inference);
    return ex.value(y).clone();
}
}  // namespace

TEST_CASE("dropout drops at its rate, scales the rest, draws per sample, and is the identity outside training", "[layers]") {
    const Tensor x = random_tensor({64, 50}, 3, 0.5f, 1.0f);  // no zeros: a 0 in y is a drop
    const Tensor y = dropped(x, 0.25, 7, 1, 0);
    std::int64_t zeros = 0;
    for (std::int64_t j = 0; j < x.numel(); ++j) {
        if (y.f32()[j] == 0.0f) ++zeros;
        else CHECK(y.f32()[j] == Approx(x.f32()[j] / 0.75f).epsilon(1e-6));
    }
    // 3,200 draws at p = 0.25: the share is within 0.25 +- 0.04 but for one run in ~10^5.
    CHECK(static_cast<double>(zeros) / static_cast<double>(x.numel()) == Approx(0.25).margin(0.04));
    // The same seed, step and rows draw the same mask; another step, another mask.
    const Tensor again = dropped(x, 0.25, 7, 1, 0), next = dropped(x, 0.25, 7, 2, 0);
    CHECK(std::equal(y.floats().begin(), y.floats().end(), again.floats().begin()));
    CHECK_FALSE(std::equal(y.floats().begin(), y.floats().end(), next.floats().begin()));
    // A batch's rows 40..63 on their own (another rank's share) draw the whole batch's masks.
    Tensor tail({24, 50});
    std::copy_n(x.f32() + 40 * 50, 24 * 50, tail.f32());
    const Tensor tail_dropped = dropped(tail, 0.25, 7, 1, 40);
    CHECK(std::equal(tail_dropped.floats().begin(), tail_dropped.floats().end(), y.f32() + 40 * 50));
    // Validation, evaluate and embed run inference: nothing dropped, nothing scaled.
    const Tensor plain = dropped(x, 0.25, 7, 1, 0, false);
    CHECK(std::equal(plain.floats().begin(), plain.floats().end(), x.floats().begin()));
    Graph g(builtin_ops());
    CHECK_THROWS_WITH(g.add("drop", "dropout", {g.input("x", x.type())}, {{"rate", 1.0}}), Contains("rate must be in [0, 1), got 1"));
}

TEST_CASE("the spec's layer_norm, dropout, euclidean and manhattan build and train", "[layers][spec]") {
    const std::string yaml = R"(inputs:
  - {name: x1, shape: [6], dtype: int32}
  - {name: x2, shape: [6], dtype: int32}
  - {name: y, shape: [], dtype: float32}
nodes:
  - {name: e1, op: embedding, inputs: [x1], vocab: 30, dim: 8}
  - {name: d1, op: dropout, inputs: [e1], rate: 0.1}
  - {name: l1, op: lstm, inputs: [d1], units: 8, return_sequences: true}
  - {name: n1, op: layer_norm, inputs: [l1]}
  - {name: p1, op: mean_pool, inputs: [n1]}
  - {name: e2, op: embedding, inputs: [x2], vocab: 30, dim: 8}
  - {name: l2, op: lstm, inputs: [e2], units: 8}
  - {name: manhattan_d, op: manhattan, inputs: [p1, l2]}
  - {name: distance, op: euclidean, inputs: [p1, l2]}
  - {name: both, op: add, inputs: [distance, manhattan_d]}
  - {name: loss, op: contrastive_loss, inputs: [both, y]}
outputs: [distance]
loss: loss
)";
    const auto spec = spec::load_spec_string(yaml, "layers");
    const auto built = build_graph(spec, builtin_ops());
    // layer_norm and dropout pass the lstm's lengths on: the pool reads real steps only.
    const auto pool = built.graph.find("p1");
    REQUIRE(pool);
    CHECK(built.graph.node(*pool).inputs.size() == 2);
    CHECK(built.graph.find("n1.weight"));
    CHECK(built.graph.find("n1.bias"));
    const auto bad = spec::load_spec_string(R"(inputs:
  - {name: x, shape: [4], dtype: float32}
nodes:
  - {name: d, op: dropout, inputs: [x], rate: 1.5}
  - {name: loss, op: sum, inputs: [d]}
outputs: [d]
loss: loss
)",
                                            "bad");
    CHECK_THROWS_WITH(build_graph(bad, builtin_ops()), Contains("node 'd'") && Contains("rate must be in [0, 1), got 1.5"));
}

TEST_CASE("an lstm's one bias starts as PyTorch's two biases summed", "[layers][init]") {
    Graph g(builtin_ops());
    const ValueRef x = g.input("x", {DType::f32, {kAnyDim, 5, 8}});
    lstm_layer(g, "l", x, 64);
    Executor ex(g);
    initialize_parameters(ex, 3);
    const Tensor bias = ex.value(ValueRef{*g.find("l.bias"), 0});
    const double bound = 1.0 / 8.0;  // 1 / sqrt(H)
    double sum = 0, squares = 0, largest = 0;
    for (float v : bias.floats()) {
        sum += v;
        squares += static_cast<double>(v) * v;
        largest = std::max(largest, std::abs(static_cast<double>(v)));
    }
    const double n = static_cast<double>(bias.numel()), mean = sum / n, variance = squares / n - mean * mean;
    CHECK(largest <= 2 * bound);
    CHECK(largest > bound);                                            // one draw could never get there
    CHECK(variance == Approx(2 * bound * bound / 3).epsilon(0.25));    // two U(-b, b): 2 b^2 / 3, not b^2 / 3
}
