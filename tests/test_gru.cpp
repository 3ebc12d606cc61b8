// gru: PyTorch's nn.GRU values and gradients (tests/fixtures/gru.json and
// gru_packed.json: final state, every state, and packed sequences), finite
// differences with and without lengths, a batch cut into parts against its
// rows run alone, the same bits for any thread count and either executor, the
// shape rule and its errors; a spec with gru layers that builds PyTorch's
// parameters, reads its ids' lengths and trains, and stacks through which
// padding never leaks.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "engine/core/executor.hpp"
#include "engine/core/threads.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/initializer.hpp"
#include "engine/train/trainer.hpp"
#include "graphrun/thread_budget.hpp"
#include "ops/builtin.hpp"
#include "tests/fixtures.hpp"
#include "tests/gradcheck.hpp"
#include "tests/tensors.hpp"
#include "tests/scratch.hpp"

using namespace graphrun;
using Catch::Matchers::Contains;
using testing::check_close;
using testing::random_tensor;
using testing::int_tensor;
using testing::steps_of;
using testing::row_of;
using testing::embed_padded;

namespace {

constexpr double kSame = 1e-6;  // the same arithmetic up to summation order
const std::vector<std::string> kWeights{"weight_ih", "weight_hh", "bias_ih", "bias_hh"};

struct Sizes {
    std::int64_t N, T, E, H;
};

// PyTorch's parameters (3H, E), (3H, H), (3H), (3H) in [-0.5, 0.5): small, so
// the gates stay away from saturation and finite differences behave.
std::map<std::string, Tensor> gru_weights(const Sizes& s, unsigned seed) {
    return {{"weight_ih", random_tensor({3 * s.H, s.E}, seed, -0.5f, 0.5f)},
            {"weight_hh", random_tensor({3 * s.H, s.H}, seed + 1, -0.5f, 0.5f)},
            {"bias_ih", random_tensor({3 * s.H}, seed + 2, -0.5f, 0.5f)},
            {"bias_hh", random_tensor({3 * s.H}, seed + 3, -0.5f, 0.5f)}};
}

bool all_zero(const Tensor& t) {
    for (float v : t.floats())
        if (v != 0.0f) return false;
    return true;
}

bool same_bits(const Tensor& a, const Tensor& b) { return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.bytes()) == 0; }

// A gru node over parameters x and PyTorch's four (and an input `lengths`
// when given), run forward and backward with seed w.
struct GruRun {
    Tensor y;
    std::map<std::string, Tensor> grads;  // x and the weights
};

GruRun run_gru(const Tensor& x, const std::map<std::string, Tensor>& weights, const Tensor* lengths, bool return_sequences,
               const Tensor& w, Executor::Schedule schedule = Executor::Schedule::tasks) {
    Graph g(builtin_ops());
    std::vector<ValueRef> in{g.parameter("x", x.type())};
    for (const auto& name : kWeights) in.push_back(g.parameter(name, weights.at(name).type()));
    if (lengths) in.push_back(g.input("lengths", lengths->type()));
    const std::int64_t units = weights.at("weight_hh").dim(1);
    const ValueRef y = g.add("gru", "gru", in, {{"units", units}, {"return_sequences", return_sequences}});
    Executor ex(g, schedule);
    ex.set("x", x.clone());
    for (const auto& name : kWeights) ex.set(name, weights.at(name).clone());
    if (lengths) ex.set("lengths", lengths->clone());
    ex.forward();
    ex.backward({{y, w.clone()}});
    GruRun out{ex.value(y).clone(), {}};
    out.grads["x"] = ex.grad("x").clone();
    for (const auto& name : kWeights) out.grads[name] = ex.grad(name).clone();
    return out;
}

std::map<std::string, Tensor> fixture_weights(const std::map<std::string, Tensor>& f) {
    std::map<std::string, Tensor> w;
    for (const auto& name : kWeights) w[name] = f.at(name);
    return w;
}

