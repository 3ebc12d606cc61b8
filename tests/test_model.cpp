// The library API (engine/api/model.hpp): load, run, save and load again,
// concurrent inference, borrowed input memory, training steps, a whole run.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include <unistd.h>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "graphrun/model.hpp"
#include "engine/core/graph.hpp"
#include "engine/train/optimizer.hpp"
#include "engine/train/trainer.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "ops/builtin.hpp"
#include "tests/scratch.hpp"

using namespace graphrun;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {
const std::string kSmall = GRAPHRUN_SOURCE_DIR "/tests/specs/small_siamese.yaml";

std::map<std::string, Tensor> random_batch(std::int64_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> id(1, 39), label(0, 1);
    Tensor x1({n, 6}, DType::i32), x2({n, 8}, DType::i64), y(Shape{n});
    for (std::int64_t j = 0; j < x1.numel(); ++j) x1.i32()[j] = id(rng);
    for (std::int64_t j = 0; j < x2.numel(); ++j) x2.i64()[j] = id(rng);
    for (std::int64_t j = 0; j < n; ++j) y.f32()[j] = static_cast<float>(label(rng));
    return {{"x1", x1}, {"x2", x2}, {"y", y}};
}

bool same_bits(const Tensor& a, const Tensor& b) { return a.type() == b.type() && std::memcmp(a.raw(), b.raw(), a.bytes()) == 0; }

fs::path scratch(const std::string& name) { return test::scratch_folder("model", name); }
}  // namespace

TEST_CASE("a model from a spec lists, runs, saves and loads its parameters", "[model]") {
    Model model = Model::from_file(kSmall);
    const auto params = model.parameters();
    REQUIRE(params.size() == 12);
    CHECK(params[0].name == "left_embedding.weight");
    CHECK(params[0].shape == Shape{64, 8});
    CHECK(model.parameter("left_lstm.weight_ih").shape() == Shape{48, 8});
    CHECK(!version().empty());

    const auto batch = random_batch(5, 1);
    const auto out = model.run(batch, {"similarity", "left_dense"});
    CHECK(out.at("similarity").shape() == Shape{5});
    CHECK(out.at("left_dense").shape() == Shape{5, 16});
    // One branch alone needs only its input.
    const auto left = model.run({{"x1", batch.at("x1")}}, {"left_dense"});
    CHECK(same_bits(left.at("left_dense"), out.at("left_dense")));

    const fs::path dir = scratch("save");
    model.save((dir / "weights.safetensors").string());
    Model other = Model::from_file(kSmall);
    other.initialize(99);
    CHECK_FALSE(same_bits(other.run(batch, {"similarity"}).at("similarity"), out.at("similarity")));
    other.load((dir / "weights.safetensors").string());
    CHECK(same_bits(other.run(batch, {"similarity"}).at("similarity"), out.at("similarity")));
    fs::remove_all(dir);
}

TEST_CASE("inputs may borrow the caller's memory", "[model]") {
    Model model = Model::from_file(kSmall);
    std::vector<std::int32_t> ids(3 * 6, 7);
    const Tensor borrowed = Tensor::borrow(ids.data(), {DType::i32, {3, 6}});
    const auto a = model.run({{"x1", borrowed}}, {"left_dense"}).at("left_dense");
    ids.assign(ids.size(), 9);  // the next call sees the new values: nothing was copied
    const auto b = model.run({{"x1", borrowed}}, {"left_dense"}).at("left_dense");
    CHECK_FALSE(same_bits(a, b));
    Tensor owned({3, 6}, DType::i32);
    for (auto& v : std::span(owned.i32(), 18)) v = 9;
    CHECK(same_bits(model.run({{"x1", owned}}, {"left_dense"}).at("left_dense"), b));
}

TEST_CASE("inference from several threads at once gives the single-threaded results", "[model]") {
    Model model = Model::from_file(kSmall);
    model.initialize(4);
    constexpr int kThreads = 8, kCalls = 8;  // 8 at once: more than the cores, so calls interleave
    std::vector<std::map<std::string, Tensor>> batches;
    std::vector<Tensor> expected;
    for (int k = 0; k < kThreads * kCalls; ++k) {
        batches.push_back(random_batch(1 + k % 7, static_cast<std::uint32_t>(k)));
        expected.push_back(model.run(batches.back(), {"similarity"}).at("similarity"));
    }
    std::vector<int> mismatches(kThreads, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&, t] {
            for (int c = 0; c < kCalls; ++c) {
                const int k = t * kCalls + c;
                if (!same_bits(model.run(batches[static_cast<std::size_t>(k)], {"similarity"}).at("similarity"), expected[static_cast<std::size_t>(k)]))
                    ++mismatches[static_cast<std::size_t>(t)];
            }
        });
    for (auto& th : threads) th.join();
    for (int m : mismatches) CHECK(m == 0);
}

TEST_CASE("train_step lowers the loss; fit runs the spec and keeps the trained weights", "[model]") {
    Model model = Model::from_file(kSmall);
    const auto batch = random_batch(16, 3);
    const float first = model.train_step(batch);  // the spec's optimizer: Adam, lr 0.01
    float last = first;
    for (int step = 0; step < 30; ++step) last = model.train_step(batch);
    CHECK(last < 0.5f * first);
    // With an optimizer of the caller's: the same arithmetic as the model's own.
    Model a = Model::from_file(kSmall), b = Model::from_file(kSmall);
    Adam adam({.lr = 1e-2});
    for (int step = 0; step < 3; ++step) CHECK(a.train_step(batch) == b.train_step(batch, adam));
    CHECK(same_bits(a.parameter("left_lstm.weight_ih"), b.parameter("left_lstm.weight_ih")));

    const fs::path dir = scratch("fit");
    train::TrainOptions options;
    options.out_dir = dir.string();
    int epochs_seen = 0;
    options.on_epoch = [&](const train::EpochMetrics&) { ++epochs_seen; };
    const auto history = model.fit(options);
    CHECK(history.size() == 3);
    CHECK(epochs_seen == 3);
    // The model now holds what the run's checkpoint holds.
    Model from_checkpoint = Model::from_file(kSmall);
    from_checkpoint.load((dir / "checkpoint.safetensors").string());
    CHECK(same_bits(model.parameter("right_lstm.weight_hh"), from_checkpoint.parameter("right_lstm.weight_hh")));
    fs::remove_all(dir);
}

