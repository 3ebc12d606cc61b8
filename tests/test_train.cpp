// Training: data sources, negatives, the validation split, metrics, the
// collapse guard, checkpoints, resuming and repeatability.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>

#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <fmt/format.h>

#include "engine/io/npy.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/spec/builder.hpp"
#include "engine/train/data.hpp"
#include "engine/train/step.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/metrics.hpp"
#include "engine/train/trainer.hpp"
#include "ops/builtin.hpp"
#include "tests/scratch.hpp"

using namespace graphrun;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {
fs::path scratch(const std::string& name) { return test::scratch_folder("train", name); }

using test::read_file;

// A small Siamese model on short sequences, so a run takes well under a second.
spec::Spec small_spec(const std::vector<std::string>& overrides = {}) {
    return spec::load_spec_file(GRAPHRUN_SOURCE_DIR "/tests/specs/small_siamese.yaml", overrides);
}

train::PairShape small_shape() { return {"x1", "x2", 6, 8, 40, 40}; }
}  // namespace

TEST_CASE("ROC AUC and embedding spread", "[train]") {
    const std::vector<float> label{1, 1, 0, 0};
    CHECK(*train::roc_auc(std::vector<float>{0.9f, 0.8f, 0.1f, 0.2f}, label) == 1.0);
    CHECK(*train::roc_auc(std::vector<float>{0.1f, 0.2f, 0.9f, 0.8f}, label) == 0.0);
    CHECK(*train::roc_auc(std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f}, label) == 0.5);  // ties count half
    CHECK(*train::roc_auc(std::vector<float>{0.9f, 0.3f, 0.5f, 0.1f}, label) == 0.75);
    CHECK_FALSE(train::roc_auc(std::vector<float>{0.9f, 0.3f}, std::vector<float>{1, 1}).has_value());
    const float same[] = {1, 2, 2, 4, 0.5f, 1};        // three rows along one direction
    CHECK(*train::embedding_spread(same, 3, 2) == Approx(1.0));
    const float opposite[] = {1, 0, -1, 0};
    CHECK(*train::embedding_spread(opposite, 2, 2) == Approx(-1.0));
    const float orthogonal[] = {1, 0, 0, 3};
    CHECK(*train::embedding_spread(orthogonal, 2, 2) == Approx(0.0).margin(1e-12));
    // A distance model's: one direction with different lengths is not a collapse, one point is.
    using train::SpreadOf;
    const float along[] = {1, 2, 2, 4};  // inner product 10, mean squared norm (5 + 20) / 2
    CHECK(*train::embedding_spread(along, 2, 2, SpreadOf::points) == Approx(10.0 / 12.5));
    const float one_point[] = {0.3f, -2, 0.3f, -2, 0.3f, -2};
    CHECK(*train::embedding_spread(one_point, 3, 2, SpreadOf::points) == Approx(1.0));
    CHECK(*train::embedding_spread(opposite, 2, 2, SpreadOf::points) == Approx(-1.0));
    CHECK(*train::embedding_spread(orthogonal, 2, 2, SpreadOf::points) == Approx(0.0).margin(1e-12));
    const float origin[] = {0, 0, 0, 0};
    CHECK(*train::embedding_spread(origin, 2, 2, SpreadOf::points) == 1.0);
    CHECK_FALSE(train::embedding_spread(origin, 2, 2).has_value());  // no directions
}

TEST_CASE("synthetic pairs are positive, padded after the text, with class structure", "[train]") {
    const spec::SyntheticData config{.samples = 200, .classes = 4, .signal = 0.8, .min_length = 0.5, .seed = 9};
    const train::PairSet p = train::make_synthetic(config, small_shape());
    REQUIRE(p.count() == 200);
    for (float y : p.label) CHECK(y == 1.0f);
    for (std::int64_t r = 0; r < p.count(); ++r) {
        bool padding = false;
        for (std::int64_t t = 0; t < 6; ++t) {
            const auto id = p.left[static_cast<std::size_t>(r * 6 + t)];
            CHECK((id >= 0 && id < 40));
            if (id == 0) padding = true;
            else CHECK_FALSE(padding);  // no real token after padding
        }
        CHECK(p.left[static_cast<std::size_t>(r * 6)] != 0);  // at least min_length real tokens
    }
    const auto stats = train::length_stats(p.left, 6);
    CHECK(stats.min >= 3);
    CHECK(stats.max == 6);
    CHECK(stats.padding_share > 0.0);
    // Same seed, same pairs.
    CHECK(train::make_synthetic(config, small_shape()).left == p.left);
}

