// The compiled plan (engine/core/plan.hpp), the two executors, results that do
// not depend on the thread count, and the trainer's tasks.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <unistd.h>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "engine/core/dnnl_context.hpp"
#include "engine/core/executor.hpp"
#include "engine/io/npy.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/initializer.hpp"
#include "engine/train/task.hpp"
#include "engine/train/trainer.hpp"
#include "graphrun/thread_budget.hpp"
#include "ops/builtin.hpp"
#include "tests/fixtures.hpp"
#include "tests/scratch.hpp"

using namespace graphrun;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) { return test::scratch_folder("plan", name); }

spec::Spec small_spec(const std::vector<std::string>& overrides = {}) {
    return spec::load_spec_file(GRAPHRUN_SOURCE_DIR "/tests/specs/small_siamese.yaml", overrides);
}

// One batch of the small model's data, as the siamese task makes it.
train::Batch first_batch(const spec::Spec& spec, const BuiltGraph& built, std::int64_t rows) {
    train::TrainOptions options;
    const auto task = train::make_task(spec, built, options, std::nullopt);
    task->plan_epoch(1);
    train::Batch batch = train::Batch::for_inputs(built.graph, rows);
    task->fill_training(0, batch);
    return batch;
}

bool same_bits(const Tensor& a, const Tensor& b) { return a.type() == b.type() && std::memcmp(a.raw(), b.raw(), a.bytes()) == 0; }

}  // namespace

TEST_CASE("an inference plan shares memory between values whose readers are done, and computes the same values", "[plan]") {
    const auto spec = small_spec();
    const auto built = build_graph(spec, builtin_ops());
    const Graph& g = built.graph;
    Executor ex(g);
    initialize_parameters(ex, spec.train.seed);
    first_batch(spec, built, 32).feed(ex);
    const ValueRef similarity{g.index_of("similarity"), 0};
    ex.forward(Executor::Mode::training);
    const Tensor expected = ex.value(similarity).clone();
    CHECK(ex.plan().value_bytes() == ex.plan().unshared_bytes() - ex.plan().gradient_bytes());  // training keeps every value

    ex.forward({similarity}, Executor::Mode::inference);
    const Plan& plan = ex.plan();
    CHECK(plan.mode == RunMode::inference);
    CHECK(plan.value_bytes() < plan.unshared_bytes());  // some buffers share a slot
    CHECK(plan.slot_bytes.size() < plan.buffers.size());
    // The same values, to rounding: graphrun's LSTM projects x per chunk of rows packed by
    // step in training and per ring of steps in inference, so oneDNN's GEMM sees each row
    // at another place in another M (the same bits here today, which nothing promises).
    testing::check_close("similarity, inference against training", ex.value(similarity), expected, 1e-6);
    // A value whose memory went to another is not readable.
    CHECK_THROWS_WITH(ex.value(ValueRef{g.index_of("left_embedding"), 0}), Contains("was not kept"));
    // Two buffers in one slot: the later one's producer depends (through the
    // graph, so under any executor) on the earlier one's producer and every
    // reader, which is what makes sharing safe when tasks run at once.
    const std::size_t count = g.nodes().size();
    std::vector<std::vector<char>> reaches(count, std::vector<char>(count, 0));  // reaches[a][b]: b depends on a
    for (std::size_t b = 0; b < count; ++b)
        for (const ValueRef& in : g.node(static_cast<int>(b)).inputs) {
            reaches[static_cast<std::size_t>(in.node)][b] = 1;
            for (std::size_t a = 0; a < count; ++a)
                if (reaches[a][static_cast<std::size_t>(in.node)]) reaches[a][b] = 1;
        }
    int shared = 0;
    for (const auto& early : plan.buffers)
        for (const auto& late : plan.buffers) {
            if (&early == &late || early.slot != late.slot || early.first > late.first) continue;
            ++shared;
            const auto producer = static_cast<std::size_t>(early.value.node), next = static_cast<std::size_t>(late.value.node);
            CHECK(reaches[producer][next]);
            for (std::size_t r = 0; r < count; ++r)
                for (const ValueRef& in : g.node(static_cast<int>(r)).inputs)
                    if (in.node == early.value.node && plan.runs[r]) CHECK(reaches[r][next]);
        }
    CHECK(shared > 0);
    // The waves: a node's wave comes after the wave of every node it reads.
    std::vector<int> wave_of(count, -1);
    for (std::size_t w = 0; w < plan.waves.size(); ++w)
        for (int n : plan.waves[w]) wave_of[static_cast<std::size_t>(n)] = static_cast<int>(w);
    for (int n : plan.order)
        for (const ValueRef& in : g.node(n).inputs)
            if (g.node(in).op) CHECK(wave_of[static_cast<std::size_t>(in.node)] < wave_of[static_cast<std::size_t>(n)]);
}

