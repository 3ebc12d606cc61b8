// Pair models joined by a distance (euclidean, manhattan) rather than a
// cosine: the roles found in the graph, the similarity (minus the distance)
// as the graph computes it, training, evaluate, and search by the metric,
// exact and approximate (tests/specs/text_distance.yaml).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/core/executor.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/text/vector_index.hpp"
#include "engine/train/pair_model.hpp"
#include "engine/train/siamese_task.hpp"
#include "engine/train/text_index.hpp"
#include "engine/train/trainer.hpp"
#include "graphrun/error.hpp"
#include "ops/builtin.hpp"
#include "ops/composites.hpp"
#include "tests/gradcheck.hpp"
#include "tests/scratch.hpp"

using namespace graphrun;
using graphrun::testing::random_tensor;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

const std::string kSpec = GRAPHRUN_SOURCE_DIR "/tests/specs/text_distance.yaml";

spec::Spec distance_spec(const std::string& op, std::vector<std::string> overrides = {}) {
    overrides.push_back("nodes.distance.op=" + op);
    return spec::load_spec_file(kSpec, overrides);
}

// Every row's distance to q in double, best (nearest) first; ties by row.
std::vector<std::pair<double, std::int64_t>> brute_force(const std::vector<float>& rows, std::int64_t d, const float* q, text::Metric metric) {
    std::vector<std::pair<double, std::int64_t>> all;
    for (std::int64_t r = 0; r < static_cast<std::int64_t>(rows.size()) / d; ++r) {
        double sum = 0;
        for (std::int64_t k = 0; k < d; ++k) {
            const double diff = static_cast<double>(q[k]) - rows[static_cast<std::size_t>(r * d + k)];
            sum += metric.kind == text::MetricKind::euclidean ? (diff + metric.eps) * (diff + metric.eps) : std::fabs(diff);
        }
        all.push_back({metric.kind == text::MetricKind::euclidean ? std::sqrt(sum) : sum, r});
    }
    std::sort(all.begin(), all.end());
    return all;
}

}  // namespace

TEST_CASE("find_roles: one cosine, euclidean or manhattan node joins the branches; none or two is an error naming them", "[distance]") {
    for (const std::string op : {"euclidean", "manhattan"}) {
        const auto spec = distance_spec(op);
        const auto built = build_graph(spec, builtin_ops());
        const train::SiameseRoles roles = train::find_roles(built.graph);
        CHECK(roles.metric.name() == op);
        CHECK(roles.metric.is_distance());
        CHECK(built.graph.node(roles.join.node).name == "distance");
        CHECK(built.graph.node(roles.left_embedding.node).name == "left_dense");
        CHECK(built.graph.node(roles.right_embedding.node).name == "right_dense");
        CHECK(roles.metric.eps == (op == "euclidean" ? 1e-6 : 0.0));
        CHECK(roles.similarity(0.25f) == -0.25f);
    }
    const auto wide = distance_spec("euclidean", {"nodes.distance.eps=0.001"});
    CHECK(train::find_roles(build_graph(wide, builtin_ops()).graph).metric.eps == 1e-3);

    // A cosine beside the distance: two joining nodes.
    std::ifstream in(kSpec);
    std::string yaml{std::istreambuf_iterator<char>(in), {}};
    const std::string join = "  - {name: distance, op: euclidean, inputs: [left_dense, right_dense]}\n";
    REQUIRE(yaml.find(join) != std::string::npos);
    std::string two = yaml;
    two.insert(two.find(join), "  - {name: similarity, op: cosine, inputs: [left_dense, right_dense]}\n");
    const auto both = spec::load_spec_string(two, "two");
    CHECK_THROWS_WITH(train::find_roles(build_graph(both, builtin_ops()).graph),
                      Contains("expects one node joining the two branches") && Contains("the graph has 2: 'distance' (euclidean), 'similarity' (cosine)"));
    // None: the loss on a hand-made distance.
    std::string none = yaml;
    none.replace(none.find(join), join.size(),
                 "  - {name: difference, op: sub, inputs: [left_dense, right_dense]}\n"
                 "  - {name: squares, op: square, inputs: [difference]}\n"
                 "  - {name: distance, op: sum_last, inputs: [squares]}\n");
    const auto hand = spec::load_spec_string(none, "none");
    CHECK_THROWS_WITH(train::find_roles(build_graph(hand, builtin_ops()).graph),
                      Contains("a cosine, euclidean or manhattan node") && Contains("the graph has none"));
}

