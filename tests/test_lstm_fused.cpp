// The lstm op's `impl: graphrun` (ops/lstm_fused.hpp) against `impl: dnnl`
// (oneDNN's primitive, itself checked against PyTorch): the same outputs and
// gradients to 1e-5 on the seed's shapes, with and without lengths,
// return_sequences both ways; finite differences; the same bits with 1 and 2
// threads; and what it refuses.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "engine/core/dnnl_context.hpp"
#include "engine/core/executor.hpp"
#include "engine/core/threads.hpp"
#include "ops/builtin.hpp"
#include "tests/fixtures.hpp"
#include "tests/gradcheck.hpp"
#include "tests/tensors.hpp"

using namespace graphrun;
using Catch::Matchers::Contains;
using testing::check_close;
using testing::check_op_gradients;
using testing::int_tensor;
using testing::random_tensor;

namespace {

struct Run {
    Tensor y;
    std::vector<Tensor> grads;  // x, weight_ih, weight_hh, bias
};

// One lstm node of `impl` on x with the given weights (and lengths), forward
// and backward against a fixed random output gradient.
Run run_lstm(const std::string& impl, const Tensor& x, const std::vector<Tensor>& weights, const Tensor* lengths, bool sequences) {
    Graph g(builtin_ops());
    std::vector<ValueRef> in{g.parameter("x", x.type())};  // a parameter, so that x gets its gradient
    const char* names[] = {"weight_ih", "weight_hh", "bias"};
    for (std::size_t k = 0; k < 3; ++k) in.push_back(g.parameter(names[k], weights[k].type()));
    if (lengths) in.push_back(g.input("lengths", lengths->type()));
    const std::int64_t H = weights[1].dim(1);
    const ValueRef y = g.add("lstm", "lstm", in, {{"units", H}, {"return_sequences", sequences}, {"impl", impl}});
    Executor ex(g);
    ex.set("x", x);
    for (std::size_t k = 0; k < 3; ++k) ex.set(names[k], weights[k]);
    if (lengths) ex.set("lengths", *lengths);
    ex.forward();
    Run r{ex.value(y).clone(), {}};
    ex.backward({{y, random_tensor(r.y.shape(), 99)}});
    r.grads.push_back(ex.grad("x").clone());
    for (const char* name : names) r.grads.push_back(ex.grad(name).clone());
    return r;
}

std::vector<Tensor> lstm_weights(std::int64_t E, std::int64_t H, unsigned seed) {
    const float s = 1.0f / std::sqrt(static_cast<float>(H));
    return {random_tensor({4 * H, E}, seed, -s, s), random_tensor({4 * H, H}, seed + 1, -s, s), random_tensor({4 * H}, seed + 2, -s, s)};
}

void check_same(const Run& ours, const Run& dnnl, double rel) {
    check_close("y", ours.y, dnnl.y, rel);
    const char* names[] = {"dx", "dweight_ih", "dweight_hh", "dbias"};
    for (std::size_t k = 0; k < 4; ++k) check_close(names[k], ours.grads[k], dnnl.grads[k], rel);
}

}  // namespace

TEST_CASE("lstm impl graphrun gives oneDNN's outputs and gradients on the seed's shapes", "[lstm][fused]") {
    // The seed's branches: batch 32, E 32, H 64, T 52 and 600; lengths from 1 to T.
    for (const std::int64_t T : {std::int64_t{52}, std::int64_t{600}}) {
        const Tensor x = random_tensor({32, T, 32}, static_cast<unsigned>(T));
        const std::vector<Tensor> w = lstm_weights(32, 64, 5);
        std::vector<std::int64_t> L;
        for (std::int64_t n = 0; n < 32; ++n) L.push_back(1 + (n * 37) % T);
        const Tensor lengths = int_tensor(DType::i64, {32}, L);
        for (const bool sequences : {false, true})
            for (const Tensor* len : {static_cast<const Tensor*>(nullptr), &lengths}) {
                INFO(fmt::format("T {}, return_sequences {}, lengths {}", T, sequences, len != nullptr));
                check_same(run_lstm("graphrun", x, w, len, sequences), run_lstm("dnnl", x, w, len, sequences), 1e-5);
            }
    }
}