TEST_CASE("plans are kept by shape and mode: after an epoch with a short last batch and a validation pass, no step creates a primitive", "[plan]") {
    // 2010 pairs, 20% held out: 1608 training pairs and as many negatives, so
    // the last batch of an epoch has 16 rows; validation's last batch has 4.
    const auto spec = small_spec({"data.synthetic.samples=2010", "train.epochs=3"});
    const auto built = build_graph(spec, builtin_ops());
    const fs::path dir = scratch("primitives");
    std::vector<std::int64_t> created;
    train::TrainOptions options;
    options.out_dir = dir.string();
    const std::int64_t before = primitives_created();
    options.on_epoch = [&](const train::EpochMetrics&) { created.push_back(primitives_created()); };
    train::train(spec, built, options);
    REQUIRE(created.size() == 3);
    CHECK(created[0] > before);         // the first epoch creates the plans' primitives
    CHECK(created[1] == created[0]);    // the second creates none
    CHECK(created[2] == created[1]);
    fs::remove_all(dir);
}

TEST_CASE("a training step gives the same bits with either executor and any thread count", "[plan][scheduler]") {
    const auto spec = small_spec();
    const auto built = build_graph(spec, builtin_ops());
    const Graph& g = built.graph;
    // 48 rows: the lstm cuts the batch into 3 parts, whatever the threads.
    const train::Batch batch = first_batch(spec, built, 48);
    const auto gradients = [&](Executor::Schedule schedule, int threads) {
        const ThreadBudget budget(threads);
        Executor ex(g, schedule);
        initialize_parameters(ex, spec.train.seed);
        batch.feed(ex);
        ex.forward();
        ex.backward(built.loss);
        std::vector<Tensor> out{ex.value(built.loss).clone()};
        for (int p : g.parameters()) out.push_back(ex.grad(p).clone());
        return out;
    };
    const auto reference = gradients(Executor::Schedule::sequential, 1);
    for (const auto& [schedule, threads] : {std::pair{Executor::Schedule::tasks, 1}, {Executor::Schedule::tasks, 2}, {Executor::Schedule::tasks, 4},
                                            {Executor::Schedule::sequential, 2}}) {
        INFO(fmt::format("{} with {} threads", schedule == Executor::Schedule::tasks ? "tasks" : "sequential", threads));
        const auto got = gradients(schedule, threads);
        REQUIRE(got.size() == reference.size());
        for (std::size_t k = 0; k < got.size(); ++k) CHECK(same_bits(got[k], reference[k]));
    }
}