TEST_CASE("Metric::similarity is what the graph's cosine, euclidean and manhattan nodes compute", "[distance]") {
    const std::int64_t n = 6, d = 40;
    Tensor a = random_tensor({n, d}, 3), b = random_tensor({n, d}, 4);
    for (std::int64_t k = 0; k < d; ++k) b.f32()[k] = a.f32()[k];  // row 0: identical rows, where eps matters
    for (const std::string kind : {"cosine", "euclidean", "manhattan"}) {
        Graph g(builtin_ops());
        const ValueRef x = g.parameter("a", {DType::f32, {n, d}}), y = g.parameter("b", {DType::f32, {n, d}});
        const ValueRef out = kind == "cosine"      ? g.add("c", "cosine", {x, y}, {{"eps", 1e-8}})
                             : kind == "euclidean" ? euclidean_distance(g, "e", x, y, 1e-6)
                                                   : manhattan_distance(g, "m", x, y);
        Executor ex(g);
        ex.set("a", a.clone());
        ex.set("b", b.clone());
        ex.forward();
        const text::Metric metric{*text::metric_kind(kind), kind == "cosine" ? 1e-8 : kind == "euclidean" ? 1e-6 : 0.0};
        for (std::int64_t r = 0; r < n; ++r) {
            const float graph = ex.value(out).f32()[r], ours = metric.similarity(a.f32() + r * d, b.f32() + r * d, d);
            INFO(kind << " row " << r);
            CHECK(ours == Approx(metric.is_distance() ? -graph : graph).epsilon(1e-6).margin(1e-9));
        }
    }
}

TEST_CASE("a euclidean or manhattan model trains, evaluates and scores by minus its distance", "[distance][train]") {
    for (const std::string op : {"euclidean", "manhattan"}) {
        const fs::path dir = test::scratch_folder("distance", op);
        const auto spec = distance_spec(op, {"train.epochs=3"});
        train::TrainOptions options;
        options.out_dir = (dir / "run").string();
        const auto history = train::train(spec, build_graph(spec, builtin_ops()), options);
        const auto figure = [&](const std::string& name) {
            for (const auto& m : history.back().metrics)
                if (m.name == name) return *m.value;
            FAIL("no " << name);
            return 0.0;
        };
        INFO(op);
        // Similarities are minus distances: never positive; similar pairs nearer.
        CHECK(figure("pos_sim") <= 0);
        CHECK(figure("neg_sim") < figure("pos_sim"));
        CHECK(figure("val_auc") > 0.75);

        const auto model = train::PairModel::load_run((dir / "run").string());
        CHECK(model.metric().name() == op);
        REQUIRE(model.threshold().has_value());
        CHECK(*model.threshold() < 0);  // on minus the distance
        const auto test = train::read_text_pairs(GRAPHRUN_SOURCE_DIR "/tests/specs/text_data/test.tsv");
        const auto e = train::evaluate_pairs(model, test, 1000, 7);
        const auto d = model.dimension();
        const auto left = model.embed(train::Side::left, test.left), right = model.embed(train::Side::right, test.right);
        const auto distance = [&](std::size_t i, std::size_t j) {
            return brute_force(std::vector<float>(right.begin() + static_cast<std::ptrdiff_t>(j * d), right.begin() + static_cast<std::ptrdiff_t>((j + 1) * d)),
                               d, left.data() + i * d, model.metric())
                .front()
                .first;
        };
        for (std::size_t i = 0; i < test.label.size(); ++i) CHECK(e.similarity[i] == Approx(-distance(i, i)).epsilon(1e-5));
        CHECK(*e.auc > 0.75);
        // Recall@10 by counting: the partner among the 10 nearest right texts.
        int hits = 0;
        for (std::size_t i = 0; i < 80; ++i) {
            int nearer = 0;
            for (std::size_t j = 0; j < 80; ++j) nearer += j != i && model.similarity(left.data() + i * d, right.data() + j * d) >= e.similarity[i];
            hits += nearer < 10;
        }
        CHECK(*e.recall_at_10 == Approx(hits / 80.0).margin(1e-12));
        fs::remove_all(dir);
    }
}