// The run's output and gradients against the fixture's `y` and d<name><suffix>.
void check_against(const GruRun& run, const std::map<std::string, Tensor>& f, const std::string& y, const std::string& suffix) {
    check_close(y, run.y, f.at(y), 1e-5);
    check_close("dx" + suffix, run.grads.at("x"), f.at("dx" + suffix), 1e-5);
    for (const auto& name : kWeights) check_close("d" + name + suffix, run.grads.at(name), f.at("d" + name + suffix), 1e-5);
}

const Sizes kShapes[] = {{1, 1, 2, 3}, {3, 5, 4, 6}, {2, 7, 3, 5}, {1, 4, 1, 1}};

}  // namespace

// ---- PyTorch ----

TEST_CASE("gru matches nn.GRU, final state and every state, values and gradients", "[gru][fixtures]") {
    const auto f = testing::load_fixture("gru");
    const auto weights = fixture_weights(f);
    // nn.GRU's default initialization draws distinct non-zero biases: a gate or
    // bias put in the wrong place by the reordering shows here.
    check_against(run_gru(f.at("x"), weights, nullptr, false, f.at("w_final")), f, "h_final", "");
    check_against(run_gru(f.at("x"), weights, nullptr, true, f.at("w_seq")), f, "h_seq", "_seq");
}

TEST_CASE("gru with lengths matches nn.GRU on pack_padded_sequence", "[gru][padding][fixtures]") {
    const auto f = testing::load_fixture("gru_packed");
    const auto weights = fixture_weights(f);
    const Tensor& lengths64 = f.at("lengths");
    REQUIRE(lengths64.dtype() == DType::i64);
    std::vector<std::int64_t> values(lengths64.i64(), lengths64.i64() + lengths64.numel());
    for (DType dtype : {DType::i64, DType::i32}) {
        INFO(dtype_name(dtype) << " lengths");
        const Tensor lengths = int_tensor(dtype, {lengths64.numel()}, values);
        check_against(run_gru(f.at("x"), weights, &lengths, false, f.at("w_final")), f, "h_final", "");
        check_against(run_gru(f.at("x"), weights, &lengths, true, f.at("w_seq")), f, "h_seq", "_seq");
    }
}

// ---- finite differences ----

TEST_CASE("gru gradients match finite differences", "[gru][gradcheck]") {
    unsigned seed = 10;
    for (const Sizes& s : kShapes)
        for (bool seq : {false, true}) {
            INFO(fmt::format("N={} T={} E={} H={} return_sequences={}", s.N, s.T, s.E, s.H, seq));
            const auto w = gru_weights(s, seed);
            const Tensor x = random_tensor({s.N, s.T, s.E}, seed + 5);
            testing::GradcheckOptions options;
            options.seed = seed;
            REQUIRE(testing::check_op_gradients("gru", {x, w.at("weight_ih"), w.at("weight_hh"), w.at("bias_ih"), w.at("bias_hh")},
                                                {{"units", s.H}, {"return_sequences", seq}}, options) > 0);
            seed += 10;
        }
}

TEST_CASE("gru with lengths: gradients match finite differences", "[gru][padding][gradcheck]") {
    struct Case {
        Sizes s;
        std::vector<std::int64_t> lengths;
        DType dtype;
    };
    const std::vector<Case> cases{
        {{1, 4, 3, 4}, {3}, DType::i64},           // batch 1
        {{3, 5, 3, 4}, {0, 5, 2}, DType::i64},     // a length-0 row, a full row
        {{4, 4, 2, 3}, {1, 4, 0, 3}, DType::i32},  // both again, and length 1
        {{2, 1, 3, 2}, {1, 0}, DType::i64},        // T = 1
    };
    unsigned seed = 200;
    for (const auto& c : cases)
        for (bool seq : {false, true}) {
            INFO(fmt::format("N={} T={} E={} H={} return_sequences {}", c.s.N, c.s.T, c.s.E, c.s.H, seq));
            const auto w = gru_weights(c.s, seed);
            const Tensor x = random_tensor({c.s.N, c.s.T, c.s.E}, seed + 5);
            testing::GradcheckOptions options;
            options.seed = seed;
            REQUIRE(testing::check_op_gradients(
                        "gru", {x, w.at("weight_ih"), w.at("weight_hh"), w.at("bias_ih"), w.at("bias_hh"), int_tensor(c.dtype, {c.s.N}, c.lengths)},
                        {{"units", c.s.H}, {"return_sequences", seq}}, options) > 0);
            seed += 10;
        }
}