TEST_CASE("lstm impl graphrun: each of its paths, and finite differences", "[lstm][fused][gradcheck]") {
    // H 5 runs the gate pass in plain C++ and the step product on oneDNN's
    // matmul; H 8 the gate pass in AVX2 (where the CPU has it); H 16 also
    // graphrun's own step product, on 5 rows: a block of four and one more;
    // with E 6 dx is one GEMM after the loop, with E 16 part of each step's product.
    const std::pair<std::int64_t, std::int64_t> sizes[] = {{5, 6}, {8, 6}, {16, 6}, {16, 16}};
    for (const auto& [H, E] : sizes) {
        INFO("H " << H << ", E " << E);
        const std::int64_t N = H == 16 ? 5 : 3;
        const Tensor x = random_tensor({N, 4, E}, 3);
        const std::vector<Tensor> w = lstm_weights(E, H, 7);
        const Tensor lengths = H == 16 ? int_tensor(DType::i32, {5}, {4, 2, 0, 3, 1}) : int_tensor(DType::i32, {3}, {4, 2, 0});
        check_same(run_lstm("graphrun", x, w, &lengths, true), run_lstm("dnnl", x, w, &lengths, true), 1e-5);
        check_same(run_lstm("graphrun", x, w, nullptr, false), run_lstm("dnnl", x, w, nullptr, false), 1e-5);
        for (const bool sequences : {false, true}) {
            const Attrs attrs{{"units", H}, {"return_sequences", sequences}, {"impl", std::string("graphrun")}};
            REQUIRE(check_op_gradients("lstm", {x, w[0], w[1], w[2]}, attrs) > 0);
            REQUIRE(check_op_gradients("lstm", {x, w[0], w[1], w[2], lengths}, attrs) > 0);
        }
    }
}

TEST_CASE("lstm impl graphrun trains on each row's real steps alone: what lies past a row's length is never read", "[lstm][fused]") {
    // 7 rows (parts of 4 and 3), lengths unsorted, with ties, a full row and an empty one;
    // x is NaN at every padding step of the poisoned copy. Packed by length, the steps
    // never read it: the same bits as with x clean, oneDNN's values (which run every step)
    // on the clean x, and dx exactly 0 at the padding steps.
    const std::int64_t N = 7, T = 40, E = 16, H = 16;
    const std::vector<std::int64_t> L = {40, 3, 0, 17, 40, 25, 1};
    const Tensor lengths = int_tensor(DType::i64, {N}, L);
    const Tensor clean = random_tensor({N, T, E}, 31);
    Tensor poisoned = clean.clone();
    for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t t = L[static_cast<std::size_t>(n)]; t < T; ++t)
            for (std::int64_t e = 0; e < E; ++e) poisoned.f32()[(n * T + t) * E + e] = std::nanf("");
    const std::vector<Tensor> w = lstm_weights(E, H, 33);
    for (const bool sequences : {false, true}) {
        INFO("return_sequences " << sequences);
        const Run ours = run_lstm("graphrun", clean, w, &lengths, sequences), dirty = run_lstm("graphrun", poisoned, w, &lengths, sequences);
        check_same(ours, run_lstm("dnnl", clean, w, &lengths, sequences), 1e-5);
        CHECK(std::memcmp(ours.y.raw(), dirty.y.raw(), ours.y.bytes()) == 0);
        for (std::size_t k = 0; k < ours.grads.size(); ++k) CHECK(std::memcmp(ours.grads[k].raw(), dirty.grads[k].raw(), ours.grads[k].bytes()) == 0);
        int padding_nonzero = 0;
        for (std::int64_t n = 0; n < N; ++n)
            for (std::int64_t t = L[static_cast<std::size_t>(n)]; t < T; ++t)
                for (std::int64_t e = 0; e < E; ++e) padding_nonzero += dirty.grads[0].f32()[(n * T + t) * E + e] != 0.0f;
        CHECK(padding_nonzero == 0);
    }
}