TEST_CASE("negatives pair each sample with another, fresh each epoch", "[train]") {
    const train::PairSet p = train::make_synthetic({.samples = 50, .seed = 1}, small_shape());
    std::mt19937_64 rng(1);
    const auto epoch1 = train::plan_epoch(p, 2, true, rng);
    const auto epoch2 = train::plan_epoch(p, 2, true, rng);
    REQUIRE(epoch1.size() == 150);
    int positives = 0;
    for (const auto& s : epoch1) {
        if (s.label == 1.0f) {
            ++positives;
            CHECK(s.left_row == s.right_row);
        } else {
            CHECK(s.left_row != s.right_row);
        }
    }
    CHECK(positives == 50);
    bool differ = false;
    for (std::size_t k = 0; k < epoch1.size(); ++k) differ = differ || epoch1[k].right_row != epoch2[k].right_row;
    CHECK(differ);
    std::mt19937_64 rng0(1);
    const auto given = train::plan_epoch(p, 0, false, rng0);
    REQUIRE(given.size() == 50);
    CHECK(given[7].left_row == 7);
}

TEST_CASE("the validation split is held out", "[train]") {
    train::PairSet p = train::make_synthetic({.samples = 100, .seed = 2}, small_shape());
    const auto split = train::split_validation(p, 0.1, 4);
    CHECK(split.validation.count() == 10);
    CHECK(split.train.count() == 90);
    CHECK(split.train.left.size() == 90 * 6);
}

TEST_CASE("text pairs: bytes as ids, and clear errors", "[train]") {
    const fs::path dir = scratch("text");
    train::PairShape shape{"x1", "x2", 4, 4, 257, 257};
    const auto load_text_pairs = [](const std::string& path, const train::PairShape& s) {
        spec::DataSpec data;
        data.kind = spec::DataSpec::Kind::text;
        data.text.path = path;
        return train::load_pairs(data, s);
    };
    std::ofstream(dir / "ok.tsv") << "ab\tabcdef\t1\nz\ty\t0\n";
    const auto p = load_text_pairs((dir / "ok.tsv").string(), shape);
    REQUIRE(p.count() == 2);
    CHECK(p.left[0] == 'a' + 1);
    CHECK(p.left[2] == 0);               // padded after the text
    CHECK(p.right[3] == 'd' + 1);        // cut to the input length
    CHECK(p.label[1] == 0.0f);
    std::ofstream(dir / "notab.tsv") << "ab\tcd\nno tab here\n";
    CHECK_THROWS_WITH(load_text_pairs((dir / "notab.tsv").string(), shape), Contains("notab.tsv:2: expected two texts separated by a tab"));
    std::ofstream(dir / "utf8.tsv") << "ok\tok\nbad \xff byte\tx\n";
    CHECK_THROWS_WITH(load_text_pairs((dir / "utf8.tsv").string(), shape), Contains("utf8.tsv:2: the line is not valid UTF-8"));
    std::ofstream(dir / "empty.tsv") << "";
    CHECK_THROWS_WITH(load_text_pairs((dir / "empty.tsv").string(), shape), Contains("holds no pairs"));
    std::ofstream(dir / "label.tsv") << "a\tb\tmaybe\n";
    CHECK_THROWS_WITH(load_text_pairs((dir / "label.tsv").string(), shape), Contains("must be 0 or 1"));
    train::PairShape small_vocab{"x1", "x2", 4, 4, 100, 257};
    CHECK_THROWS_WITH(load_text_pairs((dir / "ok.tsv").string(), small_vocab), Contains("bytes tokenizer's vocab is 257") && Contains("vocab 100 and 257"));
    fs::remove_all(dir);
}

