// Ranking objectives (issue 17): cosine_matrix, transpose, batch_index and
// triplet against finite differences and PyTorch (tests/fixtures/ranking.json,
// made by make_ranking_fixtures.py); in_batch_softmax and triplet_loss as
// composites; batches without repeated texts; training on similar pairs alone.
#include <filesystem>
#include <fstream>
#include <set>

#include <catch2/catch.hpp>

#include "engine/core/executor.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/data.hpp"
#include "engine/train/trainer.hpp"
#include "ops/builtin.hpp"
#include "ops/composites.hpp"
#include "tests/fixtures.hpp"
#include "tests/gradcheck.hpp"
#include "tests/scratch.hpp"

using namespace graphrun;
using Catch::Matchers::Contains;
using testing::check_close;
using testing::check_op_gradients;
using testing::load_fixture;
using testing::random_tensor;
namespace fs = std::filesystem;

namespace {

constexpr double kRel = 1e-5;

// A graph whose leaves a and b are parameters holding the fixture's values.
struct Pair {
    std::map<std::string, Tensor> f = load_fixture("ranking");
    Graph graph{builtin_ops()};
    ValueRef a = graph.parameter("a", f.at("a").type());
    ValueRef b = graph.parameter("b", f.at("b").type());
    void feed(Executor& ex) const {
        ex.set("a", f.at("a").clone());
        ex.set("b", f.at("b").clone());
    }
};

}  // namespace

TEST_CASE("cosine_matrix matches normalize(a) @ normalize(b).T, values and gradients", "[ranking][fixtures]") {
    Pair p;
    const ValueRef s = p.graph.add("s", "cosine_matrix", {p.a, p.b});
    Executor ex(p.graph);
    p.feed(ex);
    ex.forward();
    check_close("scores", ex.value(s), p.f.at("scores"), kRel);
    ex.backward({{s, p.f.at("w").clone()}});
    check_close("da", ex.grad("a"), p.f.at("da_scores"), kRel);
    check_close("db", ex.grad("b"), p.f.at("db_scores"), kRel);
}

TEST_CASE("in_batch_softmax matches MultipleNegativesRankingLoss, one-way and symmetric", "[ranking][fixtures]") {
    for (const bool symmetric : {false, true}) {
        const std::string name = symmetric ? "in_batch_symmetric" : "in_batch";
        INFO(name);
        Pair p;
        const ValueRef loss = in_batch_softmax(p.graph, "loss", p.a, p.b, 0.05, symmetric);
        Executor ex(p.graph);
        p.feed(ex);
        ex.forward();
        check_close("loss", ex.value(loss), p.f.at(name + "_loss"), kRel);
        ex.backward(loss);
        check_close("da", ex.grad("a"), p.f.at("da_" + name), kRel);
        check_close("db", ex.grad("b"), p.f.at("db_" + name), kRel);
    }
}

TEST_CASE("triplet_loss matches PyTorch with hardest and semi-hard negatives", "[ranking][fixtures]") {
    // The fixture's pairs meet every case: a hardest negative more similar than
    // the positive, a semi-hard one that differs from it, and a pair (5) that
    // every negative beats, where semi-hard takes the least similar one.
    for (const std::string mining : {"hardest", "semi_hard"}) {
        INFO(mining);
        Pair p;
        const ValueRef loss = triplet_loss(p.graph, "loss", p.a, p.b, 0.2, mining);
        Executor ex(p.graph);
        p.feed(ex);
        ex.forward();
        check_close("loss", ex.value(loss), p.f.at("triplet_" + mining + "_loss"), kRel);
        ex.backward(loss);
        check_close("da", ex.grad("a"), p.f.at("da_triplet_" + mining), kRel);
        check_close("db", ex.grad("b"), p.f.at("db_triplet_" + mining), kRel);
    }
    // The two minings choose differently here, so the comparison above tells them apart.
    Pair p;
    CHECK(p.f.at("triplet_hardest_loss").f32()[0] != p.f.at("triplet_semi_hard_loss").f32()[0]);
}

TEST_CASE("cosine_matrix, transpose and triplet pass gradcheck", "[ranking][gradcheck]") {
    int checked = 0;
    checked += check_op_gradients("cosine_matrix", {random_tensor({3, 4}, 1), random_tensor({5, 4}, 2)});
    checked += check_op_gradients("cosine_matrix", {random_tensor({1, 7}, 3), random_tensor({1, 7}, 4)});
    checked += check_op_gradients("transpose", {random_tensor({3, 5}, 5)});
    // Scores spread out so that no finite-difference step crosses a choice or the hinge's kink.
    for (const std::string mining : {"hardest", "semi_hard"}) {
        Tensor scores({5, 5});
        for (std::int64_t k = 0; k < 25; ++k) scores.f32()[k] = static_cast<float>(((k * 7) % 25) - 12) / 13.0f;
        checked += check_op_gradients("triplet", {scores}, {{"margin", 0.5}, {"mining", mining}});
    }
    CHECK(checked > 0);
}