// ---- padding, batch parts and threads ----

// 40 rows: batch_parts cuts them into 3 parts. Each row run alone (1 part, no
// padding) gives the padded batch's row, its dx at the real steps (0 at the
// padding steps, which hold random values) and, summed over rows, the batch's
// weight gradients. Any thread count, and either executor, gives the same bits.
TEST_CASE("gru: a padded batch cut into parts equals its rows run alone, with the same bits for any thread count", "[gru][padding]") {
    const Sizes s{40, 6, 4, 5};
    REQUIRE(batch_parts(s.N) == 3);
    REQUIRE(batch_parts(1) == 1);
    const auto weights = gru_weights(s, 300);
    const Tensor x = random_tensor({s.N, s.T, s.E}, 301);
    std::vector<std::int64_t> true_lengths;
    for (std::int64_t n = 0; n < s.N; ++n) true_lengths.push_back((n * 5) % 7);  // 0 to 6 = T
    const Tensor lengths = int_tensor(DType::i64, {s.N}, true_lengths);
    for (bool seq : {false, true}) {
        INFO("return_sequences " << seq);
        const Tensor w = seq ? random_tensor({s.N, s.T, s.H}, 302) : random_tensor({s.N, s.H}, 302);
        const GruRun padded = run_gru(x, weights, &lengths, seq, w);

        std::map<std::string, Tensor> weight_sum;
        for (const auto& name : kWeights) weight_sum[name] = Tensor(weights.at(name).shape());
        for (std::int64_t n = 0; n < s.N; ++n) {
            const std::int64_t L = true_lengths[static_cast<std::size_t>(n)];
            INFO(fmt::format("row {} of true length {} padded to T = {}", n, L, s.T));
            if (L == 0) {
                CHECK(all_zero(seq ? steps_of(padded.y, n, 0, s.T) : row_of(padded.y, n)));
                CHECK(all_zero(steps_of(padded.grads.at("x"), n, 0, s.T)));
                continue;
            }
            const Tensor w_n = seq ? steps_of(w, n, 0, L) : row_of(w, n);
            const GruRun alone = run_gru(steps_of(x, n, 0, L), weights, nullptr, seq, w_n);
            if (seq) {
                check_close("y, real steps", steps_of(padded.y, n, 0, L), alone.y, kSame);
                CHECK(all_zero(steps_of(padded.y, n, L, s.T)));
            } else {
                check_close("y", row_of(padded.y, n), alone.y, kSame);
            }
            check_close("dx, real steps", steps_of(padded.grads.at("x"), n, 0, L), alone.grads.at("x"), kSame);
            CHECK(all_zero(steps_of(padded.grads.at("x"), n, L, s.T)));
            for (const auto& name : kWeights)
                for (std::int64_t j = 0; j < weight_sum[name].numel(); ++j) weight_sum[name].f32()[j] += alone.grads.at(name).f32()[j];
        }
        for (const auto& name : kWeights) check_close("d" + name + " (sum over rows alone)", padded.grads.at(name), weight_sum[name], kSame);

        for (const auto& [schedule, threads] : {std::pair{Executor::Schedule::tasks, 1}, {Executor::Schedule::tasks, 2},
                                                {Executor::Schedule::tasks, 4}, {Executor::Schedule::sequential, 2}}) {
            INFO(fmt::format("{} with {} threads", schedule == Executor::Schedule::tasks ? "tasks" : "sequential", threads));
            const ThreadBudget budget(threads);
            const GruRun again = run_gru(x, weights, &lengths, seq, w, schedule);
            CHECK(same_bits(again.y, padded.y));
            for (const auto& [name, grad] : padded.grads) CHECK(same_bits(again.grads.at(name), grad));
        }
    }
}