namespace {
std::string file_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
}  // namespace

TEST_CASE("fit starts from the model's weights: a new model trains as graphrun train, a loaded one continues", "[model]") {
    const std::vector<std::string> one_epoch{"train.epochs=1"};
    const fs::path dir = scratch("continue");
    train::TrainOptions options;

    // A new model from a spec holds train.seed's initialization, so fit = the trainer's run, byte for byte.
    Model fresh = Model::from_file(kSmall, one_epoch);
    options.out_dir = (dir / "fit").string();
    const auto first = fresh.fit(options);
    const spec::Spec spec = spec::load_spec_file(kSmall, one_epoch);
    const BuiltGraph built = build_graph(spec, builtin_ops());
    options.out_dir = (dir / "trainer").string();
    train::train(spec, built, options);
    CHECK(file_bytes(dir / "fit" / "checkpoint.safetensors") == file_bytes(dir / "trainer" / "checkpoint.safetensors"));

    // load() then fit(): the second epoch starts where the first ended, so it
    // begins at a lower loss than any run from the initialization.
    Model loaded = Model::from_file(kSmall, one_epoch);
    loaded.load((dir / "fit" / "checkpoint.safetensors").string());
    CHECK(same_bits(loaded.parameter("left_lstm.weight_ih"), fresh.parameter("left_lstm.weight_ih")));
    options.out_dir = (dir / "continued").string();
    const auto second = loaded.fit(options);
    REQUIRE(first.size() == 1);
    REQUIRE(second.size() == 1);
    CHECK(second[0].train_loss < first[0].train_loss);
    CHECK_FALSE(same_bits(loaded.parameter("left_lstm.weight_ih"), fresh.parameter("left_lstm.weight_ih")));
    // ... and it is exactly a fit from those weights given as init_checkpoint.
    Model again = Model::from_file(kSmall, one_epoch);
    options.out_dir = (dir / "init").string();
    options.init_checkpoint = (dir / "fit" / "checkpoint.safetensors").string();
    again.fit(options);
    CHECK(same_bits(loaded.parameter("right_dense.weight"), again.parameter("right_dense.weight")));
    fs::remove_all(dir);
}

TEST_CASE("a model lists its inputs and outputs with names, types and shapes", "[model]") {
    const Model model = Model::from_file(kSmall);
    const auto inputs = model.inputs();
    REQUIRE(inputs.size() == 3);
    CHECK(inputs[0].name == "x1");
    CHECK(inputs[0].dtype == DType::i32);
    CHECK(inputs[0].shape == Shape{kAnyDim, 6});
    CHECK(inputs[1].dtype == DType::i64);
    CHECK(inputs[2].shape == Shape{kAnyDim});
    const auto outputs = model.outputs();
    REQUIRE(outputs.size() == 3);
    CHECK(outputs[0].name == "left_dense");
    CHECK(outputs[0].shape == Shape{kAnyDim, 16});
    CHECK(outputs[2].name == "similarity");
    CHECK(outputs[2].dtype == DType::f32);

    Graph g(builtin_ops());
    const ValueRef x = g.input("x", {DType::f32, {kAnyDim, 2}});
    g.add("hidden", "relu", {x});
    g.add("out", "relu", {ValueRef{g.index_of("hidden"), 0}});
    const Model built(std::move(g));
    REQUIRE(built.outputs().size() == 1);
    CHECK(built.outputs()[0].name == "out");  // a C++ graph: the nodes nobody reads
}

TEST_CASE("the API's errors are graphrun::Error with the message the CLI prints", "[model]") {
    Model model = Model::from_file(kSmall);
    CHECK_THROWS_AS(model.run({{"x3", Tensor(Shape{1, 6})}}, {"similarity"}), Error);
    CHECK_THROWS_WITH(model.run({{"x3", Tensor(Shape{1, 6})}}, {"similarity"}), Contains("no input 'x3'") && Contains("x1, x2, y"));
    CHECK_THROWS_WITH(model.run({}, {"nothing"}), Contains("no node 'nothing'"));
    CHECK_THROWS_WITH(model.run({{"x1", Tensor({1, 7}, DType::i32)}}, {"left_dense"}), Contains("x1") && Contains("(N, 6)"));
    CHECK_THROWS_WITH(model.parameter("left_lstm"), Contains("no parameter 'left_lstm'"));
    CHECK_THROWS_WITH(model.load("/nonexistent/weights.safetensors"), Contains("/nonexistent/weights.safetensors"));
    CHECK_THROWS_WITH(Model::from_string("nodes: [", "broken"), Contains(":1:1: not valid YAML"));
    Graph g(builtin_ops());
    g.add("out", "relu", {g.input("x", {DType::f32, {kAnyDim, 2}})});
    Model built(std::move(g));
    Adam adam;
    CHECK_THROWS_WITH(built.train_step({}, adam), Contains("needs a loss"));
    CHECK_THROWS_WITH(built.fit({}), Contains("needs a model loaded from a spec"));
    CHECK(std::is_base_of_v<Error, train::TrainingFailure>);
}
