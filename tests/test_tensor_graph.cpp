// The core: tensors, shape inference at build time with clear errors, and the
// executor's autodiff semantics (accumulation, skipping, shared weights).
#include <catch2/catch.hpp>

#include "engine/core/executor.hpp"
#include "ops/builtin.hpp"
#include "ops/composites.hpp"
#include "tests/gradcheck.hpp"

using namespace graphrun;
using Catch::Matchers::Contains;

TEST_CASE("tensors are zeroed, typed and refuse unknown sizes", "[core]") {
    Tensor t({2, 3});
    REQUIRE(t.numel() == 6);
    for (float v : t.floats()) CHECK(v == 0.0f);
    CHECK_THROWS_WITH(t.i64(), Contains("read as i64"));
    CHECK_THROWS_WITH(Tensor(Shape{kAnyDim, 3}), Contains("every dimension must be known"));
    Tensor c = t.clone();
    c.f32()[0] = 1;
    CHECK(t.f32()[0] == 0.0f);
    CHECK(to_string(Shape{kAnyDim, 52}) == "(N, 52)");
}

TEST_CASE("graph construction infers shapes and names the node in errors", "[core]") {
    Graph g(builtin_ops());
    const ValueRef ids = g.input("x1", {DType::i32, {kAnyDim, 52}});
    const ValueRef emb = embedding_layer(g, "left_embedding", ids, 1000, 32);
    CHECK(g.type(emb).shape == Shape{kAnyDim, 52, 32});
    const ValueRef h = lstm_layer(g, "left_lstm", emb, 64);
    CHECK(g.type(h).shape == Shape{kAnyDim, 64});
    const ValueRef y = dense_layer(g, "left_dense", h, 256);
    CHECK(g.type(y).shape == Shape{kAnyDim, 256});
    // Keras's count for Embedding(1000, 32) -> LSTM(64) -> Dense(256).
    CHECK(g.parameter_count() == 32000 + 4 * 64 * (32 + 64 + 1) + 256 * 65);
    CHECK(g.node(y).composite_kind == "dense");

    CHECK_THROWS_WITH(g.add("bad", "conv2d", {h}), Contains("node 'bad': unknown op 'conv2d'") && Contains("lstm"));
    CHECK_THROWS_WITH(g.add("left_dense", "relu", {h}), Contains("node 'left_dense' is defined twice"));
    CHECK_THROWS_WITH(g.add("two", "relu", {h, h}), Contains("node 'two' (relu): expects 1 input, got 2"));
    CHECK_THROWS_WITH(g.add("c", "constant", {}), Contains("missing attribute 'value'"));
    CHECK_THROWS_WITH(g.add("c", "constant", {}, {{"value", 1.0}, {"valeu", 2.0}}), Contains("unknown attribute 'valeu' (known: value)"));
    CHECK_THROWS_WITH(g.add("c", "constant", {}, {{"value", std::string("one")}}), Contains("'value' must be a number"));
    const ValueRef other = g.input("other", {DType::f32, {kAnyDim, 128}});
    CHECK_THROWS_WITH(g.add("cos", "cosine", {y, other}),
                      Contains("node 'cos' (cosine)") && Contains("(N, 256)") && Contains("(N, 128)"));
    CHECK_THROWS_WITH(g.add("emb2", "embedding", {other, g.parameter("t", {DType::f32, {10, 4}})}), Contains("integer token ids"));
}

TEST_CASE("a value feeding several consumers accumulates their gradients", "[core]") {
    // y = sum(x * x + x): dy/dx = 2x + 1.
    Graph g(builtin_ops());
    const ValueRef x = g.parameter("x", {DType::f32, {5}});
    const ValueRef sq = g.add("sq", "mul", {x, x});
    const ValueRef s = g.add("s", "add", {sq, x});
    const ValueRef loss = g.add("loss", "sum", {s});
    Executor ex(g);
    ex.set("x", Tensor::from_floats({5}, std::vector<float>{-2, -0.5f, 0, 1, 3}));
    ex.forward();
    CHECK(ex.value(loss).f32()[0] == Approx(4 - 2 + 0.25 - 0.5 + 0 + 1 + 1 + 9 + 3));
    ex.backward(loss);
    const float* d = ex.grad("x").f32();
    const float want[] = {-3, 0, 1, 3, 7};
    for (int i = 0; i < 5; ++i) CHECK(d[i] == Approx(want[i]));
    // A second step starts from zero, not from the first step's gradients.
    ex.forward();
    ex.backward(loss);
    for (int i = 0; i < 5; ++i) CHECK(ex.grad("x").f32()[i] == Approx(want[i]));
}