TEST_CASE("train.max_steps stops with a checkpoint that --resume continues to the run's end", "[train]") {
    const fs::path dir = scratch("max_steps");
    const auto run = [&](const fs::path& out, std::vector<std::string> overrides, bool resume) {
        const auto spec = small_spec(overrides);
        const auto built = build_graph(spec, builtin_ops());
        train::TrainOptions options;
        options.out_dir = out.string();
        options.resume = resume;
        return train::train(spec, built, options);
    };
    // 7 steps: inside the first epoch (100 steps).
    CHECK(run(dir / "a", {"train.max_steps=7", "train.epochs=2"}, false).empty());
    const io::Checkpoint stopped = io::read_safetensors((dir / "a" / "checkpoint.safetensors").string());
    CHECK(stopped.metadata.at("optimizer_steps") == "7");
    CHECK(stopped.metadata.at("step") == "7");
    run(dir / "a", {"train.epochs=2"}, true);
    run(dir / "b", {"train.epochs=2"}, false);
    std::ifstream a(dir / "a" / "checkpoint.safetensors", std::ios::binary), b(dir / "b" / "checkpoint.safetensors", std::ios::binary);
    const std::string bytes_a((std::istreambuf_iterator<char>(a)), {}), bytes_b((std::istreambuf_iterator<char>(b)), {});
    CHECK(bytes_a == bytes_b);
    fs::remove_all(dir);
}

TEST_CASE("train.select picks best.safetensors; an unknown figure is an error naming the task's", "[train]") {
    const fs::path dir = scratch("select");
    const auto spec = small_spec({"train.select=val_loss"});
    const auto built = build_graph(spec, builtin_ops());
    train::TrainOptions options;
    options.out_dir = dir.string();
    const auto history = train::train(spec, built, options);
    std::size_t best_epoch = 0;
    for (std::size_t e = 1; e < history.size(); ++e)
        if (*history[e].val_loss < *history[best_epoch].val_loss) best_epoch = e;
    const io::Checkpoint best = io::read_safetensors((dir / "best.safetensors").string());
    CHECK(best.metadata.at("epoch") == std::to_string(best_epoch + 1));
    CHECK(best.metadata.at("select") == "val_loss");

    const auto bad = small_spec({"train.select=accuracy"});
    CHECK_THROWS_WITH(train::train(bad, build_graph(bad, builtin_ops()), options),
                      Contains("train.select") && Contains("no figure 'accuracy'") && Contains("val_auc"));
    fs::remove_all(dir);
}

namespace {
// Two "languages": texts of a few words from disjoint alphabets, with noise words shared by both.
void write_two_languages(const fs::path& path, int rows, unsigned seed) {
    std::ofstream out(path);
    std::mt19937 rng(seed);
    const char* words[2][4] = {{"abba", "baba", "aab", "bab"}, {"xyz", "zyx", "yyz", "zzx"}};
    for (int r = 0; r < rows; ++r) {
        const int lang = static_cast<int>(rng() % 2);
        std::string text;
        for (int w = 0; w < 3; ++w) text += std::string(w ? " " : "") + (rng() % 4 == 0 ? "the" : words[lang][rng() % 4]);
        out << text << '\t' << (lang ? "xy" : "ab") << '\n';
    }
}

std::string classify_yaml(const fs::path& dir) {
    return fmt::format(R"(
inputs:
  - {{name: text, shape: [16], dtype: int32}}
  - {{name: language, shape: [], dtype: int64}}
nodes:
  - {{name: embedding, op: embedding, inputs: [text], vocab: 257, dim: 8}}
  - {{name: lstm, op: lstm, inputs: [embedding], units: 8, biases: 2}}
  - {{name: logits, op: dense, inputs: [lstm], units: 2}}
  - {{name: probabilities, op: softmax, inputs: [logits]}}
  - {{name: loss, op: cross_entropy, inputs: [logits, language]}}
outputs: [logits, probabilities]
loss: loss
task: classify
data:
  train: {0}/train.tsv
  validation: {0}/validation.tsv
  test: {0}/test.tsv
  inputs:
    text: {{column: 0, tokens: bytes}}
    language: {{column: 1, classes: [ab, xy]}}
train: {{epochs: 3, batch_size: 16, seed: 1, optimizer: {{type: adam, lr: 0.01}}}}
)",
                       dir.string());
}
}  // namespace

