// cosine and matmul: forward against double-precision loops, backward against
// finite differences, and the edge cases finite differences cannot judge.
#include <cmath>

#include <catch2/catch.hpp>

#include "engine/core/executor.hpp"
#include "ops/builtin.hpp"
#include "tests/gradcheck.hpp"

using namespace graphrun;
using testing::check_op_gradients;
using testing::random_tensor;

TEST_CASE("cosine matches a double loop", "[cosine]") {
    const Tensor a = random_tensor({4, 9}, 1), b = random_tensor({4, 9}, 2);
    Graph g(builtin_ops());
    const ValueRef y = g.add("y", "cosine", {g.input("a", a.type()), g.input("b", b.type())});
    Executor ex(g);
    ex.set("a", a);
    ex.set("b", b);
    ex.forward();
    for (int i = 0; i < 4; ++i) {
        double dot = 0, aa = 0, bb = 0;
        for (int k = 0; k < 9; ++k) {
            dot += a.f32()[i * 9 + k] * static_cast<double>(b.f32()[i * 9 + k]);
            aa += a.f32()[i * 9 + k] * static_cast<double>(a.f32()[i * 9 + k]);
            bb += b.f32()[i * 9 + k] * static_cast<double>(b.f32()[i * 9 + k]);
        }
        CHECK(ex.value(y).f32()[i] == Approx(dot / std::sqrt(aa * bb)).epsilon(1e-6));
    }
}

TEST_CASE("cosine: gradients match finite differences", "[cosine][gradcheck]") {
    for (const Shape& s : {Shape{1, 1}, Shape{1, 5}, Shape{3, 7}, Shape{8, 256}}) {
        INFO(to_string(s));
        REQUIRE(check_op_gradients("cosine", {random_tensor(s, 3), random_tensor(s, 4)}) > 0);
    }
}

TEST_CASE("cosine of a zero vector is 0 with finite gradients, never NaN", "[cosine]") {
    Graph g(builtin_ops());
    const ValueRef a = g.parameter("a", {DType::f32, {2, 3}});
    const ValueRef b = g.parameter("b", {DType::f32, {2, 3}});
    const ValueRef y = g.add("y", "cosine", {a, b});
    const ValueRef loss = g.add("loss", "sum", {y});
    Executor ex(g);
    ex.set("a", Tensor::from_floats({2, 3}, std::vector<float>{0, 0, 0, 0, 0, 0}));
    ex.set("b", Tensor::from_floats({2, 3}, std::vector<float>{1, 2, 3, 0, 0, 0}));
    ex.forward();
    CHECK(ex.value(y).f32()[0] == 0.0f);
    CHECK(ex.value(y).f32()[1] == 0.0f);
    ex.backward(loss);
    for (float v : ex.grad("a").floats()) CHECK(std::isfinite(v));
    for (float v : ex.grad("b").floats()) CHECK(v == 0.0f);  // a is zero: nothing pulls b
    // Row 1, both zero: zero gradient; row 0: da = b / (eps |b|), finite.
    CHECK(ex.grad("a").f32()[3] == 0.0f);
    CHECK(ex.grad("a").f32()[0] > 0.0f);
}

TEST_CASE("matmul matches a double loop, with and without transpose and bias", "[matmul]") {
    const Tensor a = random_tensor({5, 3}, 1), w = random_tensor({4, 3}, 2), bias = random_tensor({4}, 3);
    Graph g(builtin_ops());
    const ValueRef y = g.add("y", "matmul", {g.input("a", a.type()), g.input("w", w.type()), g.input("bias", bias.type())},
                             {{"transpose_b", true}});
    Executor ex(g);
    ex.set("a", a);
    ex.set("w", w);
    ex.set("bias", bias);
    ex.forward();
    REQUIRE(ex.value(y).shape() == Shape{5, 4});
    for (int r = 0; r < 5; ++r)
        for (int m = 0; m < 4; ++m) {
            double want = bias.f32()[m];
            for (int k = 0; k < 3; ++k) want += a.f32()[r * 3 + k] * static_cast<double>(w.f32()[m * 3 + k]);
            CHECK(ex.value(y).f32()[r * 4 + m] == Approx(want).epsilon(1e-5));
        }
}

TEST_CASE("matmul: gradients match finite differences", "[matmul][gradcheck]") {
    for (bool transpose : {false, true})
        for (const auto& [rows, k, m] : std::vector<std::tuple<int, int, int>>{{1, 1, 1}, {1, 3, 2}, {5, 3, 4}, {7, 13, 9}}) {
            INFO("transpose_b " << transpose << ", " << rows << "x" << k << " times " << k << "x" << m);
            const Shape bshape = transpose ? Shape{m, k} : Shape{k, m};
            REQUIRE(check_op_gradients("matmul", {random_tensor({rows, k}, 5), random_tensor(bshape, 6)}, {{"transpose_b", transpose}}) > 0);
            REQUIRE(check_op_gradients("matmul", {random_tensor({rows, k}, 7), random_tensor(bshape, 8), random_tensor({m}, 9)},
                                       {{"transpose_b", transpose}}) > 0);
        }
    // Leading dimensions are flattened: (2, 3, K) times (K, M).
    REQUIRE(check_op_gradients("matmul", {random_tensor({2, 3, 4}, 10), random_tensor({4, 5}, 11)}) > 0);
}

TEST_CASE("matmul refuses mismatched shapes with both shapes in the message", "[matmul]") {
    Graph g(builtin_ops());
    const ValueRef a = g.input("a", {DType::f32, {kAnyDim, 64}});
    const ValueRef w = g.parameter("w", {DType::f32, {256, 32}});
    CHECK_THROWS_WITH(g.add("dense", "matmul", {a, w}, {{"transpose_b", true}}),
                      Catch::Matchers::Contains("node 'dense' (matmul)") && Catch::Matchers::Contains("(M, K=64)") &&
                          Catch::Matchers::Contains("(256, 32)"));
}