TEST_CASE("lstm impl graphrun: saturated gates, where its tanh and sigmoid are clamped", "[lstm][fused]") {
    // Inputs up to +-40 drive pre-activations far past +-7.9 (tanh's clamp) and
    // +-15.8 (the sigmoid's, as tanh(x / 2)) and through the middle: oneDNN's
    // outputs and gradients to 1e-5 still.
    const std::int64_t N = 8, T = 12, E = 16, H = 16;
    Tensor x = random_tensor({N, T, E}, 11, -40.0f, 40.0f);
    const std::vector<Tensor> w = lstm_weights(E, H, 13);
    for (const bool sequences : {false, true}) {
        INFO("return_sequences " << sequences);
        check_same(run_lstm("graphrun", x, w, nullptr, sequences), run_lstm("dnnl", x, w, nullptr, sequences), 1e-5);
    }
}

TEST_CASE("lstm impl graphrun in inference: a ring of a chunk's steps gives the training forward's outputs", "[lstm][fused]") {
    // Inference keeps a chunk of about 256 rows of gates and two steps of c:
    // the batch of 5 runs as parts of 3 and 2 rows, chunks of 85 and 128
    // steps, so 300 steps wrap each ring and end in a shorter chunk. (Every
    // row runs all 300 steps; the lengths choose which step's h is read, so
    // rows are read in several chunks of the ring.)
    const std::int64_t N = 5, T = 300, E = 16, H = 16;
    const Tensor x = random_tensor({N, T, E}, 21);
    const std::vector<Tensor> w = lstm_weights(E, H, 23);
    const Tensor lengths = int_tensor(DType::i32, {N}, {300, 85, 129, 211, 7});
    for (const bool sequences : {false, true})
        for (const std::string impl : {"graphrun", "dnnl"}) {
            INFO("return_sequences " << sequences << ", impl " << impl);
            Graph g(builtin_ops());
            const ValueRef in = g.input("x", x.type()), len = g.input("lengths", lengths.type());
            std::vector<ValueRef> args{in};
            const char* names[] = {"weight_ih", "weight_hh", "bias"};
            for (std::size_t k = 0; k < 3; ++k) args.push_back(g.parameter(names[k], w[k].type()));
            args.push_back(len);
            const ValueRef y = g.add("lstm", "lstm", args, {{"units", H}, {"return_sequences", sequences}, {"impl", impl}});
            Executor ex(g);
            ex.set("x", x);
            ex.set("lengths", lengths);
            for (std::size_t k = 0; k < 3; ++k) ex.set(names[k], w[k]);
            ex.forward(Executor::Mode::training);
            const Tensor trained = ex.value(y).clone();
            ex.forward({y}, Executor::Mode::inference);
            check_close("y, inference against training", ex.value(y), trained, 1e-6);
            if (impl == "graphrun") check_close("y, graphrun against dnnl", trained, run_lstm("dnnl", x, w, &lengths, sequences).y, 1e-5);
        }
}

TEST_CASE("lstm impl graphrun gives the same bits with 1 and 2 threads", "[lstm][fused][threads]") {
    const Tensor x = random_tensor({32, 20, 32}, 11);
    const std::vector<Tensor> w = lstm_weights(32, 64, 13);
    const Tensor lengths = int_tensor(DType::i64, {32}, std::vector<std::int64_t>(32, 20));
    std::vector<Run> runs;
    for (const int threads : {1, 2}) {
        const ThreadBudget budget(threads);
        runs.push_back(run_lstm("graphrun", x, w, &lengths, false));
    }
    CHECK(std::memcmp(runs[0].y.raw(), runs[1].y.raw(), runs[0].y.bytes()) == 0);
    for (std::size_t k = 0; k < 4; ++k) CHECK(std::memcmp(runs[0].grads[k].raw(), runs[1].grads[k].raw(), runs[0].grads[k].bytes()) == 0);
}