TEST_CASE("task classify trains on TSV columns and reports accuracy and macro F1", "[train][classify]") {
    const fs::path dir = scratch("classify");
    write_two_languages(dir / "train.tsv", 400, 1);
    write_two_languages(dir / "validation.tsv", 100, 2);
    write_two_languages(dir / "test.tsv", 100, 3);
    const auto spec = spec::load_spec_string(classify_yaml(dir), "classify");
    const auto built = build_graph(spec, builtin_ops());
    train::TrainOptions options;
    options.out_dir = (dir / "run").string();
    const auto history = train::train(spec, built, options);
    REQUIRE(history.size() == 3);
    REQUIRE(history.back().metrics.size() == 2);
    CHECK(history.back().metrics[0].name == "val_accuracy");
    CHECK(*history.back().metric("val_accuracy") > 0.95);
    CHECK(*history.back().metric("val_macro_f1") > 0.95);
    CHECK(*history.back().val_loss < *history.front().val_loss);
    CHECK(fs::exists(dir / "run" / "best.safetensors"));  // by val_accuracy, the task's first figure
    // The held-out split: the same model measured on test.tsv.
    const train::EpochMetrics test = train::evaluate(spec, built, (dir / "run" / "checkpoint.safetensors").string(), "");
    CHECK(*test.metric("val_accuracy") > 0.95);

    // Bad data: a label outside the classes, too few columns, each with file:line.
    std::ofstream(dir / "bad.tsv") << "abba baba\tab\nxyz zyx\tfr\n";
    CHECK_THROWS_WITH(train::evaluate(spec, built, (dir / "run" / "checkpoint.safetensors").string(), (dir / "bad.tsv").string()),
                      Contains("bad.tsv:2") && Contains("'fr'") && Contains("[ab, xy]"));
    std::ofstream(dir / "short.tsv") << "abba baba\n";
    CHECK_THROWS_WITH(train::evaluate(spec, built, (dir / "run" / "checkpoint.safetensors").string(), (dir / "short.tsv").string()),
                      Contains("short.tsv:1") && Contains("at least 2"));
    // The task must fit the graph: classify needs a cross_entropy loss; siamese does not read data.inputs.
    auto wrong = spec::load_spec_string(classify_yaml(dir), "classify", {"task=siamese"});
    CHECK_THROWS_WITH(train::train(wrong, build_graph(wrong, builtin_ops()), options), Contains("siamese"));
    fs::remove_all(dir);
}

TEST_CASE("task classify reads .npy sources, splitting validation off by train.validation", "[train][classify]") {
    const fs::path dir = scratch("classify_npy");
    // Features whose first coordinate's sign is the class.
    const std::int64_t rows = 200;
    Tensor x(Shape{rows, 3}), labels(TensorType{DType::i64, {rows}});
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1, 1);
    for (std::int64_t r = 0; r < rows; ++r) {
        for (int k = 0; k < 3; ++k) x.f32()[r * 3 + k] = u(rng);
        labels.i64()[r] = x.f32()[r * 3] > 0 ? 1 : 0;
    }
    io::write_npy((dir / "x.npy").string(), x);
    io::write_npy((dir / "y.npy").string(), labels);
    const std::string yaml = fmt::format(R"(
inputs:
  - {{name: x, shape: [3], dtype: float32}}
  - {{name: y, shape: [], dtype: int32}}
nodes:
  - {{name: logits, op: dense, inputs: [x], units: 2}}
  - {{name: loss, op: cross_entropy, inputs: [logits, y]}}
loss: loss
task: classify
data:
  inputs:
    x: {{npy: {0}/x.npy}}
    y: {{npy: {0}/y.npy}}
train: {{epochs: 20, batch_size: 20, seed: 1, validation: 0.25, optimizer: {{type: adam, lr: 0.05}}}}
)",
                                         dir.string());
    const auto spec = spec::load_spec_string(yaml, "npy");
    const auto built = build_graph(spec, builtin_ops());
    train::TrainOptions options;
    options.out_dir = (dir / "run").string();
    int validated = 0;
    options.on_epoch = [&](const train::EpochMetrics&) { ++validated; };
    const auto history = train::train(spec, built, options);
    CHECK(validated == 20);
    CHECK(*history.back().metric("val_accuracy") > 0.9);
    // 150 training rows an epoch: 8 steps of 20 rows.
    const io::Checkpoint ckpt = io::read_safetensors((dir / "run" / "checkpoint.safetensors").string());
    CHECK(ckpt.metadata.at("optimizer_steps") == std::to_string(20 * 8));
    // A validation file beside an .npy source is refused: its rows could not hold the .npy inputs.
    std::string with_validation = yaml;
    with_validation.insert(with_validation.find("data:\n") + 6, "  validation: v.tsv\n");
    CHECK_THROWS_WITH(spec::load_spec_string(with_validation, "npy"), Contains("an .npy source has no validation"));
    fs::remove_all(dir);
}