TEST_CASE("positive-only data without negatives is stopped by the guard", "[train]") {
    const auto spec = small_spec({"train.negatives=0"});
    const auto built = build_graph(spec, builtin_ops());
    const fs::path dir = scratch("guard");
    train::TrainOptions options;
    options.out_dir = dir.string();
    CHECK_THROWS_WITH(train::train(spec, built, options),
                      Contains("collapse") && Contains("Hadsell") && Contains("train.negatives: 1") && Contains("--allow-positive-only"));
    CHECK_FALSE(fs::exists(dir / "checkpoint.safetensors"));
    fs::remove_all(dir);
}

TEST_CASE("training separates the pairs, checkpoints, resumes and repeats bit for bit", "[train]") {
    const fs::path dir = scratch("run");
    auto run = [&](const fs::path& out, std::vector<std::string> overrides, bool resume) {
        const auto spec = small_spec(overrides);
        const auto built = build_graph(spec, builtin_ops());
        train::TrainOptions options;
        options.out_dir = out.string();
        options.resume = resume;
        return train::train(spec, built, options);
    };
    const auto history = run(dir / "a", {}, false);
    REQUIRE(history.size() == 3);
    REQUIRE(history.back().metric("val_auc").has_value());
    CHECK(*history.back().metric("val_auc") > 0.8);               // it learned
    CHECK(*history.back().metric("pos_sim") > *history.back().metric("neg_sim"));
    CHECK(history.back().train_loss < history.front().train_loss);
    // metrics.jsonl: one line an epoch with the documented keys.
    std::ifstream metrics(dir / "a" / "metrics.jsonl");
    int lines = 0;
    for (std::string line; std::getline(metrics, line); ++lines)
        for (const char* key : {"\"epoch\"", "\"train_loss\"", "\"val_loss\"", "\"val_auc\"", "\"pos_sim\"", "\"neg_sim\"", "\"spread\"", "\"samples_per_s\""})
            CHECK_THAT(line, Contains(key));
    CHECK(lines == 3);
    // The checkpoint: PyTorch names, optimizer state, where the run is.
    const auto ckpt = io::read_safetensors((dir / "a" / "checkpoint.safetensors").string());
    CHECK(ckpt.tensors.count("left_lstm.weight_ih"));
    CHECK(ckpt.tensors.at("left_lstm.weight_ih").shape() == Shape{48, 8});
    CHECK(ckpt.tensors.count("left_lstm.weight_ih.adam_m"));
    CHECK(ckpt.metadata.at("epoch") == "3");

    // Same seed, same threads: the same bytes.
    run(dir / "b", {}, false);
    CHECK(read_file(dir / "a" / "checkpoint.safetensors") == read_file(dir / "b" / "checkpoint.safetensors"));
    // Stopped after epoch 1, then resumed: the same weights as never stopping.
    run(dir / "c", {"train.epochs=1"}, false);
    const auto resumed = run(dir / "c", {}, true);
    CHECK(resumed.size() == 2);
    CHECK(read_file(dir / "a" / "checkpoint.safetensors") == read_file(dir / "c" / "checkpoint.safetensors"));
    // A different seed gives different weights (the comparison above can fail).
    run(dir / "d", {"train.seed=6"}, false);
    CHECK(read_file(dir / "a" / "checkpoint.safetensors") != read_file(dir / "d" / "checkpoint.safetensors"));
    fs::remove_all(dir);
}

TEST_CASE("a non-finite loss names the first node that produced it and keeps the last good checkpoint", "[train]") {
    const fs::path dir = scratch("nan");
    auto options_for = [&](const std::string& init) {
        train::TrainOptions options;
        options.out_dir = dir.string();
        options.init_checkpoint = init;
        return options;
    };
    const auto spec = small_spec({"train.epochs=1"});
    const auto built = build_graph(spec, builtin_ops());
    train::train(spec, built, options_for(""));
    const std::string good = read_file(dir / "checkpoint.safetensors");
    REQUIRE_FALSE(good.empty());

    // Start from those weights with one NaN in the right branch's dense layer.
    auto poisoned = io::read_safetensors((dir / "checkpoint.safetensors").string());
    Tensor& weight = poisoned.tensors.at("right_dense.weight");
    weight.f32()[3] = std::numeric_limits<float>::quiet_NaN();
    io::write_safetensors((dir / "poisoned.safetensors").string(), poisoned);

    const auto built_again = build_graph(spec, builtin_ops());
    CHECK_THROWS_AS(train::train(spec, built_again, options_for((dir / "poisoned.safetensors").string())), train::TrainingFailure);
    CHECK_THROWS_WITH(train::train(spec, built_again, options_for((dir / "poisoned.safetensors").string())),
                      Contains("epoch 1 step 1") && Contains("right_dense") && Contains("is kept"));
    CHECK(read_file(dir / "checkpoint.safetensors") == good);
    fs::remove_all(dir);
}

