// Layers over padded sequences (issue 17): reverse_sequence, concat,
// max_pool and mean_pool against finite differences; a bidirectional LSTM and
// a stack of two LSTMs against PyTorch on packed sequences
// (tests/fixtures/make_sequence_fixtures.py); and through the spec builder,
// every stack gives a row the same output with and without padding.
#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "engine/core/executor.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/initializer.hpp"
#include "ops/builtin.hpp"
#include "ops/composites.hpp"
#include "tests/fixtures.hpp"
#include "tests/gradcheck.hpp"
#include "tests/tensors.hpp"

using namespace graphrun;
using Catch::Matchers::Contains;
using testing::check_close;
using testing::check_op_gradients;
using testing::load_fixture;
using testing::random_tensor;
using testing::int_tensor;
using testing::run_op;
using testing::embed_padded;

namespace {

constexpr double kRel = 1e-5;

}  // namespace

TEST_CASE("reverse_sequence, concat, max_pool and mean_pool pass gradcheck", "[sequence][gradcheck]") {
    int checked = 0;
    // Values at least 1/31 apart (a permutation of 60 levels), so no step of
    // the finite differences moves the max to another element.
    Tensor x({3, 5, 4});
    for (std::int64_t k = 0; k < 60; ++k) x.f32()[k] = static_cast<float>((k * 7) % 60 - 30) / 31.0f;
    for (const DType dtype : {DType::i32, DType::i64}) {
        const Tensor lengths = int_tensor(dtype, {3}, {5, 2, 0});
        for (const char* op : {"reverse_sequence", "max_pool", "mean_pool"}) {
            INFO(op);
            checked += check_op_gradients(op, {x, lengths});
            checked += check_op_gradients(op, {x});
        }
    }
    checked += check_op_gradients("concat", {random_tensor({2, 3, 4}, 2), random_tensor({2, 3, 2}, 3)});
    checked += check_op_gradients("concat", {random_tensor({2, 3}, 4), random_tensor({2, 1}, 5), random_tensor({2, 2}, 6)});
    CHECK(checked > 0);
}

TEST_CASE("reverse_sequence reverses the real steps only, and twice is the identity", "[sequence]") {
    const Tensor x = random_tensor({2, 4, 3}, 7);
    const Tensor lengths = int_tensor(DType::i64, {2}, {3, 0});
    const Tensor y = run_op("reverse_sequence", {x, lengths});
    for (std::int64_t t = 0; t < 4; ++t)
        for (std::int64_t d = 0; d < 3; ++d) {
            const std::int64_t from = t < 3 ? 2 - t : t;  // row 0: steps 0..2 reversed, step 3 in place
            CHECK(y.f32()[(0 * 4 + t) * 3 + d] == x.f32()[(0 * 4 + from) * 3 + d]);
            CHECK(y.f32()[(1 * 4 + t) * 3 + d] == x.f32()[(1 * 4 + t) * 3 + d]);  // row 1 is all padding
        }
    const Tensor back = run_op("reverse_sequence", {y, lengths});
    for (std::int64_t k = 0; k < x.numel(); ++k) CHECK(back.f32()[k] == x.f32()[k]);
    CHECK_THROWS_WITH(run_op("reverse_sequence", {x, int_tensor(DType::i64, {2}, {5, 1})}), Contains("lengths in [0, T=4], got 5 for row 0"));
}

TEST_CASE("max_pool and mean_pool read each row's real steps only", "[sequence]") {
    Tensor x = random_tensor({3, 4, 2}, 8);
    x.f32()[(0 * 4 + 3) * 2 + 0] = 100.0f;  // in row 0's padding: must not win the max
    const Tensor lengths = int_tensor(DType::i32, {3}, {3, 4, 0});
    const Tensor mx = run_op("max_pool", {x, lengths}), mean = run_op("mean_pool", {x, lengths});
    for (std::int64_t n = 0; n < 3; ++n) {
        const std::int64_t L = n == 0 ? 3 : n == 1 ? 4 : 0;
        for (std::int64_t d = 0; d < 2; ++d) {
            double sum = 0;
            float best = -INFINITY;
            for (std::int64_t t = 0; t < L; ++t) {
                sum += x.f32()[(n * 4 + t) * 2 + d];
                best = std::max(best, x.f32()[(n * 4 + t) * 2 + d]);
            }
            CHECK(mx.f32()[n * 2 + d] == (L ? best : 0.0f));
            CHECK(mean.f32()[n * 2 + d] == Approx(L ? sum / static_cast<double>(L) : 0.0).margin(1e-7));
        }
    }
    CHECK(mx.f32()[0] < 100.0f);
    CHECK_THROWS_WITH(run_op("mean_pool", {x, int_tensor(DType::i64, {2}, {1, 2})}), Contains("lengths (N) of i32 or i64 with the batch of x"));
}

