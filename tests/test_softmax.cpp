// softmax, log_softmax and cross_entropy: forward against double-precision
// loops, backward against finite differences, and what finite differences
// cannot judge: labels outside [0, C), logits far apart (1000, -1000), shapes
// the ops refuse. PyTorch's values are in test_pytorch_fixtures.cpp.
#include <cmath>

#include <catch2/catch.hpp>

#include "engine/core/executor.hpp"
#include "ops/builtin.hpp"
#include "tests/gradcheck.hpp"

using namespace graphrun;
using Catch::Matchers::Contains;
using testing::check_op_gradients;
using testing::random_tensor;

namespace {

// Shapes (N, C) for the gradient checks: N = 1, C = 1, odd C, a batch of 10 classes.
const std::vector<Shape> kShapes{{1, 1}, {1, 5}, {2, 1}, {3, 7}, {8, 10}, {5, 13}};

Tensor labels_tensor(DType dtype, const std::vector<int>& values) {
    Tensor t({static_cast<std::int64_t>(values.size())}, dtype);
    for (std::size_t n = 0; n < values.size(); ++n) {
        if (dtype == DType::i32) t.i32()[n] = values[n];
        else t.i64()[n] = values[n];
    }
    return t;
}

// Labels in [0, C), repeatable from the seed.
Tensor random_labels(DType dtype, std::int64_t N, std::int64_t C, unsigned seed) {
    std::vector<int> values;
    for (std::int64_t n = 0; n < N; ++n) values.push_back(static_cast<int>((seed * 7919u + static_cast<unsigned>(n) * 104729u) % static_cast<unsigned>(C)));
    return labels_tensor(dtype, values);
}

// The row's log-sum-exp in double, the textbook way (fine for small logits).
double naive_lse(const float* x, std::int64_t C) {
    double sum = 0;
    for (std::int64_t k = 0; k < C; ++k) sum += std::exp(static_cast<double>(x[k]));
    return std::log(sum);
}

// Runs a one-op graph on x (and labels) and returns its output.
Tensor run(const std::string& op, const Tensor& x, const Tensor* labels = nullptr) {
    Graph g(builtin_ops());
    std::vector<ValueRef> in{g.input("x", {DType::f32, {kAnyDim, x.dim(1)}})};
    if (labels) in.push_back(g.input("labels", {labels->dtype(), {kAnyDim}}));
    const ValueRef y = g.add("y", op, in);
    Executor ex(g);
    ex.set("x", x);
    if (labels) ex.set("labels", *labels);
    ex.forward();
    return ex.value(y).clone();
}

}  // namespace

TEST_CASE("softmax and log_softmax match a double loop", "[softmax][log_softmax]") {
    const Tensor x = random_tensor({4, 7}, 1, -4.0f, 4.0f);
    const Tensor y = run("softmax", x), logy = run("log_softmax", x);
    REQUIRE(y.shape() == Shape{4, 7});
    REQUIRE(logy.shape() == Shape{4, 7});
    for (int n = 0; n < 4; ++n) {
        const double lse = naive_lse(x.f32() + n * 7, 7);
        double total = 0;
        for (int k = 0; k < 7; ++k) {
            const double want = x.f32()[n * 7 + k] - lse;
            CHECK(logy.f32()[n * 7 + k] == Approx(want).epsilon(1e-6));
            CHECK(y.f32()[n * 7 + k] == Approx(std::exp(want)).epsilon(1e-6));
            total += y.f32()[n * 7 + k];
        }
        CHECK(total == Approx(1.0).epsilon(1e-6));
    }
}

TEST_CASE("cross_entropy matches a double loop, with i32 and i64 labels", "[cross_entropy]") {
    const Tensor x = random_tensor({5, 9}, 2, -4.0f, 4.0f);
    for (DType dtype : {DType::i32, DType::i64}) {
        INFO(dtype_name(dtype));
        const Tensor labels = labels_tensor(dtype, {0, 8, 3, 3, 5});
        const Tensor loss = run("cross_entropy", x, &labels);
        REQUIRE(loss.shape() == Shape{});
        double want = 0;
        for (int n = 0; n < 5; ++n) {
            const int label = dtype == DType::i32 ? labels.i32()[n] : static_cast<int>(labels.i64()[n]);
            want += naive_lse(x.f32() + n * 9, 9) - x.f32()[n * 9 + label];
        }
        CHECK(loss.f32()[0] == Approx(want / 5).epsilon(1e-6));
    }
}