TEST_CASE("lstm impl: an unknown one, and graphrun with bf16, are refused", "[lstm][fused]") {
    Graph g(builtin_ops());
    const ValueRef x = g.input("x", {DType::f32, {kAnyDim, 3, 4}});
    const ValueRef wi = g.parameter("wi", {DType::f32, {8, 4}}), wh = g.parameter("wh", {DType::f32, {8, 2}}), b = g.parameter("b", {DType::f32, {8}});
    CHECK_THROWS_WITH(g.add("l", "lstm", {x, wi, wh, b}, {{"units", std::int64_t{2}}, {"impl", std::string("cudnn")}}),
                      Contains("impl must be dnnl or graphrun, got 'cudnn'"));
    CHECK_THROWS_WITH(g.add("l", "lstm", {x, wi, wh, b}, {{"units", std::int64_t{2}}, {"impl", std::string("graphrun")}, {"precision", std::string("bf16")}}),
                      Contains("impl graphrun is float32 only"));
}

TEST_CASE("lstm impl graphrun creates its primitives on the first step of a shape only", "[lstm][fused][plan]") {
    Graph g(builtin_ops());
    const ValueRef x = g.parameter("x", {DType::f32, {kAnyDim, 6, 8}});
    const ValueRef wi = g.parameter("wi", {DType::f32, {32, 8}}), wh = g.parameter("wh", {DType::f32, {32, 8}}), b = g.parameter("b", {DType::f32, {32}});
    const ValueRef y = g.add("l", "lstm", {x, wi, wh, b}, {{"units", std::int64_t{8}}, {"impl", std::string("graphrun")}});
    const ValueRef loss = g.add("loss", "sum", {y});
    Executor ex(g);
    ex.set("wi", random_tensor({32, 8}, 1));
    ex.set("wh", random_tensor({32, 8}, 2));
    ex.set("b", random_tensor({32}, 3));
    for (const std::int64_t N : {std::int64_t{32}, std::int64_t{5}}) {
        ex.set("x", random_tensor({N, 6, 8}, 4));
        ex.forward();
        ex.backward(loss);
        const std::int64_t after_first = primitives_created();
        for (int step = 0; step < 3; ++step) {
            ex.forward();
            ex.backward(loss);
        }
        CHECK(primitives_created() == after_first);
    }
}

TEST_CASE("lstm impl is no part of the model: the structure hash ignores it, so weights move between implementations", "[lstm][fused]") {
    std::vector<std::string> hashes;
    for (const char* impl : {"graphrun", "dnnl", ""}) {
        Graph g(builtin_ops());
        const ValueRef x = g.input("x", {DType::f32, {kAnyDim, 3, 4}});
        const ValueRef wi = g.parameter("wi", {DType::f32, {8, 4}}), wh = g.parameter("wh", {DType::f32, {8, 2}}), b = g.parameter("b", {DType::f32, {8}});
        g.add("l", "lstm", {x, wi, wh, b}, {{"units", std::int64_t{2}}, {"impl", std::string(impl)}});
        hashes.push_back(structure_hash(g));
    }
    CHECK(hashes[0] == hashes[1]);
    CHECK(hashes[0] == hashes[2]);
    Graph other(builtin_ops());  // what the model computes still counts
    const ValueRef x = other.input("x", {DType::f32, {kAnyDim, 3, 4}});
    const ValueRef wi = other.parameter("wi", {DType::f32, {8, 4}}), wh = other.parameter("wh", {DType::f32, {8, 2}}), b = other.parameter("b", {DType::f32, {8}});
    other.add("l", "lstm", {x, wi, wh, b}, {{"units", std::int64_t{2}}, {"return_sequences", true}});
    CHECK(structure_hash(other) != hashes[0]);
}
