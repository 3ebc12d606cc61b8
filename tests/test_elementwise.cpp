// add, sub, mul, max (broadcasting), square, relu, sigmoid, tanh, sum, mean,
// constant: forward against plain loops, backward against finite differences.
#include <cmath>
#include <functional>

#include <catch2/catch.hpp>

#include "engine/core/executor.hpp"
#include "ops/builtin.hpp"
#include "tests/gradcheck.hpp"
#include "tests/tensors.hpp"

using namespace graphrun;
using testing::check_op_gradients;
using testing::random_tensor;
using testing::run_op;

namespace {
// Values away from 0 so that relu and max are differentiable where checked.
Tensor away_from_kinks(const Shape& shape, unsigned seed) {
    Tensor t = random_tensor(shape, seed);
    for (float& v : t.floats()) v = v < 0 ? v - 0.1f : v + 0.1f;
    return t;
}
}  // namespace

TEST_CASE("binary ops broadcast and match plain loops", "[elementwise]") {
    const Tensor a = random_tensor({3, 4}, 1), row = random_tensor({4}, 2), scalar = random_tensor({}, 3);
    const std::vector<std::pair<std::string, std::function<float(float, float)>>> ops = {
        {"add", [](float x, float y) { return x + y; }},
        {"sub", [](float x, float y) { return x - y; }},
        {"mul", [](float x, float y) { return x * y; }},
        {"max", [](float x, float y) { return std::max(x, y); }}};
    for (const auto& [name, f] : ops) {
        INFO(name);
        const Tensor ab = run_op(name, {a, row});
        const Tensor ba = run_op(name, {row, a});   // the broadcast input first
        const Tensor sa = run_op(name, {scalar, a});
        REQUIRE(ab.shape() == Shape{3, 4});
        REQUIRE(ba.shape() == Shape{3, 4});
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 4; ++j) {
                CHECK(ab.f32()[i * 4 + j] == Approx(f(a.f32()[i * 4 + j], row.f32()[j])));
                CHECK(ba.f32()[i * 4 + j] == Approx(f(row.f32()[j], a.f32()[i * 4 + j])));
                CHECK(sa.f32()[i * 4 + j] == Approx(f(scalar.f32()[0], a.f32()[i * 4 + j])));
            }
    }
    CHECK_THROWS_WITH(run_op("add", {Tensor({3, 1}), Tensor({1, 4})}), Catch::Matchers::Contains("both need broadcasting"));
    CHECK_THROWS_WITH(run_op("add", {Tensor({3, 2}), Tensor({4})}), Catch::Matchers::Contains("do not broadcast"));
}

TEST_CASE("binary ops: gradients match finite differences, broadcasting included", "[elementwise][gradcheck]") {
    for (const char* op : {"add", "sub", "mul", "max"}) {
        INFO(op);
        for (const auto& [sa, sb] : std::vector<std::pair<Shape, Shape>>{{{1}, {1}}, {{3, 5}, {3, 5}}, {{3, 5}, {5}}, {{7}, {}},
                                                                          {{}, {2, 3}}, {{2, 1, 3}, {2, 4, 3}}}) {
            INFO(to_string(sa) << " with " << to_string(sb));
            REQUIRE(check_op_gradients(op, {away_from_kinks(sa, 11), away_from_kinks(sb, 12)}) > 0);
        }
    }
}

TEST_CASE("max: the scalar form and the tie rule", "[elementwise]") {
    REQUIRE(check_op_gradients("max", {away_from_kinks({4, 3}, 5)}, {{"scalar", 0.0}}) > 0);
    REQUIRE(check_op_gradients("max", {away_from_kinks({1}, 6)}, {{"scalar", 0.25}}) > 0);
    // Ties: the gradient is split equally (torch.maximum's rule).
    Graph g(builtin_ops());
    const ValueRef a = g.parameter("a", {DType::f32, {3}});
    const ValueRef b = g.parameter("b", {DType::f32, {3}});
    const ValueRef m = g.add("m", "max", {a, b});
    const ValueRef loss = g.add("loss", "sum", {m});
    Executor ex(g);
    ex.set("a", Tensor::from_floats({3}, std::vector<float>{1, 2, 5}));
    ex.set("b", Tensor::from_floats({3}, std::vector<float>{1, 3, 4}));
    ex.forward();
    ex.backward(loss);
    const float want_a[] = {0.5f, 0, 1}, want_b[] = {0.5f, 1, 0};
    for (int i = 0; i < 3; ++i) {
        CHECK(ex.grad("a").f32()[i] == want_a[i]);
        CHECK(ex.grad("b").f32()[i] == want_b[i]);
    }
}

TEST_CASE("unary ops match plain loops and finite differences", "[elementwise][gradcheck]") {
    const std::vector<std::pair<std::string, std::function<double(double)>>> ops = {
        {"square", [](double x) { return x * x; }},
        {"relu", [](double x) { return x > 0 ? x : 0; }},
        {"sigmoid", [](double x) { return 1 / (1 + std::exp(-x)); }},
        {"tanh", [](double x) { return std::tanh(x); }}};
    for (const auto& [name, f] : ops) {
        INFO(name);
        const Tensor x = away_from_kinks({5, 7}, 21);
        const Tensor y = run_op(name, {x});
        for (std::int64_t j = 0; j < x.numel(); ++j) CHECK(y.f32()[j] == Approx(f(x.f32()[j])).epsilon(1e-5));
        for (const Shape& s : {Shape{1}, Shape{3, 5}, Shape{2, 3, 7}}) REQUIRE(check_op_gradients(name, {away_from_kinks(s, 22)}) > 0);
    }
    // relu at exactly 0 passes no gradient (as PyTorch).
    Graph g(builtin_ops());
    const ValueRef x = g.parameter("x", {DType::f32, {2}});
    const ValueRef loss = g.add("loss", "sum", {g.add("r", "relu", {x})});
    Executor ex(g);
    ex.set("x", Tensor::from_floats({2}, std::vector<float>{0, 1}));
    ex.forward();
    ex.backward(loss);
    CHECK(ex.grad("x").f32()[0] == 0.0f);
    CHECK(ex.grad("x").f32()[1] == 1.0f);
}

TEST_CASE("sum and mean reduce to a scalar", "[elementwise][gradcheck]") {
    const Tensor x = random_tensor({3, 7}, 31);
    double total = 0;
    for (float v : x.floats()) total += v;
    const Tensor s = run_op("sum", {x}), m = run_op("mean", {x});
    REQUIRE(s.shape().empty());
    CHECK(s.f32()[0] == Approx(total).epsilon(1e-5));
    CHECK(m.f32()[0] == Approx(total / 21).epsilon(1e-5));
    for (const char* op : {"sum", "mean"})
        for (const Shape& shape : {Shape{1}, Shape{5}, Shape{3, 7}, Shape{2, 3, 5}}) REQUIRE(check_op_gradients(op, {random_tensor(shape, 32)}) > 0);
}

TEST_CASE("constant is a scalar", "[elementwise]") {
    const Tensor c = run_op("constant", {}, {{"value", 2.5}});
    REQUIRE(c.shape().empty());
    CHECK(c.f32()[0] == 2.5f);
    const Tensor i = run_op("constant", {}, {{"value", std::int64_t{3}}});  // an integer is a number too
    CHECK(i.f32()[0] == 3.0f);
}