TEST_CASE("softmax and log_softmax: gradients match finite differences", "[softmax][log_softmax][gradcheck]") {
    unsigned seed = 10;
    for (const Shape& s : kShapes) {
        INFO(to_string(s));
        const Tensor x = random_tensor(s, ++seed, -3.0f, 3.0f);
        REQUIRE(check_op_gradients("softmax", {x}) == element_count(s));
        REQUIRE(check_op_gradients("log_softmax", {x}) == element_count(s));
    }
}

TEST_CASE("cross_entropy: gradients of the logits match finite differences", "[cross_entropy][gradcheck]") {
    unsigned seed = 20;
    for (DType dtype : {DType::i32, DType::i64})
        for (const Shape& s : kShapes) {
            INFO(dtype_name(dtype) << " labels, logits " << to_string(s));
            const Tensor logits = random_tensor(s, ++seed, -3.0f, 3.0f);
            const Tensor labels = random_labels(dtype, s[0], s[1], seed);
            // Only the logits are compared: the labels are integer, with no gradient.
            REQUIRE(check_op_gradients("cross_entropy", {logits, labels}) == element_count(s));
        }
}

TEST_CASE("cross_entropy's gradient is (softmax - onehot) / N", "[cross_entropy]") {
    const Tensor x = random_tensor({3, 4}, 3, -2.0f, 2.0f);
    Graph g(builtin_ops());
    const ValueRef logits = g.parameter("logits", x.type());
    const ValueRef loss = g.add("loss", "cross_entropy", {logits, g.input("labels", {DType::i64, {3}})});
    Executor ex(g);
    ex.set("logits", x);
    ex.set("labels", labels_tensor(DType::i64, {2, 0, 3}));
    ex.forward();
    ex.backward(loss);
    const int labels[] = {2, 0, 3};
    for (int n = 0; n < 3; ++n) {
        const double lse = naive_lse(x.f32() + n * 4, 4);
        for (int k = 0; k < 4; ++k)
            CHECK(ex.grad("logits").f32()[n * 4 + k] ==
                  Approx((std::exp(x.f32()[n * 4 + k] - lse) - (k == labels[n] ? 1.0 : 0.0)) / 3).margin(1e-7));
    }
}

TEST_CASE("cross_entropy refuses a label outside the classes, naming the row and the label", "[cross_entropy]") {
    Graph g(builtin_ops());
    g.add("loss", "cross_entropy", {g.input("logits", {DType::f32, {kAnyDim, 5}}), g.input("labels", {DType::i64, {kAnyDim}})});
    Executor ex(g);
    ex.set("logits", Tensor({3, 5}));
    ex.set("labels", labels_tensor(DType::i64, {1, 5, 0}));
    CHECK_THROWS_WITH(ex.forward(), Contains("node 'loss' (cross_entropy)") && Contains("label 5 at row 1") &&
                                        Contains("outside the classes [0, C=5)"));
    ex.set("labels", labels_tensor(DType::i64, {0, 4, -1}));
    CHECK_THROWS_WITH(ex.forward(), Contains("label -1 at row 2"));
    // PyTorch's ignore_index (-100) is not ignored here: it is a label like any other.
    ex.set("labels", labels_tensor(DType::i64, {-100, 0, 0}));
    CHECK_THROWS_WITH(ex.forward(), Contains("label -100 at row 0"));
    ex.set("labels", labels_tensor(DType::i64, {4, 0, 3}));
    CHECK_NOTHROW(ex.forward());
}