TEST_CASE("a bidirectional lstm matches nn.LSTM(bidirectional=True) on packed sequences", "[sequence][fixtures]") {
    for (const bool sequences : {false, true}) {
        INFO("return_sequences " << sequences);
        const auto f = load_fixture("lstm_bidirectional");
        const Tensor& x_value = f.at("x");
        const std::int64_t H = f.at("weight_hh").dim(1);
        Graph g(builtin_ops());
        const ValueRef x = g.parameter("x", x_value.type());
        const ValueRef lengths = g.input("lengths", f.at("lengths").type());
        const auto direction = [&](const std::string& node, const std::string& suffix, ValueRef in) {
            return lstm_layer(g, "l", in, H, sequences, lengths, "", "f32", 1, suffix, node);
        };
        const ValueRef y = bidirectional_layer(g, "lstm", "l", x, lengths, sequences, "concat", direction);
        Executor ex(g);
        ex.set("x", x_value.clone());
        ex.set("lengths", f.at("lengths").clone());
        for (const char* name : {"weight_ih", "weight_hh", "bias", "weight_ih_reverse", "weight_hh_reverse", "bias_reverse"})
            ex.set(std::string("l.") + name, f.at(name).clone());
        ex.forward();
        const std::string what = sequences ? "seq" : "final";
        check_close("h_" + what, ex.value(y), f.at("h_" + what), kRel);
        ex.backward({{y, f.at("w_" + what).clone()}});
        check_close("dx", ex.grad("x"), f.at("dx_" + what), kRel);
        for (const char* name : {"weight_ih", "weight_hh", "bias", "weight_ih_reverse", "weight_hh_reverse", "bias_reverse"})
            check_close(std::string("d") + name, ex.grad(std::string("l.") + name), f.at(std::string("d") + name + "_" + what), kRel);
    }
}

TEST_CASE("a bidirectional gru matches nn.GRU(bidirectional=True) on packed sequences", "[sequence][fixtures][gru]") {
    const std::vector<std::string> names{"weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_ih_reverse", "weight_hh_reverse", "bias_ih_reverse",
                                         "bias_hh_reverse"};
    for (const bool sequences : {false, true}) {
        INFO("return_sequences " << sequences);
        const auto f = load_fixture("gru_bidirectional");
        const std::int64_t H = f.at("weight_hh").dim(1);
        Graph g(builtin_ops());
        const ValueRef x = g.parameter("x", f.at("x").type());
        const ValueRef lengths = g.input("lengths", f.at("lengths").type());
        const auto direction = [&](const std::string& node, const std::string& suffix, ValueRef in) {
            return gru_layer(g, "l", in, H, sequences, lengths, "", suffix, node);
        };
        const ValueRef y = bidirectional_layer(g, "gru", "l", x, lengths, sequences, "concat", direction);
        Executor ex(g);
        ex.set("x", f.at("x").clone());
        ex.set("lengths", f.at("lengths").clone());
        for (const auto& name : names) ex.set("l." + name, f.at(name).clone());
        ex.forward();
        const std::string what = sequences ? "seq" : "final";
        check_close("h_" + what, ex.value(y), f.at("h_" + what), kRel);
        ex.backward({{y, f.at("w_" + what).clone()}});
        check_close("dx", ex.grad("x"), f.at("dx_" + what), kRel);
        for (const auto& name : names) check_close("d" + name, ex.grad("l." + name), f.at("d" + name + "_" + what), kRel);
    }
}