TEST_CASE("exact search by a distance is brute force; HNSW by the euclidean distance finds 95% of its 10 nearest; manhattan has no HNSW",
          "[distance][index]") {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    const std::int64_t n = 5000;
#else
    const std::int64_t n = 50000;
#endif
    const std::int64_t d = 32, queries = 100, k = 10;
    std::mt19937 rng(12);
    std::normal_distribution<float> normal;
    std::vector<float> rows(static_cast<std::size_t>(n * d)), query(static_cast<std::size_t>(queries * d));
    for (float& v : rows) v = normal(rng);
    for (float& v : query) v = normal(rng);
    for (const text::Metric metric : {text::Metric{text::MetricKind::euclidean, 1e-6}, text::Metric{text::MetricKind::manhattan, 0}}) {
        const bool euclidean = metric.kind == text::MetricKind::euclidean;
        const text::VectorIndex exact(rows, d, false, {}, metric);
        CHECK(exact.rows() == rows);  // kept as embedded, not scaled to unit length
        for (std::int64_t q = 0; q < 5; ++q) {
            const auto truth = brute_force(rows, d, query.data() + q * d, metric);
            const auto found = exact.search(query.data() + q * d, k);
            REQUIRE(found.size() == static_cast<std::size_t>(k));
            for (std::size_t i = 0; i < found.size(); ++i) {
                CHECK(found[i].row == truth[i].second);
                CHECK(-found[i].similarity == Approx(truth[i].first).epsilon(1e-5));
            }
        }
        if (!euclidean) {
            CHECK_THROWS_WITH(text::VectorIndex(rows, d, true, {}, metric), Contains("manhattan") && Contains("no L1"));
            continue;
        }
        const text::VectorIndex hnsw(rows, d, true, {}, metric);
        double hits = 0;
        for (std::int64_t q = 0; q < queries; ++q) {
            const auto approx = hnsw.search(query.data() + q * d, k), truth = hnsw.search_exact(query.data() + q * d, k);
            REQUIRE(approx.size() == static_cast<std::size_t>(k));
            for (std::size_t i = 1; i < approx.size(); ++i) CHECK(approx[i - 1].similarity >= approx[i].similarity);
            for (const auto& a : approx) {
                // Each hit's distance is the one exact search computes for its row.
                const float own = metric.similarity(query.data() + q * d, rows.data() + a.row * d, d);
                CHECK(a.similarity == own);
                hits += std::any_of(truth.begin(), truth.end(), [&](const text::Neighbour& t) { return t.row == a.row; });
            }
        }
        const double recall = hits / static_cast<double>(queries * k);
        INFO("recall@10 of HNSW (L2) against exact euclidean search on " << n << " vectors: " << recall);
        CHECK(recall >= 0.95);
        const fs::path dir = test::scratch_folder("distance", "hnsw");
        const auto [bytes, hash] = hnsw.save(dir.string());
        const auto loaded = text::VectorIndex::load(dir.string(), true, hnsw.hnsw(), bytes, hash, metric);
        const auto a = hnsw.search(query.data(), k), b = loaded.search(query.data(), k);
        for (std::size_t i = 0; i < a.size(); ++i) CHECK((a[i].row == b[i].row && a[i].similarity == b[i].similarity));
        fs::remove_all(dir);
    }
}