TEST_CASE("gru with lengths all equal to T gives the result without lengths", "[gru][padding]") {
    const Sizes s{3, 5, 4, 6};
    const auto weights = gru_weights(s, 400);
    const Tensor x = random_tensor({s.N, s.T, s.E}, 401);
    const Tensor full = int_tensor(DType::i32, {s.N}, {5, 5, 5});
    for (bool seq : {false, true}) {
        INFO("return_sequences " << seq);
        const Tensor w = seq ? random_tensor({s.N, s.T, s.H}, 402) : random_tensor({s.N, s.H}, 402);
        const GruRun with = run_gru(x, weights, &full, seq, w);
        const GruRun without = run_gru(x, weights, nullptr, seq, w);
        check_close("y", with.y, without.y, kSame);
        for (const auto& [name, grad] : without.grads) check_close("d" + name, with.grads.at(name), grad, kSame);
    }
}

// The executor keeps one state per node: a new batch size and new lengths on
// the same executor, values and gradients, must give what a fresh one gives;
// and a second backward does not add to the first (the weight gradients in
// oneDNN's gate order start from zero each step).
TEST_CASE("gru: one executor, changing batch and lengths, gives what a fresh one gives", "[gru][padding]") {
    const Sizes s{3, 6, 4, 5};
    const auto weights = gru_weights(s, 500);
    Graph g(builtin_ops());
    std::vector<ValueRef> in{g.parameter("x", {DType::f32, {kAnyDim, s.T, s.E}})};
    for (const auto& name : kWeights) in.push_back(g.parameter(name, weights.at(name).type()));
    in.push_back(g.input("lengths", {DType::i32, {kAnyDim}}));
    const ValueRef y = g.add("gru", "gru", in, {{"units", s.H}});
    Executor ex(g);
    for (const auto& name : kWeights) ex.set(name, weights.at(name).clone());
    const std::vector<std::pair<std::int64_t, std::vector<std::int64_t>>> cases{{3, {6, 2, 4}}, {3, {1, 6, 0}}, {40, std::vector<std::int64_t>(40, 3)}, {2, {3, 5}}};
    for (const auto& [N, ls] : cases) {
        INFO(fmt::format("N = {}", N));
        const Tensor x = random_tensor({N, s.T, s.E}, static_cast<unsigned>(510 + N + ls[0]));
        const Tensor lengths = int_tensor(DType::i32, {N}, ls);
        const Tensor w = random_tensor({N, s.H}, 520);
        ex.set("x", x);
        ex.set("lengths", lengths);
        ex.forward();
        ex.backward({{y, w}});
        const GruRun fresh = run_gru(x, weights, &lengths, false, w);
        CHECK(same_bits(ex.value(y), fresh.y));
        CHECK(same_bits(ex.grad("x"), fresh.grads.at("x")));
        for (const auto& name : kWeights) CHECK(same_bits(ex.grad(name), fresh.grads.at(name)));
    }
}

// ---- the shape rule ----