TEST_CASE("task classify generates inputs: data.samples rows, each input and split its own draw, bounds from the graph", "[train][classify]") {
    const std::string yaml = R"(
inputs:
  - {name: ids, shape: [12], dtype: int32}
  - {name: features, shape: [4], dtype: float32}
  - {name: label, shape: [], dtype: int64}
nodes:
  - {name: embedding, op: embedding, inputs: [ids], vocab: 50, dim: 4}
  - {name: lstm, op: lstm, inputs: [embedding], units: 4}
  - {name: from_text, op: dense, inputs: [lstm], units: 3}
  - {name: from_features, op: dense, inputs: [features], units: 3}
  - {name: logits, op: add, inputs: [from_text, from_features]}
  - {name: loss, op: cross_entropy, inputs: [logits, label]}
loss: loss
task: classify
data:
  samples: 300
  inputs:
    ids: {generate: integers}
    features: {generate: normal}
    label: {generate: integers, seed: 5}
train: {epochs: 1, batch_size: 32, seed: 1, validation: 0.2}
)";
    const auto spec = spec::load_spec_string(yaml, "generated");
    const auto built = build_graph(spec, builtin_ops());
    const auto all_rows = [&](const spec::Spec& s) {
        const auto b = build_graph(s, builtin_ops());
        const auto task = train::make_task(s, b, train::TrainOptions{}, std::nullopt);
        REQUIRE(task->plan_epoch(1) == 240);  // 300 rows, a 0.2 validation share held out
        CHECK(task->validation_size() == 60);
        train::Batch batch = train::Batch::for_inputs(b.graph, 240);
        task->fill_training(0, batch);
        return batch;
    };
    const train::Batch batch = all_rows(spec);
    const Tensor& ids = batch.of(built.graph.index_of("ids"));
    const Tensor& features = batch.of(built.graph.index_of("features"));
    const Tensor& label = batch.of(built.graph.index_of("label"));
    // Ids an embedding reads: 1..vocab-1 (0 is padding), every one of them drawn.
    std::set<std::int32_t> seen_ids(ids.i32(), ids.i32() + ids.numel());
    CHECK(*seen_ids.begin() == 1);
    CHECK(*seen_ids.rbegin() == 49);
    CHECK(seen_ids.size() == 49);
    // Labels: 0..classes-1, from the logits' width.
    std::set<std::int64_t> seen_labels(label.i64(), label.i64() + label.numel());
    CHECK(seen_labels == std::set<std::int64_t>{0, 1, 2});
    // Features: standard normal (960 draws: mean within 0.1, deviation within 0.1 of 1).
    double sum = 0, squares = 0;
    for (float v : features.floats()) sum += v, squares += static_cast<double>(v) * v;
    const double mean = sum / static_cast<double>(features.numel());
    CHECK(std::abs(mean) < 0.1);
    CHECK(std::abs(std::sqrt(squares / static_cast<double>(features.numel()) - mean * mean) - 1.0) < 0.1);
    // The same spec draws the same rows; another seed draws others, for that input only.
    const train::Batch again = all_rows(spec);
    for (std::size_t k = 0; k < batch.tensors.size(); ++k) CHECK(same_bits(batch.tensors[k], again.tensors[k]));
    const train::Batch reseeded = all_rows(spec::load_spec_string(yaml, "generated", {"data.inputs.ids.seed=2"}));
    CHECK_FALSE(same_bits(ids, reseeded.of(built.graph.index_of("ids"))));
    CHECK(same_bits(features, reseeded.of(built.graph.index_of("features"))));

    // It trains, and evaluate measures a fresh draw of data.samples rows.
    const fs::path dir = scratch("generated");
    train::TrainOptions options;
    options.out_dir = (dir / "run").string();
    const auto history = train::train(spec, built, options);
    REQUIRE(history.size() == 1);
    CHECK(history.back().metric("val_accuracy").has_value());
    const train::EpochMetrics test = train::evaluate(spec, built, (dir / "run" / "checkpoint.safetensors").string(), "");
    REQUIRE(test.metric("val_accuracy").has_value());
    CHECK_THROWS_WITH(train::evaluate(spec, built, (dir / "run" / "checkpoint.safetensors").string(), (dir / "x.tsv").string()),
                      Contains("every input of the spec is generated"));
    fs::remove_all(dir);

    // Bounds that do not fit the graph, and sources that cannot be generated, name what is wrong.
    const auto train_with = [&](const std::vector<std::string>& overrides) {
        const auto s = spec::load_spec_string(yaml, "generated", overrides);
        return train::make_task(s, build_graph(s, builtin_ops()), train::TrainOptions{}, std::nullopt);
    };
    CHECK_THROWS_WITH(train_with({"data.inputs.ids.high=60"}), Contains("data.inputs.ids") && Contains("[1, 60)") && Contains("vocab 50"));
    CHECK_THROWS_WITH(train_with({"data.inputs.label.high=4"}), Contains("data.inputs.label") && Contains("3 classes"));
    CHECK_THROWS_WITH(train_with({"data.inputs.ids.generate=normal"}), Contains("draws float32 values") && Contains("i32"));
    std::string gaussian = yaml;
    gaussian.replace(gaussian.find("{generate: integers}"), 20, "{generate: gaussian}");
    CHECK_THROWS_WITH(spec::load_spec_string(gaussian, "generated"),
                      Contains("<string>:18:21:") && Contains("must be one of integers, uniform, normal, got 'gaussian'"));
    CHECK_THROWS_WITH(spec::load_spec_string(yaml, "generated", {"data.inputs.features.low=0"}), Contains("generate: normal takes mean and std"));
    CHECK_THROWS_WITH(spec::load_spec_string(yaml, "generated", {"data.inputs.ids.low=9", "data.inputs.ids.high=9"}),
                      Contains("low must be below high"));
    std::string no_samples = yaml;
    no_samples.erase(no_samples.find("  samples: 300\n"), 15);
    CHECK_THROWS_WITH(spec::load_spec_string(no_samples, "generated"), Contains("data needs `samples`"));
}

