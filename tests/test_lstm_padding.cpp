// Variable-length sequences: `sequence_lengths` and `lstm`'s optional lengths
// input. Padding after the real steps must change nothing: a padded batch
// gives each row's unpadded output and the unpadded weight gradients, x gets
// no gradient at the padding steps; checked against one graph per row run
// unpadded, finite differences, and PyTorch's pack_padded_sequence.
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "engine/core/executor.hpp"
#include "ops/builtin.hpp"
#include "ops/composites.hpp"
#include "tests/fixtures.hpp"
#include "tests/gradcheck.hpp"
#include "tests/tensors.hpp"

using namespace graphrun;
using Catch::Matchers::Contains;
using testing::check_close;
using testing::random_tensor;
using testing::int_tensor;
using testing::steps_of;
using testing::row_of;
using testing::int_at;

namespace {

constexpr double kSame = 1e-6;  // padded vs unpadded: the same arithmetic up to summation order
const std::vector<std::string> kWeights{"weight_ih", "weight_hh", "bias"};

bool all_zero(const Tensor& t) {
    for (float v : t.floats())
        if (v != 0.0f) return false;
    return true;
}

struct Sizes {
    std::int64_t N, T, E, H;
};

// An lstm node over parameters x, weight_ih, weight_hh, bias (and an input
// `lengths` when given), run forward and backward with seed w.
struct LstmRun {
    Tensor y;
    std::map<std::string, Tensor> grads;  // x and the weights
};

LstmRun run_lstm(const Tensor& x, const std::map<std::string, Tensor>& weights, const Tensor* lengths, bool return_sequences,
                 const Tensor& w) {
    Graph g(builtin_ops());
    std::vector<ValueRef> in{g.parameter("x", x.type())};
    for (const auto& name : kWeights) in.push_back(g.parameter(name, weights.at(name).type()));
    if (lengths) in.push_back(g.input("lengths", lengths->type()));
    const std::int64_t units = weights.at("weight_hh").dim(1);
    const ValueRef y = g.add("lstm", "lstm", in, {{"units", units}, {"return_sequences", return_sequences}});
    Executor ex(g);
    ex.set("x", x.clone());
    for (const auto& name : kWeights) ex.set(name, weights.at(name).clone());
    if (lengths) ex.set("lengths", lengths->clone());
    ex.forward();
    ex.backward({{y, w.clone()}});
    LstmRun out{ex.value(y).clone(), {}};
    out.grads["x"] = ex.grad("x").clone();
    for (const auto& name : kWeights) out.grads[name] = ex.grad(name).clone();
    return out;
}

std::map<std::string, Tensor> lstm_weights(const Sizes& s, unsigned seed) {
    return {{"weight_ih", random_tensor({4 * s.H, s.E}, seed, -0.5f, 0.5f)},
            {"weight_hh", random_tensor({4 * s.H, s.H}, seed + 1, -0.5f, 0.5f)},
            {"bias", random_tensor({4 * s.H}, seed + 2, -0.5f, 0.5f)}};
}

// A padded batch against each row run alone at its true length: the same
// outputs, the same weight gradients summed over rows, the same dx at the real
// steps and exactly 0 at the padding steps (which hold random values, not 0s,
// to show they are never read).
void check_padded_against_rows(const std::vector<std::int64_t>& true_lengths, bool return_sequences, DType dtype) {
    const Sizes s{static_cast<std::int64_t>(true_lengths.size()), 7, 4, 5};
    const auto weights = lstm_weights(s, 11);
    const Tensor x = random_tensor({s.N, s.T, s.E}, 21);
    const Tensor lengths = int_tensor(dtype, {s.N}, true_lengths);
    const Tensor w = return_sequences ? random_tensor({s.N, s.T, s.H}, 31) : random_tensor({s.N, s.H}, 31);
    const LstmRun padded = run_lstm(x, weights, &lengths, return_sequences, w);

    std::map<std::string, Tensor> weight_sum;
    for (const auto& name : kWeights) weight_sum[name] = Tensor(weights.at(name).shape());
    for (std::int64_t n = 0; n < s.N; ++n) {
        const std::int64_t L = true_lengths[static_cast<std::size_t>(n)];
        INFO(fmt::format("row {} of true length {} padded to T = {}", n, L, s.T));
        const Tensor w_n = return_sequences ? steps_of(w, n, 0, L) : row_of(w, n);
        const LstmRun alone = run_lstm(steps_of(x, n, 0, L), weights, nullptr, return_sequences, w_n);
        if (return_sequences) {
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
}

}  // namespace

// ---- (a) padding changes nothing ----

TEST_CASE("lstm with lengths: a padded batch equals each row run unpadded", "[padding]") {
    SECTION("final state, i64 lengths") { check_padded_against_rows({2, 5, 7}, false, DType::i64); }
    SECTION("final state, i32 lengths") { check_padded_against_rows({2, 5, 7}, false, DType::i32); }
    SECTION("every state, i64 lengths") { check_padded_against_rows({2, 5, 7}, true, DType::i64); }
    SECTION("every state, i32 lengths, one row of length 1") { check_padded_against_rows({7, 1, 4}, true, DType::i32); }
}

TEST_CASE("lstm with lengths all equal to T gives the result without lengths", "[padding]") {
    const Sizes s{3, 5, 4, 6};
    const auto weights = lstm_weights(s, 41);
    const Tensor x = random_tensor({s.N, s.T, s.E}, 42);
    const Tensor full = int_tensor(DType::i64, {s.N}, {5, 5, 5});
    for (bool return_sequences : {false, true}) {
        INFO("return_sequences " << return_sequences);
        const Tensor w = return_sequences ? random_tensor({s.N, s.T, s.H}, 43) : random_tensor({s.N, s.H}, 43);
        const LstmRun with = run_lstm(x, weights, &full, return_sequences, w);
        const LstmRun without = run_lstm(x, weights, nullptr, return_sequences, w);
        check_close("y", with.y, without.y, kSame);
        for (const auto& [name, grad] : without.grads) check_close("d" + name, with.grads.at(name), grad, kSame);
    }
}

TEST_CASE("lstm with lengths: a length-0 row gives zeros and no gradient", "[padding]") {
    const Sizes s{2, 4, 3, 5};
    const auto weights = lstm_weights(s, 51);
    const Tensor x = random_tensor({s.N, s.T, s.E}, 52);
    const Tensor lengths = int_tensor(DType::i64, {s.N}, {0, 3});
    const LstmRun run = run_lstm(x, weights, &lengths, false, random_tensor({s.N, s.H}, 53));
    CHECK(all_zero(row_of(run.y, 0)));
    CHECK(!all_zero(row_of(run.y, 1)));
    CHECK(all_zero(row_of(run.grads.at("x"), 0)));
    CHECK(all_zero(steps_of(run.grads.at("x"), 1, 3, 4)));
}

// The executor keeps one state per node: new lengths, and then a new batch
// size, on the same executor must give what a fresh executor gives.
TEST_CASE("lstm with lengths: one executor, changing lengths and batch", "[padding]") {
    const Sizes s{3, 6, 4, 5};
    const auto weights = lstm_weights(s, 61);
    Graph g(builtin_ops());
    std::vector<ValueRef> in{g.input("x", {DType::f32, {kAnyDim, s.T, s.E}})};
    for (const auto& name : kWeights) in.push_back(g.parameter(name, weights.at(name).type()));
    in.push_back(g.input("lengths", {DType::i32, {kAnyDim}}));
    const ValueRef y = g.add("lstm", "lstm", in, {{"units", s.H}});
    Executor ex(g);
    for (const auto& name : kWeights) ex.set(name, weights.at(name).clone());
    const std::vector<std::pair<std::int64_t, std::vector<std::int64_t>>> cases{{3, {6, 2, 4}}, {3, {1, 6, 0}}, {2, {3, 5}}};
    for (const auto& [N, ls] : cases) {
        const Tensor x = random_tensor({N, s.T, s.E}, static_cast<unsigned>(70 + N + ls[0]));
        const Tensor lengths = int_tensor(DType::i32, {N}, ls);
        ex.set("x", x);
        ex.set("lengths", lengths);
        ex.forward();
        const LstmRun fresh = run_lstm(x, weights, &lengths, false, random_tensor({N, s.H}, 1));
        check_close(fmt::format("y, N = {}", N), ex.value(y), fresh.y, 0.0);
    }
}

TEST_CASE("embedding -> lstm with sequence_lengths: padded ids give the unpadded result", "[padding]") {
    const std::int64_t V = 11, E = 4, H = 5, T = 7;
    const std::vector<std::vector<std::int64_t>> sequences{{3, 1}, {4, 1, 5, 9, 2}, {6, 5, 3, 5, 8, 9, 7}};
    const std::int64_t N = static_cast<std::int64_t>(sequences.size());
    // nn.Embedding's usual padding_idx = 0 is not assumed: id 0 has a non-zero row.
    const std::map<std::string, Tensor> params{{"emb.weight", random_tensor({V, E}, 81)},
                                               {"lstm.weight_ih", random_tensor({4 * H, E}, 82, -0.5f, 0.5f)},
                                               {"lstm.weight_hh", random_tensor({4 * H, H}, 83, -0.5f, 0.5f)},
                                               {"lstm.bias", random_tensor({4 * H}, 84, -0.5f, 0.5f)}};
    // ids -> embedding_layer -> lstm_layer, the lengths from a sequence_lengths node when padded.
    const auto run = [&](const Tensor& ids, bool padded, const Tensor& w) {
        Graph g(builtin_ops());
        const ValueRef in = g.input("ids", ids.type());
        const ValueRef x = embedding_layer(g, "emb", in, V, E);
        std::optional<ValueRef> lengths;
        if (padded) lengths = g.add("lengths", "sequence_lengths", {in});
        const ValueRef y = lstm_layer(g, "lstm", x, H, false, lengths);
        Executor ex(g);
        ex.set("ids", ids);
        for (const auto& [name, value] : params) ex.set(name, value.clone());
        ex.forward();
        ex.backward({{y, w.clone()}});
        LstmRun out{ex.value(y).clone(), {}};
        for (const auto& [name, value] : params) out.grads[name] = ex.grad(name).clone();
        if (padded) {
            for (std::int64_t n = 0; n < N; ++n) CHECK(int_at(ex.value(*lengths), n) == static_cast<std::int64_t>(sequences[n].size()));
        }
        return out;
    };

    std::vector<std::int64_t> padded_ids(static_cast<std::size_t>(N * T), 0);
    for (std::int64_t n = 0; n < N; ++n)
        for (std::size_t t = 0; t < sequences[n].size(); ++t) padded_ids[n * T + t] = sequences[n][t];
    const Tensor w = random_tensor({N, H}, 85);
    const LstmRun batch = run(int_tensor(DType::i64, {N, T}, padded_ids), true, w);

    std::map<std::string, Tensor> grad_sum;
    for (const auto& [name, value] : params) grad_sum[name] = Tensor(value.shape());
    for (std::int64_t n = 0; n < N; ++n) {
        const auto& seq = sequences[static_cast<std::size_t>(n)];
        INFO(fmt::format("row {} of length {}", n, seq.size()));
        const LstmRun alone = run(int_tensor(DType::i64, {1, static_cast<std::int64_t>(seq.size())}, seq), false, row_of(w, n));
        check_close("y", row_of(batch.y, n), alone.y, kSame);
        for (const auto& [name, grad] : alone.grads)
            for (std::int64_t j = 0; j < grad.numel(); ++j) grad_sum[name].f32()[j] += grad.f32()[j];
    }
    for (const auto& [name, grad] : grad_sum) check_close("d" + name + " (sum over rows alone)", batch.grads.at(name), grad, kSame);
    // Id 0 appears only as padding: its embedding row gets exactly no gradient.
    const float* d_pad = batch.grads.at("emb.weight").f32();
    for (std::int64_t e = 0; e < E; ++e) CHECK(d_pad[e] == 0.0f);
}

// ---- (b) finite differences ----

TEST_CASE("lstm with lengths: gradients match finite differences", "[padding][gradcheck]") {
    struct Case {
        Sizes s;
        std::vector<std::int64_t> lengths;
        DType dtype;
    };
    const std::vector<Case> cases{
        {{1, 4, 3, 4}, {3}, DType::i64},           // batch 1
        {{1, 3, 2, 3}, {3}, DType::i32},           // batch 1, full length
        {{3, 5, 3, 4}, {0, 5, 2}, DType::i64},     // a length-0 row, a full row
        {{4, 4, 2, 3}, {1, 4, 0, 3}, DType::i32},  // both again, and length 1
        {{2, 1, 3, 2}, {1, 0}, DType::i64},        // T = 1
    };
    unsigned seed = 100;
    for (const auto& c : cases) {
        for (bool return_sequences : {false, true}) {
            INFO(fmt::format("N={} T={} E={} H={} return_sequences {}", c.s.N, c.s.T, c.s.E, c.s.H, return_sequences));
            const auto w = lstm_weights(c.s, seed);
            const Tensor x = random_tensor({c.s.N, c.s.T, c.s.E}, seed + 3);
            testing::GradcheckOptions options;
            options.seed = seed;
            const int compared = testing::check_op_gradients(
                "lstm", {x, w.at("weight_ih"), w.at("weight_hh"), w.at("bias"), int_tensor(c.dtype, {c.s.N}, c.lengths)},
                {{"units", c.s.H}, {"return_sequences", return_sequences}}, options);
            REQUIRE(compared > 0);
            seed += 10;
        }
    }
}

// ---- (c) sequence_lengths ----

TEST_CASE("sequence_lengths counts up to the last non-zero id", "[padding]") {
    // Rows: trailing padding; all padding; a 0 inside the sequence (a token, not padding); no padding; one token.
    const std::vector<std::int64_t> ids{3, 1, 4, 0, 0,  //
                                        0, 0, 0, 0, 0,  //
                                        2, 0, 7, 0, 0,  //
                                        1, 2, 3, 4, 5,  //
                                        0, 0, 0, 0, 9};
    const std::vector<std::int64_t> want{3, 0, 3, 5, 5};
    for (DType dtype : {DType::i32, DType::i64}) {
        INFO(dtype_name(dtype));
        Graph g(builtin_ops());
        const ValueRef in = g.input("ids", {dtype, {kAnyDim, 5}});
        const ValueRef lengths = g.add("lengths", "sequence_lengths", {in});
        CHECK(g.type(lengths) == TensorType{dtype, {kAnyDim}});
        Executor ex(g);
        ex.set("ids", int_tensor(dtype, {5, 5}, ids));
        ex.forward();
        const Tensor& got = ex.value(lengths);
        REQUIRE(got.type() == TensorType{dtype, {5}});
        for (std::int64_t n = 0; n < 5; ++n) CHECK(int_at(got, n) == want[static_cast<std::size_t>(n)]);
    }
}

TEST_CASE("sequence_lengths refuses float ids and a rank other than 2", "[padding]") {
    Graph g(builtin_ops());
    const ValueRef floats = g.input("floats", {DType::f32, {2, 5}});
    const ValueRef flat = g.input("flat", {DType::i64, {5}});
    const ValueRef cube = g.input("cube", {DType::i32, {2, 5, 3}});
    CHECK_THROWS_WITH(g.add("a", "sequence_lengths", {floats}),
                      Contains("'a'") && Contains("sequence_lengths expects integer token ids") && Contains("f32(2, 5)"));
    CHECK_THROWS_WITH(g.add("b", "sequence_lengths", {flat}), Contains("'b'") && Contains("rank 2 (N, T)") && Contains("i64(5,)"));
    CHECK_THROWS_WITH(g.add("c", "sequence_lengths", {cube}), Contains("'c'") && Contains("rank 2 (N, T)") && Contains("(2, 5, 3)"));
}

// ---- (d) lengths outside [0, T], and the shape rule ----

TEST_CASE("lstm refuses a length outside [0, T], naming the row and the value", "[padding]") {
    const Sizes s{3, 4, 2, 3};
    const auto weights = lstm_weights(s, 91);
    Graph g(builtin_ops());
    std::vector<ValueRef> in{g.input("x", {DType::f32, {kAnyDim, s.T, s.E}})};
    for (const auto& name : kWeights) in.push_back(g.parameter(name, weights.at(name).type()));
    in.push_back(g.input("lengths", {DType::i64, {kAnyDim}}));
    g.add("enc", "lstm", in, {{"units", s.H}});
    Executor ex(g);
    for (const auto& name : kWeights) ex.set(name, weights.at(name).clone());
    ex.set("x", random_tensor({s.N, s.T, s.E}, 92));
    ex.set("lengths", int_tensor(DType::i64, {s.N}, {4, 5, 1}));
    CHECK_THROWS_WITH(ex.forward(), Contains("node 'enc' (lstm)") && Contains("lengths in [0, T=4]") && Contains("got 5 for row 1"));
    ex.set("lengths", int_tensor(DType::i64, {s.N}, {2, 3, -1}));
    CHECK_THROWS_WITH(ex.forward(), Contains("node 'enc' (lstm)") && Contains("got -1 for row 2"));
    ex.set("lengths", int_tensor(DType::i64, {s.N}, {4, 0, 1}));
    CHECK_NOTHROW(ex.forward());
}

TEST_CASE("lstm's shape rule for lengths", "[padding]") {
    const Sizes s{3, 4, 2, 3};
    const auto weights = lstm_weights(s, 93);
    Graph g(builtin_ops());
    std::vector<ValueRef> in{g.input("x", {DType::f32, {s.N, s.T, s.E}})};
    for (const auto& name : kWeights) in.push_back(g.parameter(name, weights.at(name).type()));
    const auto with = [&](const std::string& name, TensorType lengths) {
        auto inputs = in;
        inputs.push_back(g.input(name, std::move(lengths)));
        return g.add("lstm_" + name, "lstm", inputs, {{"units", s.H}});
    };
    CHECK_THROWS_WITH(with("float", {DType::f32, {3}}), Contains("lstm_float") && Contains("lengths (N) of i32 or i64"));
    CHECK_THROWS_WITH(with("batch", {DType::i64, {2}}), Contains("lstm_batch") && Contains("lengths (N) of i32 or i64 with the batch of x (3, 4, 2), got i64(2,)"));
    CHECK_THROWS_WITH(with("rank", {DType::i32, {3, 1}}), Contains("lstm_rank") && Contains("got i32(3, 1)"));
    CHECK(g.type(with("open", {DType::i32, {kAnyDim}})) == TensorType{DType::f32, {3, 3}});
}

// ---- (e) PyTorch's pack_padded_sequence ----

TEST_CASE("lstm with lengths matches nn.LSTM on pack_padded_sequence", "[padding][fixtures]") {
    const auto f = testing::load_fixture("lstm_packed");
    const Tensor& lengths = f.at("lengths");
    REQUIRE(lengths.dtype() == DType::i64);
    const std::map<std::string, Tensor> weights{{"weight_ih", f.at("weight_ih")}, {"weight_hh", f.at("weight_hh")}, {"bias", f.at("bias")}};
    const LstmRun run = run_lstm(f.at("x"), weights, &lengths, false, f.at("w_final"));
    check_close("h_final", run.y, f.at("h_final"), 1e-5);
    check_close("dx", run.grads.at("x"), f.at("dx"), 1e-5);
    for (const auto& name : kWeights) check_close("d" + name, run.grads.at(name), f.at("d" + name), 1e-5);
}