TEST_CASE("gru shape errors say what was expected", "[gru]") {
    const std::int64_t T = 5, E = 4, H = 6;
    Graph g(builtin_ops());
    const ValueRef x = g.input("x", {DType::f32, {kAnyDim, T, E}});
    const auto p = [&](const std::string& name, Shape shape) { return g.parameter(name, {DType::f32, std::move(shape)}); };
    const ValueRef w_ih = p("w_ih", {3 * H, E}), w_hh = p("w_hh", {3 * H, H}), b_ih = p("b_ih", {3 * H}), b_hh = p("b_hh", {3 * H});
    const Attrs units{{"units", H}};
    CHECK_THROWS_WITH(g.add("a", "gru", {x, p("lstm_sized", {4 * H, E}), w_hh, b_ih, b_hh}, units),
                      Contains("'a'") && Contains("gru expects weight_ih (3*units=18, E=4), got (24, 4)"));
    CHECK_THROWS_WITH(g.add("b", "gru", {x, w_ih, p("square", {3 * H, 3 * H}), b_ih, b_hh}, units),
                      Contains("gru expects weight_hh (3*units=18, units=6), got (18, 18)"));
    CHECK_THROWS_WITH(g.add("c", "gru", {x, w_ih, w_hh, p("one_bias", {4 * H}), b_hh}, units), Contains("gru expects bias_ih (3*units=18), got (24,)"));
    CHECK_THROWS_WITH(g.add("d", "gru", {x, w_ih, w_hh, b_ih, p("b2", {3 * H, 1})}, units), Contains("gru expects bias_hh (3*units=18), got (18, 1)"));
    CHECK_THROWS_WITH(g.add("e", "gru", {g.input("flat", {DType::f32, {kAnyDim, E}}), w_ih, w_hh, b_ih, b_hh}, units), Contains("'e'"));
    CHECK_THROWS_WITH(g.add("f", "gru", {x, w_ih, w_hh, b_ih, b_hh, g.input("fl", {DType::f32, {kAnyDim}})}, units),
                      Contains("gru expects lengths (N) of i32 or i64"));
    CHECK_THROWS_WITH(g.add("h", "gru", {x, w_ih, w_hh, b_ih, b_hh}), Contains("units"));
    const ValueRef last = g.add("ok", "gru", {x, w_ih, w_hh, b_ih, b_hh, g.input("lengths", {DType::i64, {kAnyDim}})}, units);
    CHECK(g.type(last) == TensorType{DType::f32, {kAnyDim, H}});
    const ValueRef all = g.add("ok_seq", "gru", {x, w_ih, w_hh, b_ih, b_hh}, {{"units", H}, {"return_sequences", true}});
    CHECK(g.type(all) == TensorType{DType::f32, {kAnyDim, T, H}});
}

TEST_CASE("gru refuses a length outside [0, T], naming the row and the value", "[gru][padding]") {
    const Sizes s{3, 4, 2, 3};
    const auto weights = gru_weights(s, 600);
    Graph g(builtin_ops());
    std::vector<ValueRef> in{g.input("x", {DType::f32, {kAnyDim, s.T, s.E}})};
    for (const auto& name : kWeights) in.push_back(g.parameter(name, weights.at(name).type()));
    in.push_back(g.input("lengths", {DType::i64, {kAnyDim}}));
    g.add("enc", "gru", in, {{"units", s.H}});
    Executor ex(g);
    for (const auto& name : kWeights) ex.set(name, weights.at(name).clone());
    ex.set("x", random_tensor({s.N, s.T, s.E}, 601));
    ex.set("lengths", int_tensor(DType::i64, {s.N}, {4, 5, 1}));
    CHECK_THROWS_WITH(ex.forward(), Contains("node 'enc' (gru)") && Contains("gru expects lengths in [0, T=4]") && Contains("got 5 for row 1"));
    ex.set("lengths", int_tensor(DType::i64, {s.N}, {4, 0, 1}));
    CHECK_NOTHROW(ex.forward());
}

// ---- the layer and the spec ----