TEST_CASE("a generated source beside TSV columns draws as many rows as each split's file", "[train][classify]") {
    const fs::path dir = scratch("generated_tsv");
    write_two_languages(dir / "train.tsv", 120, 1);
    write_two_languages(dir / "validation.tsv", 30, 2);
    write_two_languages(dir / "test.tsv", 30, 3);
    std::string yaml = classify_yaml(dir);
    const std::string labels = "language: {column: 1, classes: [ab, xy]}";
    yaml.replace(yaml.find(labels), labels.size(), "language: {generate: integers}");  // random labels, 0 or 1
    const auto spec = spec::load_spec_string(yaml, "mixed");
    const auto built = build_graph(spec, builtin_ops());
    const auto task = train::make_task(spec, built, train::TrainOptions{}, std::nullopt);
    CHECK(task->plan_epoch(1) == 120);
    CHECK(task->validation_size() == 30);
    train::Batch batch = train::Batch::for_inputs(built.graph, 120);
    task->fill_training(0, batch);
    const Tensor& label = batch.of(built.graph.index_of("language"));
    std::set<std::int64_t> seen(label.i64(), label.i64() + label.numel());
    CHECK(seen == std::set<std::int64_t>{0, 1});
    // data.samples is for specs whose every input is generated.
    yaml.insert(yaml.find("data:\n") + 6, "  samples: 10\n");
    CHECK_THROWS_WITH(spec::load_spec_string(yaml, "mixed"), Contains("data.samples sets the rows only when every input is generated"));
    fs::remove_all(dir);
}