TEST_CASE("a stack of two lstms matches PyTorch's packed stack: the second never reads padding", "[sequence][fixtures]") {
    const auto f = load_fixture("lstm_stack");
    const std::int64_t H = f.at("first.weight_hh").dim(1);
    Graph g(builtin_ops());
    const ValueRef x = g.parameter("x", f.at("x").type());
    const ValueRef lengths = g.input("lengths", f.at("lengths").type());
    const ValueRef first = lstm_layer(g, "first", x, H, true, lengths);
    const ValueRef y = lstm_layer(g, "second", first, H, false, lengths);
    Executor ex(g);
    ex.set("x", f.at("x").clone());
    ex.set("lengths", f.at("lengths").clone());
    for (const char* layer : {"first", "second"})
        for (const char* name : {"weight_ih", "weight_hh", "bias"}) ex.set(fmt::format("{}.{}", layer, name), f.at(fmt::format("{}.{}", layer, name)).clone());
    ex.forward();
    check_close("h_final", ex.value(y), f.at("h_final"), kRel);
    ex.backward({{y, f.at("w_final").clone()}});
    check_close("dx", ex.grad("x"), f.at("dx"), kRel);
    for (const char* layer : {"first", "second"})
        for (const char* name : {"weight_ih", "weight_hh", "bias"}) {
            const std::string key = fmt::format("{}.{}", layer, name);
            check_close("d" + key, ex.grad(key), f.at("d" + key), kRel);
        }
}

TEST_CASE("padding never leaks through a stack: each row's output is its unpadded one", "[sequence][padding]") {
    const std::vector<std::int32_t> tokens{3, 7, 1, 12};
    const std::vector<std::pair<std::string, std::string>> stacks{
        {"lstm -> lstm", R"(  - {name: first, op: lstm, inputs: [embedding], units: 6, return_sequences: true}
  - {name: out, op: lstm, inputs: [first], units: 4})"},
        {"lstm -> lstm -> lstm (sequences)", R"(  - {name: first, op: lstm, inputs: [embedding], units: 6, return_sequences: true}
  - {name: second, op: lstm, inputs: [first], units: 6, return_sequences: true}
  - {name: third, op: lstm, inputs: [second], units: 4, return_sequences: true}
  - {name: out, op: max_pool, inputs: [third]})"},
        {"bidirectional lstm, concat", R"(  - {name: out, op: lstm, inputs: [embedding], units: 4, bidirectional: true})"},
        {"bidirectional lstm, sum, sequences -> lstm", R"(  - {name: first, op: lstm, inputs: [embedding], units: 6, bidirectional: true, merge: sum, return_sequences: true}
  - {name: out, op: lstm, inputs: [first], units: 4, bidirectional: true})"},
        {"bidirectional gru, sequences -> gru -> max_pool", R"(  - {name: first, op: gru, inputs: [embedding], units: 6, bidirectional: true, return_sequences: true}
  - {name: second, op: gru, inputs: [first], units: 4, return_sequences: true}
  - {name: out, op: max_pool, inputs: [second]})"},
        {"lstm -> mean_pool", R"(  - {name: first, op: lstm, inputs: [embedding], units: 6, return_sequences: true}
  - {name: out, op: mean_pool, inputs: [first]})"},
        {"embedding -> mean_pool (fastText's bag of words)", R"(  - {name: out, op: mean_pool, inputs: [embedding]})"},
        {"lstm -> tanh -> max_pool", R"(  - {name: first, op: lstm, inputs: [embedding], units: 6, return_sequences: true}
  - {name: squashed, op: tanh, inputs: [first]}
  - {name: out, op: max_pool, inputs: [squashed]})"},
    };
    for (const auto& [what, nodes] : stacks) {
        INFO(what);
        const std::vector<float> unpadded = embed_padded(nodes, 4, tokens), padded = embed_padded(nodes, 11, tokens);
        REQUIRE(unpadded.size() == padded.size());
        double worst = 0, scale = 0;
        for (std::size_t k = 0; k < padded.size(); ++k) {
            worst = std::max(worst, static_cast<double>(std::abs(padded[k] - unpadded[k])));
            scale = std::max(scale, static_cast<double>(std::abs(unpadded[k])));
        }
        CHECK(scale > 0);  // the row says something, so equality is not trivial
        CHECK(worst <= 1e-6);
    }
}