TEST_CASE("cosine_matrix: a zero row scores 0 with finite gradients; shapes it refuses", "[ranking]") {
    Graph g(builtin_ops());
    const ValueRef a = g.parameter("a", {DType::f32, {2, 3}});
    const ValueRef b = g.parameter("b", {DType::f32, {2, 3}});
    const ValueRef s = g.add("s", "cosine_matrix", {a, b});
    Executor ex(g);
    Tensor av = random_tensor({2, 3}, 7);
    for (int k = 0; k < 3; ++k) av.f32()[k] = 0;
    ex.set("a", av);
    ex.set("b", random_tensor({2, 3}, 8));
    ex.forward();
    CHECK(ex.value(s).f32()[0] == 0.0f);
    CHECK(ex.value(s).f32()[1] == 0.0f);
    ex.backward({{s, random_tensor({2, 2}, 9)}});
    for (float v : ex.grad("a").floats()) CHECK(std::isfinite(v));

    Graph bad(builtin_ops());
    const ValueRef x = bad.parameter("x", {DType::f32, {2, 3}});
    const ValueRef y = bad.parameter("y", {DType::f32, {2, 4}});
    CHECK_THROWS_WITH(bad.add("s", "cosine_matrix", {x, y}), Contains("same D") && Contains("(2, 3)") && Contains("(2, 4)"));
    CHECK_THROWS_WITH(bad.add("t", "triplet", {bad.parameter("z", {DType::f32, {2, 3}})}), Contains("square"));
}

TEST_CASE("batch_index gives each row its position", "[ranking]") {
    Graph g(builtin_ops());
    const ValueRef x = g.input("x", {DType::f32, {kAnyDim, 3}});
    const ValueRef i = g.add("i", "batch_index", {x});
    REQUIRE(g.type(i).dtype == DType::i64);
    Executor ex(g);
    ex.set("x", random_tensor({4, 3}, 1));
    ex.forward();
    for (std::int64_t n = 0; n < 4; ++n) CHECK(ex.value(i).i64()[n] == n);
}

TEST_CASE("batches for in-batch negatives hold no text twice", "[ranking][train]") {
    // 40 similar pairs; right texts repeat (pair k's right text is text k % 10)
    // and one left text is shared by three pairs; 2 dissimilar pairs are skipped.
    train::PairSet pairs;
    pairs.left_length = 2;
    pairs.right_length = 2;
    for (int k = 0; k < 42; ++k) {
        const int left = k == 1 || k == 2 ? 0 : k;
        pairs.left.insert(pairs.left.end(), {left + 1, 7});
        pairs.right.insert(pairs.right.end(), {k % 10 + 1, 0});
        pairs.label.push_back(k < 40 ? 1.0f : 0.0f);
    }
    std::mt19937_64 rng(3);
    const auto epoch = train::plan_batch_negatives_epoch(pairs, 8, true, rng);
    std::set<std::int64_t> seen;
    for (std::size_t first = 0; first < epoch.samples.size(); first += 8) {
        std::set<std::int32_t> lefts, rights;
        for (std::size_t k = first; k < std::min(first + 8, epoch.samples.size()); ++k) {
            const auto& s = epoch.samples[k];
            CHECK(s.left_row == s.right_row);
            CHECK(s.label == 1.0f);
            CHECK(s.left_row < 40);
            CHECK(lefts.insert(pairs.left[static_cast<std::size_t>(s.left_row) * 2]).second);
            CHECK(rights.insert(pairs.right[static_cast<std::size_t>(s.right_row) * 2]).second);
            CHECK(seen.insert(s.left_row).second);
        }
    }
    // Ten right texts fit ten pairs into a batch of 8 at most once each: every
    // pair is placed or counted as left out, and only the last batch is short.
    CHECK(static_cast<std::int64_t>(seen.size()) + epoch.left_out == 40);
    CHECK((epoch.samples.size() % 8 != 0 || epoch.left_out == 0));
    // The same seed plans the same epoch.
    std::mt19937_64 again(3);
    const auto repeat = train::plan_batch_negatives_epoch(pairs, 8, true, again);
    REQUIRE(repeat.samples.size() == epoch.samples.size());
    for (std::size_t k = 0; k < epoch.samples.size(); ++k) CHECK(repeat.samples[k].left_row == epoch.samples[k].left_row);
}

TEST_CASE("in-batch training needs no sampled negatives, refuses them, and learns", "[ranking][train]") {
    const auto load = [](const std::vector<std::string>& overrides) {
        return spec::load_spec_file(GRAPHRUN_SOURCE_DIR "/tests/specs/small_in_batch.yaml", overrides);
    };
    const fs::path dir = test::scratch_folder("ranking", "in_batch");
    train::TrainOptions options;
    options.out_dir = (dir / "a").string();
    const auto spec = load({});
    const auto built = build_graph(spec, builtin_ops());
    // Positive pairs only and no train.negatives: the guard lets it through,
    // because the batch's other pairs are the negatives.
    const auto history = train::train(spec, built, options);
    REQUIRE(history.size() == 3);
    CHECK_FALSE(history.back().val_loss.has_value());  // the loss of mixed validation pairs means nothing
    REQUIRE(history.back().metric("val_auc").has_value());
    CHECK(*history.back().metric("val_auc") > 0.8);
    CHECK(history.back().train_loss < history.front().train_loss);
    // Sampled negatives would be ranked as similar pairs: refused, where they were set.
    const auto with_negatives = load({"train.negatives=1"});
    const auto built_again = build_graph(with_negatives, builtin_ops());
    options.out_dir = (dir / "b").string();
    CHECK_THROWS_WITH(train::train(with_negatives, built_again, options),
                      Contains("train.negatives is 1") && Contains("in_batch_softmax") && Contains("from the batch"));
    // val_loss cannot pick the best checkpoint.
    const auto select_loss = load({"train.select=val_loss"});
    const auto built_third = build_graph(select_loss, builtin_ops());
    options.out_dir = (dir / "c").string();
    CHECK_THROWS_WITH(train::train(select_loss, built_third, options), Contains("no figure 'val_loss'"));
    fs::remove_all(dir);
}
