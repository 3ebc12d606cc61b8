// embedding: gather, scatter-add backward, and ids outside the vocabulary.
#include <catch2/catch.hpp>

#include "engine/core/executor.hpp"
#include "ops/builtin.hpp"
#include "tests/gradcheck.hpp"
#include "tests/tensors.hpp"

using namespace graphrun;
using testing::int_tensor;
using Catch::Matchers::Contains;

TEST_CASE("embedding gathers rows and scatter-adds gradients", "[embedding][gradcheck]") {
    for (DType dtype : {DType::i32, DType::i64}) {
        INFO(dtype_name(dtype));
        // Id 2 appears three times: its row's gradient is the sum of three.
        const Tensor ids = int_tensor(dtype, {2, 3}, {2, 0, 2, 4, 2, 1});
        const Tensor table = testing::random_tensor({5, 4}, 1);
        Graph g(builtin_ops());
        const ValueRef y = g.add("y", "embedding", {g.input("ids", ids.type()), g.parameter("table", table.type())});
        Executor ex(g);
        ex.set("ids", ids);
        ex.set("table", table);
        ex.forward();
        REQUIRE(ex.value(y).shape() == Shape{2, 3, 4});
        for (int j = 0; j < 6; ++j)
            for (int e = 0; e < 4; ++e) CHECK(ex.value(y).f32()[j * 4 + e] == table.f32()[(dtype == DType::i32 ? ids.i32()[j] : ids.i64()[j]) * 4 + e]);
        REQUIRE(testing::check_op_gradients("embedding", {ids, table}) == 20);
        // Row 3 is never looked up: its gradient is zero.
        ex.backward({{y, testing::random_tensor({2, 3, 4}, 2)}});
        for (int e = 0; e < 4; ++e) CHECK(ex.grad("table").f32()[3 * 4 + e] == 0.0f);
    }
    REQUIRE(testing::check_op_gradients("embedding", {int_tensor(DType::i32, {1, 1}, {0}), testing::random_tensor({1, 3}, 3)}) == 3);
}

TEST_CASE("embedding refuses an id outside the vocabulary, naming the id and position", "[embedding]") {
    Graph g(builtin_ops());
    g.add("emb", "embedding", {g.input("ids", {DType::i64, {kAnyDim, 3}}), g.parameter("table", {DType::f32, {10, 2}})});
    Executor ex(g);
    ex.set("table", Tensor({10, 2}));
    ex.set("ids", int_tensor(DType::i64, {2, 3}, {1, 2, 3, 4, 10, 5}));
    CHECK_THROWS_WITH(ex.forward(), Contains("node 'emb' (embedding)") && Contains("token id 10 at position (1, 1)") &&
                                        Contains("outside the vocabulary [0, 10)"));
    ex.set("ids", int_tensor(DType::i64, {1, 3}, {-1, 0, 0}));
    CHECK_THROWS_WITH(ex.forward(), Contains("token id -1 at position (0, 0)"));
}