TEST_CASE("data.files: .npy pairs are read strictly, with clear errors", "[train]") {
    const fs::path dir = scratch("files");
    auto ids = [&](const std::string& name, Shape shape, DType dtype, std::int64_t value) {
        Tensor t(shape, dtype);
        for (std::int64_t j = 0; j < t.numel(); ++j) {
            if (dtype == DType::i32) t.i32()[j] = static_cast<std::int32_t>(value);
            else if (dtype == DType::i64) t.i64()[j] = value;
            else t.f32()[j] = static_cast<float>(value);
        }
        const std::string path = (dir / name).string();
        io::write_npy(path, t);
        return path;
    };
    const std::string left = ids("left.npy", {3, 6}, DType::i32, 5), right = ids("right.npy", {3, 8}, DType::i64, 7);
    auto files = [&](const std::string& l, const std::string& r, const std::string& labels = "") {
        spec::FileData f;
        f.inputs = {{"x1", l}, {"x2", r}};
        f.labels = labels;
        return f;
    };
    // Good files: int32 and int64 ids, float or int labels, or none (all similar).
    const auto p = train::load_npy_pairs(files(left, right, ids("labels.npy", {3}, DType::i64, 0)), small_shape());
    CHECK(p.count() == 3);
    CHECK(p.right[0] == 7);
    CHECK(p.label == std::vector<float>{0, 0, 0});
    CHECK(train::load_npy_pairs(files(left, right), small_shape()).label == std::vector<float>{1, 1, 1});

    using train::load_npy_pairs;
    CHECK_THROWS_WITH(load_npy_pairs(files(ids("float.npy", {3, 6}, DType::f32, 1), right), small_shape()),
                      Contains("float.npy") && Contains("expected int32 or int64 token ids, got float"));
    CHECK_THROWS_WITH(load_npy_pairs(files(ids("rank1.npy", {6}, DType::i32, 1), right), small_shape()),
                      Contains("rank1.npy") && Contains("expected token ids of shape (count, 6), got (6,)"));
    CHECK_THROWS_WITH(load_npy_pairs(files(ids("long.npy", {3, 7}, DType::i32, 1), right), small_shape()),
                      Contains("expected token ids of shape (count, 6), got (3, 7)"));
    CHECK_THROWS_WITH(load_npy_pairs(files(ids("two_rows.npy", {2, 6}, DType::i32, 1), right), small_shape()),
                      Contains("two_rows.npy has 2 rows but") && Contains("has 3"));
    CHECK_THROWS_WITH(load_npy_pairs(files(ids("big.npy", {3, 6}, DType::i64, 40), right), small_shape()),
                      Contains("big.npy") && Contains("outside the vocabulary [0, 40)") && Contains("id 40 at row 0, column 0"));
    CHECK_THROWS_WITH(load_npy_pairs(files(GRAPHRUN_SOURCE_DIR "/tests/io_data/f32_fortran_2x2.npy", right), small_shape()),
                      Contains("Fortran"));
    CHECK_THROWS_WITH(load_npy_pairs(files(left, right, ids("two_labels.npy", {2}, DType::f32, 1)), small_shape()),
                      Contains("expected labels of shape (3,), one per pair, got (2,)"));
    CHECK_THROWS_WITH(load_npy_pairs(files(left, right, ids("label_two.npy", {3}, DType::i32, 2)), small_shape()),
                      Contains("label 2 at row 0: labels must be 0 (dissimilar) or 1 (similar)"));
    CHECK_THROWS_WITH(load_npy_pairs(files(left, (dir / "missing.npy").string()), small_shape()), Contains("missing.npy"));
    fs::remove_all(dir);
}