TEST_CASE("an index records its model's metric: searched by it, refused for a model of another, format 1 still loads as cosine", "[distance][index]") {
    const fs::path dir = test::scratch_folder("distance", "text_index");
    const auto spec = distance_spec("euclidean", {"train.epochs=1"});
    train::TrainOptions options;
    options.out_dir = (dir / "run").string();
    train::train(spec, build_graph(spec, builtin_ops()), options);
    const auto corpus = train::read_text_pairs(GRAPHRUN_SOURCE_DIR "/tests/specs/text_data/test.tsv").right;
    {
        const auto model = train::PairModel::load_run((dir / "run").string());
        train::TextIndex::build(model, (dir / "run").string(), corpus, (dir / "index").string(), std::nullopt);
        train::TextIndex::build(model, (dir / "run").string(), corpus, (dir / "hnsw").string(), true);
    }
    const auto index = train::TextIndex::load((dir / "index").string()), hnsw = train::TextIndex::load((dir / "hnsw").string());
    CHECK(!index.approximate());
    CHECK(hnsw.approximate());
    const auto& model = index.model();
    const auto right = model.embed(train::Side::right, corpus), query = model.embed(train::Side::left, {"json parser"});
    const auto truth = brute_force(right, model.dimension(), query.data(), model.metric());
    const auto exact = index.search("json parser", 5), approx = hnsw.search("json parser", 5);
    REQUIRE(exact.size() == 5);
    for (std::size_t i = 0; i < 5; ++i) {
        CHECK(exact[i].line == truth[i].second + 1);
        CHECK(-exact[i].similarity == Approx(truth[i].first).epsilon(1e-5));
        CHECK(approx[i].line == exact[i].line);  // 80 vectors: HNSW visits all
        CHECK(approx[i].similarity == exact[i].similarity);
    }
    std::ifstream in(dir / "index" / "index.json");
    std::string manifest{std::istreambuf_iterator<char>(in), {}};
    in.close();
    CHECK_THAT(manifest, Contains("\"format\": \"graphrun-index 2\"") && Contains("\"metric\": \"euclidean\""));
    // An index of another metric than the model's.
    std::string other = manifest;
    other.replace(other.find("\"metric\": \"euclidean\""), 21, "\"metric\": \"manhattan\"");
    std::ofstream(dir / "index" / "index.json") << other;
    CHECK_THROWS_WITH(train::TextIndex::load((dir / "index").string()),
                      Contains("built for a model whose similarity is manhattan") && Contains("uses euclidean"));
    // Format 1 knew cosine alone: a euclidean model's index of format 1 is refused by name, not misread.
    other = manifest;
    other.replace(other.find("graphrun-index 2"), 16, "graphrun-index 1");
    std::ofstream(dir / "index" / "index.json") << other;
    CHECK_THROWS_WITH(train::TextIndex::load((dir / "index").string()), Contains("similarity is cosine") && Contains("uses euclidean"));

    // A cosine index written as format 1 (no metric, no eps) loads and searches as before.
    const auto cosine = spec::load_spec_file(GRAPHRUN_SOURCE_DIR "/tests/specs/text_pairs.yaml", {"train.epochs=1"});
    options.out_dir = (dir / "cosine").string();
    train::train(cosine, build_graph(cosine, builtin_ops()), options);
    train::TextIndex::build(train::PairModel::load_run((dir / "cosine").string()), (dir / "cosine").string(), corpus, (dir / "cosine_index").string(),
                            std::nullopt);
    const auto now = train::TextIndex::load((dir / "cosine_index").string()).search("json parser", 5);
    nlohmann::json old = nlohmann::json::parse(std::ifstream(dir / "cosine_index" / "index.json"));
    CHECK(old.at("metric") == "cosine");
    old["format"] = "graphrun-index 1";
    old.erase("metric");
    old.erase("eps");
    std::ofstream(dir / "cosine_index" / "index.json") << old.dump(2);
    const auto then = train::TextIndex::load((dir / "cosine_index").string()).search("json parser", 5);
    REQUIRE(then.size() == now.size());
    for (std::size_t i = 0; i < now.size(); ++i) CHECK((then[i].line == now[i].line && then[i].similarity == now[i].similarity));
    fs::remove_all(dir);
}