TEST_CASE("a spec with gru layers: PyTorch's parameters and initialization, its ids' lengths, shared weights, and it trains", "[gru][spec]") {
    const std::string path = GRAPHRUN_SOURCE_DIR "/tests/specs/small_siamese_gru.yaml";
    const spec::Spec spec = spec::load_spec_file(path);
    const BuiltGraph built = build_graph(spec, builtin_ops());
    const Graph& g = built.graph;
    const std::int64_t E = 8, H = 12;
    const std::map<std::string, Shape> shapes{{"left_gru.weight_ih", {3 * H, E}}, {"left_gru.weight_hh", {3 * H, H}},
                                              {"left_gru.bias_ih", {3 * H}}, {"left_gru.bias_hh", {3 * H}}};
    for (const auto& [name, shape] : shapes) {
        INFO(name);
        REQUIRE(g.find(name).has_value());
        CHECK(g.node(*g.find(name)).outputs[0].shape == shape);
        CHECK_FALSE(g.find("right_gru." + name.substr(name.find('.') + 1)).has_value());  // shared
    }
    // Each gru after an embedding reads its ids' lengths; the right one uses the left one's weights.
    for (const char* side : {"left", "right"}) {
        const Node& gru = g.node(g.index_of(fmt::format("{}_gru", side)));
        REQUIRE(gru.inputs.size() == 6);
        CHECK(gru.inputs[5] == ValueRef{g.index_of(fmt::format("{}_gru/lengths", side)), 0});
        CHECK(gru.inputs[1] == ValueRef{*g.find("left_gru.weight_ih"), 0});
        CHECK(g.type(ValueRef{g.index_of(gru.name), 0}).shape == Shape{kAnyDim, H});
    }
    // nn.GRU's initialization: every weight and bias from U(-1/sqrt(H), 1/sqrt(H)).
    Executor ex(g);
    initialize_parameters(ex, 5);
    const float bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(H)));
    for (const auto& [name, shape] : shapes) {
        INFO(name);
        float lo = bound, hi = -bound;
        for (float v : ex.value(name).floats()) {
            lo = std::min(lo, v);
            hi = std::max(hi, v);
        }
        CHECK(lo >= -bound);
        CHECK(hi <= bound);
        CHECK(hi - lo > bound);  // drawn, not constant
    }

    const auto dir = test::scratch_folder("gru", "spec");
    train::TrainOptions options;
    options.out_dir = dir.string();
    const auto history = train::train(spec, built, options);
    REQUIRE(history.size() == 3);
    CHECK(history.back().train_loss < history.front().train_loss);
    REQUIRE(history.back().metric("val_auc").has_value());
    CHECK(*history.back().metric("val_auc") > 0.8);  // it learned
    std::filesystem::remove_all(dir);
}

// The builder hands each gru its input's lengths, and a gru's sequences carry
// them on: a row padded to 11 steps gives what it gives unpadded (4 steps).
TEST_CASE("padding never leaks through a stack with gru layers: each row's output is its unpadded one", "[gru][padding][spec]") {
    const std::vector<std::int32_t> tokens{3, 7, 1, 12};
    const std::vector<std::pair<std::string, std::string>> stacks{
        {"gru -> gru", R"(  - {name: first, op: gru, inputs: [embedding], units: 6, return_sequences: true}
  - {name: out, op: gru, inputs: [first], units: 4})"},
        {"gru -> gru (sequences) -> max_pool", R"(  - {name: first, op: gru, inputs: [embedding], units: 6, return_sequences: true}
  - {name: second, op: gru, inputs: [first], units: 6, return_sequences: true}
  - {name: out, op: max_pool, inputs: [second]})"},
        {"lstm -> gru", R"(  - {name: first, op: lstm, inputs: [embedding], units: 6, return_sequences: true}
  - {name: out, op: gru, inputs: [first], units: 4})"},
        {"gru -> tanh -> lstm", R"(  - {name: first, op: gru, inputs: [embedding], units: 6, return_sequences: true}
  - {name: squashed, op: tanh, inputs: [first]}
  - {name: out, op: lstm, inputs: [squashed], units: 4})"},
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