TEST_CASE("every op writes all of its output: plans whose buffers start as NaN give the same bits", "[plan]") {
    // A reused buffer holds an earlier value's bytes; an op that left part of
    // its output unwritten would read them. Poisoned buffers make that show.
    const fs::path dir = scratch("poison");
    const auto spec = small_spec();
    const auto built = build_graph(spec, builtin_ops());
    const Graph& g = built.graph;
    const train::Batch batch = first_batch(spec, built, 20);
    const ValueRef similarity{g.index_of("similarity"), 0};
    const auto run = [&](bool poison) {
        Executor::poison_new_buffers = poison;
        Executor ex(g);
        initialize_parameters(ex, spec.train.seed);
        batch.feed(ex);
        ex.forward();
        ex.backward(built.loss);
        std::vector<Tensor> out{ex.value(built.loss).clone()};
        for (int p : g.parameters()) out.push_back(ex.grad(p).clone());
        for (int pass = 0; pass < 2; ++pass) {  // the second pass reads buffers the first left behind
            ex.forward({similarity, built.loss}, Executor::Mode::inference);
            out.push_back(ex.value(similarity).clone());
            out.push_back(ex.value(built.loss).clone());
        }
        Executor::poison_new_buffers = false;
        return out;
    };
    const auto clean = run(false), poisoned = run(true);
    REQUIRE(clean.size() == poisoned.size());
    for (std::size_t k = 0; k < clean.size(); ++k) CHECK(same_bits(clean[k], poisoned[k]));

    // The same for the classifier's ops (softmax, cross_entropy, an lstm with two biases).
    write_two_languages(dir / "train.tsv", 40, 1);
    write_two_languages(dir / "validation.tsv", 20, 2);
    write_two_languages(dir / "test.tsv", 20, 3);
    const auto cspec = spec::load_spec_string(classify_yaml(dir), "classify");
    const auto cbuilt = build_graph(cspec, builtin_ops());
    train::TrainOptions options;
    auto task = train::make_task(cspec, cbuilt, options, std::nullopt);
    task->plan_epoch(1);
    train::Batch cbatch = train::Batch::for_inputs(cbuilt.graph, 12);
    task->fill_training(0, cbatch);
    const auto classify_run = [&](bool poison) {
        Executor::poison_new_buffers = poison;
        Executor ex(cbuilt.graph);
        initialize_parameters(ex, cspec.train.seed);
        cbatch.feed(ex);
        ex.forward();
        ex.backward(cbuilt.loss);
        std::vector<Tensor> out{ex.value(cbuilt.loss).clone()};
        for (int p : cbuilt.graph.parameters()) out.push_back(ex.grad(p).clone());
        ex.forward({ValueRef{cbuilt.graph.index_of("probabilities"), 0}}, Executor::Mode::inference);
        out.push_back(ex.value(ValueRef{cbuilt.graph.index_of("probabilities"), 0}).clone());
        Executor::poison_new_buffers = false;
        return out;
    };
    const auto c_clean = classify_run(false), c_poisoned = classify_run(true);
    for (std::size_t k = 0; k < c_clean.size(); ++k) CHECK(same_bits(c_clean[k], c_poisoned[k]));
    fs::remove_all(dir);
}