TEST_CASE("only what the loss depends on is differentiated", "[core]") {
    Graph g(builtin_ops());
    const ValueRef a = g.parameter("a", {DType::f32, {3}});
    const ValueRef b = g.parameter("b", {DType::f32, {3}});
    const ValueRef data = g.input("data", {DType::f32, {3}});
    const ValueRef used = g.add("used", "mul", {a, data});
    g.add("unused", "tanh", {b});
    const ValueRef loss = g.add("loss", "sum", {used});
    Executor ex(g);
    ex.set("a", Tensor::from_floats({3}, std::vector<float>{1, 2, 3}));
    ex.set("b", Tensor::from_floats({3}, std::vector<float>{1, 2, 3}));
    ex.set("data", Tensor::from_floats({3}, std::vector<float>{4, 5, 6}));
    ex.forward();
    ex.backward(loss);
    CHECK(ex.grad("a").f32()[1] == 5.0f);
    for (float v : ex.grad("b").floats()) CHECK(v == 0.0f);  // not reached: zero, not stale
    CHECK_THROWS_WITH(ex.grad("data"), Contains("not a parameter"));
    CHECK_FALSE(g.node(data).requires_grad);
}

TEST_CASE("shared weights between two branches get both branches' gradients", "[core]") {
    // Two branches naming one parameter: the gradient is the sum of both uses.
    Graph g(builtin_ops());
    const ValueRef w = g.parameter("w", {DType::f32, {3, 2}});
    const ValueRef x1 = g.input("x1", {DType::f32, {kAnyDim, 2}});
    const ValueRef x2 = g.input("x2", {DType::f32, {kAnyDim, 2}});
    const ValueRef y1 = g.add("y1", "matmul", {x1, w}, {{"transpose_b", true}});
    const ValueRef y2 = g.add("y2", "matmul", {x2, w}, {{"transpose_b", true}});
    const ValueRef c = g.add("c", "cosine", {y1, y2});
    Executor ex(g);
    ex.set("w", testing::random_tensor({3, 2}, 3));
    ex.set("x1", testing::random_tensor({4, 2}, 4));
    ex.set("x2", testing::random_tensor({4, 2}, 5));
    REQUIRE(testing::check_graph_gradients(g, ex, {c}, {"w"}) == 6);
}

TEST_CASE("the batch is known only when data arrives, and must agree", "[core]") {
    Graph g(builtin_ops());
    const ValueRef a = g.input("a", {DType::f32, {kAnyDim, 4}});
    const ValueRef b = g.input("b", {DType::f32, {kAnyDim, 4}});
    const ValueRef c = g.add("c", "cosine", {a, b});
    Executor ex(g);
    ex.set("a", Tensor({3, 4}));
    ex.set("b", Tensor({3, 4}));
    ex.forward();
    CHECK(ex.value(c).shape() == Shape{3});
    ex.set("a", Tensor({5, 4}));
    ex.set("b", Tensor({5, 4}));
    ex.forward();
    CHECK(ex.value(c).shape() == Shape{5});
    ex.set("b", Tensor({2, 4}));
    CHECK_THROWS_WITH(ex.forward(), Contains("node 'c' (cosine)") && Contains("(5, 4)") && Contains("(2, 4)"));
    CHECK_THROWS_WITH(ex.set("a", Tensor({5, 3})), Contains("input 'a' expects f32(N, 4), got f32(5, 3)"));
    CHECK_THROWS_WITH(ex.set("c", Tensor({5})), Contains("computed by the graph"));
}