TEST_CASE("logits 1000 apart give finite values and gradients", "[softmax][log_softmax][cross_entropy]") {
    // Row 0: (1000, -1000); row 1: a tie at 1000; row 2: -1000 everywhere.
    const Tensor x = Tensor::from_floats({3, 2}, std::vector<float>{1000, -1000, 1000, 1000, -1000, -1000});
    const Tensor y = run("softmax", x), logy = run("log_softmax", x);
    const std::vector<float> want_y{1, 0, 0.5f, 0.5f, 0.5f, 0.5f};
    const std::vector<float> want_logy{0, -2000, -std::log(2.0f), -std::log(2.0f), -std::log(2.0f), -std::log(2.0f)};
    for (int j = 0; j < 6; ++j) {
        CHECK(y.f32()[j] == Approx(want_y[j]).margin(1e-7));
        CHECK(logy.f32()[j] == Approx(want_logy[j]).margin(1e-5));
    }

    for (const auto& [label, want] : std::vector<std::pair<int, double>>{{0, 0.0}, {1, 2000.0}}) {
        INFO("label " << label << " for row (1000, -1000)");
        Graph g(builtin_ops());
        const ValueRef logits = g.parameter("logits", {DType::f32, {1, 2}});
        const ValueRef loss = g.add("loss", "cross_entropy", {logits, g.input("labels", {DType::i32, {1}})});
        const ValueRef sm = g.add("softmax", "softmax", {logits});
        const ValueRef lsm = g.add("log_softmax", "log_softmax", {logits});
        Executor ex(g);
        ex.set("logits", Tensor::from_floats({1, 2}, std::vector<float>{1000, -1000}));
        ex.set("labels", labels_tensor(DType::i32, {label}));
        ex.forward();
        CHECK(ex.value(loss).f32()[0] == Approx(want).margin(1e-6));
        // d/dlogits of loss + sum(w1 softmax) + sum(w2 log_softmax).
        ex.backward({{loss, Tensor::from_floats(Shape{}, std::vector<float>{1})},
                     {sm, Tensor::from_floats({1, 2}, std::vector<float>{0.5f, -2})},
                     {lsm, Tensor::from_floats({1, 2}, std::vector<float>{3, 1})}});
        // loss: (1, 0) - onehot; softmax: y (dy - y.dy) = 0; log_softmax: dy - y sum(dy) = (3 - 4, 1).
        const float want_d0 = (label == 0 ? 0.0f : 1.0f) - 1.0f, want_d1 = (label == 1 ? -1.0f : 0.0f) + 1.0f;
        for (float v : ex.grad("logits").floats()) CHECK(std::isfinite(v));
        CHECK(ex.grad("logits").f32()[0] == Approx(want_d0).margin(1e-6));
        CHECK(ex.grad("logits").f32()[1] == Approx(want_d1).margin(1e-6));
    }
}

TEST_CASE("cross_entropy of an empty batch is NaN, as PyTorch's mean of nothing", "[cross_entropy]") {
    const Tensor labels({0}, DType::i64);
    CHECK(std::isnan(run("cross_entropy", Tensor({0, 4}), &labels).f32()[0]));
}

TEST_CASE("softmax, log_softmax and cross_entropy refuse wrong shapes, saying what they expected", "[softmax][log_softmax][cross_entropy]") {
    Graph g(builtin_ops());
    const ValueRef x3 = g.input("x3", {DType::f32, {kAnyDim, 3, 4}});
    const ValueRef ids = g.input("ids", {DType::i64, {kAnyDim, 4}});
    const ValueRef logits = g.input("logits", {DType::f32, {4, 10}});
    const ValueRef open = g.input("open", {DType::f32, {kAnyDim, 10}});
    for (const std::string op : {"softmax", "log_softmax"}) {
        CHECK_THROWS_WITH(g.add(op + "_rank", op, {x3}),
                          Contains("node '" + op + "_rank' (" + op + ")") && Contains("expects x (N, C) of f32, got f32(N, 3, 4)"));
        CHECK_THROWS_WITH(g.add(op + "_dtype", op, {ids}), Contains("expects x (N, C) of f32, got i64(N, 4)"));
    }
    CHECK_THROWS_WITH(g.add("ce_rank", "cross_entropy", {x3, g.input("l1", {DType::i64, {kAnyDim}})}),
                      Contains("node 'ce_rank' (cross_entropy)") && Contains("expects logits (N, C) of f32, got f32(N, 3, 4)"));
    CHECK_THROWS_WITH(g.add("ce_batch", "cross_entropy", {logits, g.input("l2", {DType::i64, {3}})}),
                      Contains("expects labels (N) with the batch of logits (4, 10), got (3,)"));
    CHECK_THROWS_WITH(g.add("ce_labels_rank", "cross_entropy", {logits, g.input("l3", {DType::i32, {4, 1}})}),
                      Contains("expects labels (N) with the batch of logits (4, 10), got (4, 1)"));
    CHECK_THROWS_WITH(g.add("ce_float_labels", "cross_entropy", {logits, g.input("l4", {DType::f32, {4}})}),
                      Contains("expects labels (N) of i32 or i64, got f32(4,)"));
    // An open batch agrees with any batch.
    CHECK_NOTHROW(g.add("ce_open", "cross_entropy", {open, g.input("l5", {DType::i32, {4}})}));
    CHECK_NOTHROW(g.add("ce_open2", "cross_entropy", {logits, g.input("l6", {DType::i64, {kAnyDim}})}));
}