TEST_CASE("a stop request checkpoints mid-epoch, and --resume ends with the weights of a run never stopped", "[train]") {
    const fs::path dir = scratch("stop");
    const auto spec = small_spec();
    const auto built = build_graph(spec, builtin_ops());
    train::TrainOptions plain;
    plain.out_dir = (dir / "whole").string();
    train::train(spec, built, plain);

    for (const auto& stop_at : std::vector<std::pair<int, std::int64_t>>{{2, 5}, {1, 1}, {2, 0}}) {
        const int stop_epoch = stop_at.first;  // plain names: lambdas below capture them
        const std::int64_t stop_step = stop_at.second;
        const fs::path out = dir / fmt::format("stopped_{}_{}", stop_epoch, stop_step);
        std::atomic<bool> stop{false};
        train::TrainOptions options;
        options.out_dir = out.string();
        options.stop = &stop;
        // Step 0 stands for "at the end of the epoch", after its checkpoint.
        options.on_step = [&](const train::Progress& p) {
            if (p.epoch == stop_epoch && p.step == stop_step) stop = true;
        };
        options.on_epoch = [&](const train::EpochMetrics& m) {
            if (m.epoch == stop_epoch && stop_step == 0) stop = true;
        };
        CHECK_THROWS_AS(train::train(spec, built, options), train::TrainingInterrupted);
        const auto ckpt = io::read_safetensors((out / "checkpoint.safetensors").string());
        CHECK(ckpt.metadata.at("epoch") == std::to_string(stop_step == 0 ? stop_epoch : stop_epoch - 1));
        CHECK(ckpt.metadata.count("step") == (stop_step == 0 ? 0u : 1u));

        train::TrainOptions resume;
        resume.out_dir = out.string();
        resume.resume = true;
        const auto rest = train::train(spec, built, resume);
        CHECK(read_file(out / "checkpoint.safetensors") == read_file(dir / "whole" / "checkpoint.safetensors"));
        // The stopped epoch's train_loss counts its steps from both processes.
        std::ifstream whole(dir / "whole" / "metrics.jsonl"), stopped(out / "metrics.jsonl");
        std::string a, b;
        for (int e = 1; e <= 3; ++e) {
            std::getline(whole, a);
            std::getline(stopped, b);
            auto ja = nlohmann::json::parse(a), jb = nlohmann::json::parse(b);
            ja.erase("samples_per_s");  // timing differs
            jb.erase("samples_per_s");
            CHECK(ja == jb);
        }
    }
    fs::remove_all(dir);
}

