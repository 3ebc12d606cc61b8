// The composites: dense is nn.Linear, contrastive_loss is Hadsell et al.'s
// loss on a distance; checked against plain loops and finite differences.
#include <cmath>

#include <catch2/catch.hpp>

#include "engine/core/executor.hpp"
#include "ops/builtin.hpp"
#include "ops/composites.hpp"
#include "tests/gradcheck.hpp"

using namespace graphrun;

TEST_CASE("contrastive loss matches its formula and its gradient", "[composites][gradcheck]") {
    Graph g(builtin_ops());
    const ValueRef d = g.parameter("d", {DType::f32, {6}});
    const ValueRef y = g.input("y", {DType::f32, {6}});
    const ValueRef loss = contrastive_loss(g, "loss", d, y, 1.0);
    CHECK(g.node(loss).name == "loss");
    CHECK(g.node(loss).composite_kind == "contrastive_loss");
    // Distances on both sides of the margin, for both labels.
    const std::vector<float> dv{0.1f, 0.7f, 1.3f, 0.2f, 0.9f, 1.4f}, yv{1, 1, 1, 0, 0, 0};
    Executor ex(g);
    ex.set("d", Tensor::from_floats({6}, dv));
    ex.set("y", Tensor::from_floats({6}, yv));
    ex.forward();
    double want = 0;
    for (int i = 0; i < 6; ++i) want += yv[i] * dv[i] * dv[i] + (1 - yv[i]) * std::pow(std::max(1.0 - dv[i], 0.0), 2);
    CHECK(ex.value(loss).f32()[0] == Approx(want / 6).epsilon(1e-6));
    REQUIRE(testing::check_graph_gradients(g, ex, {loss}, {"d"}) == 6);
}

TEST_CASE("dense is one matmul with nn.Linear's layout", "[composites][gradcheck]") {
    Graph g(builtin_ops());
    const ValueRef x = g.parameter("x", {DType::f32, {3, 5}});
    const ValueRef y = dense_layer(g, "fc", x, 4);
    CHECK(g.type(ValueRef{g.index_of("fc.weight"), 0}).shape == Shape{4, 5});
    CHECK(g.type(ValueRef{g.index_of("fc.bias"), 0}).shape == Shape{4});
    Executor ex(g);
    ex.set("x", testing::random_tensor({3, 5}, 1));
    ex.set("fc.weight", testing::random_tensor({4, 5}, 2));
    ex.set("fc.bias", testing::random_tensor({4}, 3));
    REQUIRE(testing::check_graph_gradients(g, ex, {y}, {"x", "fc.weight", "fc.bias"}) == 15 + 20 + 4);
}

TEST_CASE("an lstm layer with PyTorch's two biases computes what one bias of their sum does, and each gets the sum's gradient", "[composites][lstm]") {
    const std::int64_t N = 3, T = 5, E = 4, H = 6;
    Graph two(builtin_ops()), one(builtin_ops());
    const ValueRef x2 = two.parameter("x", {DType::f32, {N, T, E}});
    const ValueRef y2 = lstm_layer(two, "lstm", x2, H, false, std::nullopt, "", "f32", 2);
    const ValueRef x1 = one.parameter("x", {DType::f32, {N, T, E}});
    const ValueRef y1 = lstm_layer(one, "lstm", x1, H, false, std::nullopt, "", "f32", 1);
    CHECK(two.parameter_count() == one.parameter_count() + 4 * H);
    CHECK_FALSE(two.find("lstm.bias").has_value());
    const Tensor x = testing::random_tensor({N, T, E}, 1), w_ih = testing::random_tensor({4 * H, E}, 2), w_hh = testing::random_tensor({4 * H, H}, 3);
    const Tensor b_ih = testing::random_tensor({4 * H}, 4), b_hh = testing::random_tensor({4 * H}, 5);
    Tensor sum({4 * H});
    for (std::int64_t k = 0; k < 4 * H; ++k) sum.f32()[k] = b_ih.f32()[k] + b_hh.f32()[k];
    Executor e2(two), e1(one);
    for (Executor* e : {&e2, &e1}) {
        e->set("x", x);
        e->set("lstm.weight_ih", w_ih);
        e->set("lstm.weight_hh", w_hh);
    }
    e2.set("lstm.bias_ih", b_ih);
    e2.set("lstm.bias_hh", b_hh);
    e1.set("lstm.bias", sum);
    const Tensor seed = testing::random_tensor({N, H}, 6);
    e2.forward();
    e1.forward();
    e2.backward({{y2, seed}});
    e1.backward({{y1, seed}});
    for (std::int64_t k = 0; k < N * H; ++k) CHECK(e2.value(y2).f32()[k] == e1.value(y1).f32()[k]);
    for (std::int64_t k = 0; k < 4 * H; ++k) {
        CHECK(e2.grad("lstm.bias_ih").f32()[k] == e1.grad("lstm.bias").f32()[k]);
        CHECK(e2.grad("lstm.bias_hh").f32()[k] == e1.grad("lstm.bias").f32()[k]);
    }
}