TEST_CASE("train.schedule sets each step's rate, metrics.jsonl records it, and a stopped run resumes it exactly", "[train]") {
    const fs::path dir = scratch("schedule");
    // small_siamese: 1600 training pairs and as many negatives, batch 32: 100 steps an epoch, 300 in the run; lr 0.01.
    const std::vector<std::string> cosine{"train.optimizer.type=adamw", "train.schedule.warmup=20", "train.schedule.decay=cosine",
                                          "train.schedule.min_lr=0.001"};
    const auto run = [&](const fs::path& out, const std::vector<std::string>& overrides, train::TrainOptions options = {}) {
        const auto spec = small_spec(overrides);
        const auto built = build_graph(spec, builtin_ops());
        options.out_dir = out.string();
        return train::train(spec, built, options);
    };
    const auto lrs = [](const fs::path& out) {
        std::vector<double> rates;
        std::ifstream metrics(out / "metrics.jsonl");
        for (std::string line; std::getline(metrics, line);) rates.push_back(nlohmann::json::parse(line).at("lr").get<double>());
        return rates;
    };
    const auto whole = run(dir / "whole", cosine);
    // Each epoch's line holds the rate of its last step s = 100 e - 1, computed here from the formula of docs/training.md.
    const auto expected = [](double s) { return 0.001 + (0.01 - 0.001) * 0.5 * (1 + std::cos(std::numbers::pi * (s - 20) / (300 - 20))); };
    REQUIRE(lrs(dir / "whole").size() == 3);
    for (int e = 1; e <= 3; ++e) {
        CHECK(lrs(dir / "whole")[static_cast<std::size_t>(e - 1)] == Approx(expected(100.0 * e - 1)).epsilon(1e-12));
        CHECK(whole[static_cast<std::size_t>(e - 1)].lr == Approx(expected(100.0 * e - 1)).epsilon(1e-12));
    }
    CHECK(lrs(dir / "whole")[2] < 0.00101);  // at the end of the run, nearly min_lr
    // Without a schedule the rate stays lr, and the weights differ: the schedule changes the training.
    run(dir / "constant", {"train.optimizer.type=adamw"});
    CHECK(lrs(dir / "constant") == std::vector<double>{0.01, 0.01, 0.01});
    CHECK(read_file(dir / "whole" / "checkpoint.safetensors") != read_file(dir / "constant" / "checkpoint.safetensors"));
    // The decay ends at train.max_steps when it is smaller: linear from step 0 to 150, so epoch 1 ends at (150 - 99) / 150.
    run(dir / "max_steps", {"train.schedule.decay=linear", "train.max_steps=150"});
    REQUIRE(lrs(dir / "max_steps").size() == 1);
    CHECK(lrs(dir / "max_steps")[0] == Approx(0.01 * (150 - 99) / 150.0).epsilon(1e-12));

    // Stopped mid-epoch (inside the warm-up, and in the decay) or after an epoch, then resumed: the bytes and metrics of the whole run.
    for (const auto& [stop_epoch, stop_step] : std::vector<std::pair<int, std::int64_t>>{{1, 7}, {2, 40}, {1, 0}}) {
        const fs::path out = dir / fmt::format("stopped_{}_{}", stop_epoch, stop_step);
        std::atomic<bool> stop{false};
        train::TrainOptions options;
        options.stop = &stop;
        options.on_step = [&, e = stop_epoch, s = stop_step](const train::Progress& p) {
            if (p.epoch == e && p.step == s) stop = true;
        };
        options.on_epoch = [&, e = stop_epoch, s = stop_step](const train::EpochMetrics& m) {
            if (m.epoch == e && s == 0) stop = true;
        };
        CHECK_THROWS_AS(run(out, cosine, options), train::TrainingInterrupted);
        train::TrainOptions resume;
        resume.resume = true;
        run(out, cosine, resume);
        CHECK(read_file(out / "checkpoint.safetensors") == read_file(dir / "whole" / "checkpoint.safetensors"));
        CHECK(lrs(out) == lrs(dir / "whole"));
    }
    // A run stopped by max_steps and resumed without it ends later: its decay stretches to the new end, and a warning says so.
    run(dir / "stretched", {"train.schedule.decay=linear", "train.max_steps=150"});
    std::vector<std::string> warnings;
    train::TrainOptions resume;
    resume.resume = true;
    resume.on_warning = [&](const std::string& w) { warnings.push_back(w); };
    run(dir / "stretched", {"train.schedule.decay=linear"}, resume);
    REQUIRE_FALSE(warnings.empty());
    CHECK_THAT(warnings.front(), Contains("the run now ends at step 300, not 150") && Contains("continues from step 150"));
    fs::remove_all(dir);
}

TEST_CASE("a non-finite gradient is traced to the first node, from the loss backward, whose gradient holds it", "[train]") {
    Graph g(builtin_ops());
    const ValueRef w = g.parameter("w", {DType::f32, {3}});
    const ValueRef a = g.add("a", "relu", {w});
    const ValueRef b = g.add("b", "square", {a});
    const ValueRef loss = g.add("loss", "sum", {b});
    Executor ex(g);
    ex.set("w", Tensor::from_floats({3}, std::vector<float>{1, 2, 3}));
    ex.forward();
    ex.backward(loss);
    CHECK(train::first_non_finite_gradient(ex).empty());
    // A NaN seeded at b's gradient flows down to a and w; b is where it starts.
    Tensor seed(Shape{3});
    seed.f32()[1] = std::numeric_limits<float>::quiet_NaN();
    ex.forward();
    ex.backward({{b, seed}});
    CHECK(train::first_non_finite_gradient(ex) == "'b' (square)");
}
