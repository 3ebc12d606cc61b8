// train.length_buckets: batches sorted by length within windows, shuffled as
// whole batches, each token input cut to its batch's longest row (rounded
// up). A cut batch gives the padded batch's loss and gradients; the epoch
// holds the same samples; each length keeps its plan, so a length met again
// creates nothing; a model that reads padding is refused before training.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "engine/core/dnnl_context.hpp"
#include "engine/core/executor.hpp"
#include "engine/core/threads.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/data.hpp"
#include "engine/train/initializer.hpp"
#include "engine/train/trainer.hpp"
#include "ops/builtin.hpp"
#include "tests/scratch.hpp"

using namespace graphrun;
using Catch::Matchers::Contains;

namespace {

// Pairs whose texts are 1..left_max and 1..right_max ids long, padded to 10 and 40.
train::PairSet varied_pairs(std::int64_t count, std::uint64_t seed) {
    train::PairSet p;
    p.left_length = 10;
    p.right_length = 40;
    std::mt19937_64 rng(seed);
    for (std::int64_t i = 0; i < count; ++i) {
        const auto l = static_cast<std::int64_t>(1 + rng() % 10), r = static_cast<std::int64_t>(1 + rng() % 40);
        for (std::int64_t t = 0; t < 10; ++t) p.left.push_back(t < l ? static_cast<std::int32_t>(1 + (i + t) % 50) : 0);
        for (std::int64_t t = 0; t < 40; ++t) p.right.push_back(t < r ? static_cast<std::int32_t>(1 + (i * 7 + t) % 50) : 0);
        p.label.push_back(1.0f);
    }
    return p;
}

std::int64_t padded_ids(const std::vector<train::Sample>& samples, const std::vector<std::int32_t>& left, const std::vector<std::int32_t>& right,
                        std::int64_t batch_size, std::int64_t multiple, const train::PairSet& p) {
    std::int64_t ids = 0;
    for (std::size_t first = 0; first < samples.size(); first += static_cast<std::size_t>(batch_size)) {
        std::int32_t l = 0, r = 0;
        const std::size_t end = std::min(samples.size(), first + static_cast<std::size_t>(batch_size));
        for (std::size_t k = first; k < end; ++k) {
            l = std::max(l, left[static_cast<std::size_t>(samples[k].left_row)]);
            r = std::max(r, right[static_cast<std::size_t>(samples[k].right_row)]);
        }
        ids += static_cast<std::int64_t>(end - first) *
               (train::bucket_length(l, multiple, p.left_length) + train::bucket_length(r, multiple, p.right_length));
    }
    return ids;
}

// tests/specs/small_siamese.yaml with length buckets small enough to cut its
// short texts (lengths 3..6 of 6 and 4..8 of 8), and `overrides`.
spec::Spec small_bucketed(std::vector<std::string> overrides = {}) {
    overrides.insert(overrides.begin(), {"train.length_buckets.window=4", "train.length_buckets.multiple=2"});
    return spec::load_spec_file(GRAPHRUN_SOURCE_DIR "/tests/specs/small_siamese.yaml", overrides);
}

// A Siamese spec on small_siamese's inputs with length buckets: `nodes`
// from the ids to the two embeddings `left` and `right`, then the cosine and
// the contrastive loss; batches of `batch`, synthetic texts at least
// `min_length` of their input long.
std::string two_branch_spec(const std::string& nodes, const std::string& left, const std::string& right, int batch, double min_length) {
    return fmt::format(R"(
inputs:
  - {{name: x1, shape: [6], dtype: int32}}
  - {{name: x2, shape: [8], dtype: int64}}
  - {{name: y, shape: [], dtype: float32}}
nodes:
{}
  - {{name: similarity, op: cosine, inputs: [{}, {}]}}
  - {{name: one, op: constant, value: 1.0}}
  - {{name: distance, op: sub, inputs: [one, similarity]}}
  - {{name: loss, op: contrastive_loss, inputs: [distance, y], margin: 1.0}}
outputs: [similarity]
loss: loss
data:
  synthetic: {{samples: 400, classes: 4, signal: 0.9, min_length: {}, seed: 3}}
train: {{epochs: 1, batch_size: {}, seed: 5, negatives: 1, length_buckets: {{window: 4, multiple: 2}}}}
)",
                       nodes, left, right, min_length, batch);
}

}  // namespace

TEST_CASE("length buckets: each window sorted by length, whole batches shuffled, the same samples", "[buckets][train]") {
    CHECK(train::bucket_length(1, 16, 600) == 16);
    CHECK(train::bucket_length(17, 16, 600) == 32);
    CHECK(train::bucket_length(599, 16, 600) == 600);  // never past the declared length
    CHECK(train::bucket_length(0, 16, 600) == 16);     // an empty text still runs one bucket

    const train::PairSet pairs = varied_pairs(1000, 1);
    const auto left = train::row_lengths(pairs.left, pairs.left_length), right = train::row_lengths(pairs.right, pairs.right_length);
    REQUIRE(left.size() == 1000);
    CHECK(*std::min_element(right.begin(), right.end()) == 1);
    CHECK(*std::max_element(right.begin(), right.end()) == 40);

    std::mt19937_64 rng(4);
    const std::vector<train::Sample> plain = train::plan_epoch(pairs, 1, true, rng);
    std::vector<train::Sample> bucketed = plain;
    std::mt19937_64 batch_rng(9);
    train::sort_windows_by_length(bucketed, pairs, left, right, 16, 5, 8);
    train::shuffle_batches(bucketed, 16, batch_rng);

    // The same samples.
    const auto as_set = [](const std::vector<train::Sample>& s) {
        std::multiset<std::tuple<std::int64_t, std::int64_t, float>> out;
        for (const auto& x : s) out.insert({x.left_row, x.right_row, x.label});
        return out;
    };
    CHECK(as_set(bucketed) == as_set(plain));
    // Within a batch, the longer side's bucket never grows (it was cut from a sorted window).
    for (std::size_t first = 0; first + 16 <= bucketed.size(); first += 16)
        for (std::size_t k = first + 1; k < first + 16; ++k)
            CHECK(train::bucket_length(right[static_cast<std::size_t>(bucketed[k].right_row)], 8, 40) <=
                  train::bucket_length(right[static_cast<std::size_t>(bucketed[k - 1].right_row)], 8, 40));
    // The batches are not in window order: the first batches' lengths do not only fall.
    std::vector<std::int64_t> first_rows;
    for (std::size_t first = 0; first < bucketed.size(); first += 16)
        first_rows.push_back(train::bucket_length(right[static_cast<std::size_t>(bucketed[first].right_row)], 8, 40));
    CHECK_FALSE(std::is_sorted(first_rows.rbegin(), first_rows.rend()));
    // A last smaller batch stays last: 2000 samples = 125 batches of 16, so cut one out.
    std::vector<train::Sample> odd(plain.begin(), plain.end() - 5);
    std::mt19937_64 odd_rng(9);
    train::sort_windows_by_length(odd, pairs, left, right, 16, 5, 8);
    const std::vector<train::Sample> tail(odd.end() - 11, odd.end());
    train::shuffle_batches(odd, 16, odd_rng);
    CHECK(as_set(std::vector<train::Sample>(odd.end() - 11, odd.end())) == as_set(tail));
    // The point: far fewer ids run than padded to the declared lengths.
    const std::int64_t cut = padded_ids(bucketed, left, right, 16, 8, pairs), unsorted = padded_ids(plain, left, right, 16, 8, pairs);
    const std::int64_t declared = static_cast<std::int64_t>(plain.size()) * 50;
    CHECK(unsorted > declared * 9 / 10);  // random batches nearly always hold a long text
    CHECK(cut < unsorted * 8 / 10);
}

TEST_CASE("length buckets with in-batch negatives: batches still hold no text twice", "[buckets][ranking][train]") {
    train::PairSet pairs = varied_pairs(300, 2);
    // Repeated right texts: rows 0..9 share one.
    for (std::size_t i = 0; i < 10; ++i) std::copy_n(pairs.right.begin(), 40, pairs.right.begin() + static_cast<std::ptrdiff_t>(i) * 40);
    const auto left = train::row_lengths(pairs.left, pairs.left_length), right = train::row_lengths(pairs.right, pairs.right_length);
    std::mt19937_64 rng(3);
    const auto epoch = train::plan_batch_negatives_epoch(pairs, 8, true, rng, [&](std::vector<train::Sample>& s) {
        train::sort_windows_by_length(s, pairs, left, right, 8, 4, 8);
    });
    std::set<std::int64_t> seen;
    for (std::size_t first = 0; first < epoch.samples.size(); first += 8) {
        std::set<std::vector<std::int32_t>> rights;
        for (std::size_t k = first; k < std::min(first + 8, epoch.samples.size()); ++k) {
            const auto row = static_cast<std::size_t>(epoch.samples[k].right_row);
            CHECK(rights.insert(std::vector<std::int32_t>(pairs.right.begin() + static_cast<std::ptrdiff_t>(row * 40),
                                                          pairs.right.begin() + static_cast<std::ptrdiff_t>(row * 40 + 40)))
                      .second);
            CHECK(seen.insert(epoch.samples[k].left_row).second);
        }
    }
    CHECK(static_cast<std::int64_t>(seen.size()) + epoch.left_out == 300);
}

// One batch of each model, padded to the declared lengths and cut to its
// longest rows: the same loss and the same gradients (summation order aside).
TEST_CASE("a batch cut to its longest rows gives the padded batch's loss and gradients", "[buckets][padding]") {
    const std::vector<std::pair<std::string, std::string>> branches{
        {"lstm", "{op: lstm, units: 6}"},
        {"gru", "{op: gru, units: 6}"},
        {"bidirectional lstm", "{op: lstm, units: 6, bidirectional: true}"},
    };
    const std::vector<std::pair<std::string, std::string>> tops{
        {"", ""},
        {"stacked on a second layer with sequences, max_pool", "pool: max_pool"},
        {"mean_pool of the sequences, with dropout", "pool: mean_pool"},
    };
    for (const auto& [layer_name, layer] : branches)
        for (const auto& [top_name, top] : tops) {
            INFO(layer_name << " " << top_name);
            std::string nodes;
            for (const std::string side : {"left", "right"}) {
                const std::string input = side == "left" ? "a" : "b";
                nodes += fmt::format("  - {{name: {0}_embedding, op: embedding, inputs: [{1}], vocab: 50, dim: 5}}\n", side, input);
                std::string rnn = layer;
                rnn.insert(1, fmt::format("name: {}_rnn, inputs: [{}_embedding], ", side, side));
                if (top.empty()) {
                    nodes += "  - " + rnn + "\n";
                    nodes += fmt::format("  - {{name: {0}_out, op: dense, inputs: [{0}_rnn], units: 4}}\n", side);
                    continue;
                }
                rnn.insert(rnn.size() - 1, ", return_sequences: true");
                nodes += "  - " + rnn + "\n";
                std::string from = side + "_rnn";
                if (top == "pool: max_pool") {
                    std::string second = layer;
                    second.insert(1, fmt::format("name: {0}_second, inputs: [{0}_rnn], ", side));
                    second.insert(second.size() - 1, ", return_sequences: true");
                    nodes += "  - " + second + "\n";
                    from = side + "_second";
                } else {
                    nodes += fmt::format("  - {{name: {0}_dropped, op: dropout, inputs: [{0}_rnn], rate: 0.3}}\n", side);
                    from = side + "_dropped";
                }
                nodes += fmt::format("  - {{name: {0}_pooled, op: {1}, inputs: [{2}]}}\n", side, top.substr(6), from);
                nodes += fmt::format("  - {{name: {0}_out, op: dense, inputs: [{0}_pooled], units: 4}}\n", side);
            }
            const std::string yaml = "inputs:\n  - {name: a, shape: [10], dtype: int32}\n  - {name: b, shape: [40], dtype: int32}\n"
                                     "  - {name: y, shape: [], dtype: float32}\nnodes:\n" +
                                     nodes +
                                     "  - {name: similarity, op: cosine, inputs: [left_out, right_out]}\n"
                                     "  - {name: one, op: constant, value: 1.0}\n"
                                     "  - {name: distance, op: sub, inputs: [one, similarity]}\n"
                                     "  - {name: loss, op: contrastive_loss, inputs: [distance, y], margin: 1.0}\n"
                                     "outputs: [similarity]\nloss: loss\n";
            const spec::Spec s = spec::load_spec_string(yaml, "cut");
            const BuiltGraph built = build_graph(s, builtin_ops());
            const Graph& g = built.graph;
            Executor ex(g);
            initialize_parameters(ex, 11);
            // Six rows: lengths up to 7 of 10 and 23 of 40, cut to 8 and 24.
            const std::vector<std::int64_t> left_len{3, 7, 1, 5, 2, 6}, right_len{23, 4, 17, 1, 9, 12};
            Tensor a_full({6, 10}, DType::i32), b_full({6, 40}, DType::i32), a_cut({6, 8}, DType::i32), b_cut({6, 24}, DType::i32);
            Tensor y({6});
            for (std::int64_t r = 0; r < 6; ++r) {
                for (std::int64_t t = 0; t < left_len[static_cast<std::size_t>(r)]; ++t)
                    a_full.i32()[r * 10 + t] = a_cut.i32()[r * 8 + t] = static_cast<std::int32_t>(1 + (r * 13 + t * 3) % 49);
                for (std::int64_t t = 0; t < right_len[static_cast<std::size_t>(r)]; ++t)
                    b_full.i32()[r * 40 + t] = b_cut.i32()[r * 24 + t] = static_cast<std::int32_t>(1 + (r * 5 + t * 11) % 49);
                y.f32()[r] = static_cast<float>(r % 2);
            }
            const auto run = [&](const Tensor& a, const Tensor& b) {
                ex.set("a", a);
                ex.set("b", b);
                ex.set("y", y);
                ex.set_draws(5, 2, 0);
                ex.forward();
                ex.backward(built.loss);
                std::map<std::string, std::vector<float>> out;
                const Tensor& loss = ex.value(built.loss);
                out["loss"] = {loss.f32()[0]};
                for (int p : g.parameters()) {
                    const Tensor& grad = ex.grad(p);
                    out[g.node(p).name].assign(grad.f32(), grad.f32() + grad.numel());
                }
                return out;
            };
            const auto padded = run(a_full, b_full);
            CHECK_THROWS_WITH(ex.set("b", b_cut), Contains("'b' expects"));  // not before allow_shorter
            ex.allow_shorter(g.index_of("a"), 1);
            ex.allow_shorter(g.index_of("b"), 1);
            const auto cut = run(a_cut, b_cut);
            const std::size_t plans = ex.plans();
            CHECK(plans == 2);  // one per length
            for (const auto& [name, want] : padded) {
                INFO(name);
                const auto& got = cut.at(name);
                REQUIRE(got.size() == want.size());
                double scale = 0, worst = 0;
                for (std::size_t k = 0; k < want.size(); ++k) {
                    scale = std::max(scale, static_cast<double>(std::abs(want[k])));
                    worst = std::max(worst, static_cast<double>(std::abs(got[k] - want[k])));
                }
                if (name == "loss") CHECK(scale > 0);
                CHECK(worst <= 1e-6 * std::max(scale, 1.0));
            }
            CHECK_THROWS_WITH(ex.set("b", Tensor({6, 41}, DType::i32)), Contains("at most as long"));
        }
}

TEST_CASE("every length keeps its plan: a length met again creates no primitive", "[buckets]") {
    const spec::Spec s = spec::load_spec_file(GRAPHRUN_SOURCE_DIR "/tests/specs/small_siamese.yaml");
    const BuiltGraph built = build_graph(s, builtin_ops());
    Executor ex(built.graph);
    initialize_parameters(ex, 1);
    ex.allow_shorter(built.graph.index_of("x1"), 1);
    ex.allow_shorter(built.graph.index_of("x2"), 1);
    ex.set_plan_capacity(20);
    Tensor y({4});
    const auto step = [&](std::int64_t width) {
        Tensor x1({4, 6}, DType::i32), x2({4, width}, DType::i64);
        for (std::int64_t k = 0; k < x1.numel(); ++k) x1.i32()[k] = 1 + static_cast<std::int32_t>(k % 9);
        for (std::int64_t k = 0; k < x2.numel(); ++k) x2.i64()[k] = 1 + k % 7;
        ex.set("x1", x1);
        ex.set("x2", x2);
        ex.set("y", y);
        ex.forward();
        ex.backward(built.loss);
    };
    for (std::int64_t width = 1; width <= 8; ++width) step(width);
    CHECK(ex.plans() == 8);
    const std::int64_t warm = primitives_created();
    for (std::int64_t width = 8; width >= 1; --width) step(width);
    CHECK(primitives_created() == warm);
    CHECK(ex.plans() == 8);
}

TEST_CASE("training with length buckets: cut batches, learns, and a model that reads padding is refused", "[buckets][train]") {
    const auto dir = test::scratch_folder("buckets", "train");
    // min_length 0.5: lengths 3..6 of 6 and 4..8 of 8; rounded up to 2 they take several lengths.
    spec::Spec s = small_bucketed();
    CHECK(s.train.length_buckets.window == 4);
    CHECK(s.train.length_buckets.multiple == 2);
    const BuiltGraph built = build_graph(s, builtin_ops());
    train::TrainOptions options;
    options.out_dir = (dir / "a").string();
    std::size_t plans = 0;
    options.on_finish = [&](const Executor& ex) { plans = ex.plans(); };
    const auto history = train::train(s, built, options);
    REQUIRE(history.size() == 3);
    CHECK(plans > 3);  // several lengths met (the others: validation, the check's)
    REQUIRE(history.back().metric("val_auc").has_value());
    CHECK(*history.back().metric("val_auc") > 0.8);
    CHECK(history.back().train_loss < history.front().train_loss);
    // The same bytes again, on one thread, and after a stop and --resume.
    {
        const ThreadBudget one(1);
        options.out_dir = (dir / "again").string();
        train::train(s, built, options);
    }
    CHECK(test::read_file(dir / "a" / "checkpoint.safetensors") == test::read_file(dir / "again" / "checkpoint.safetensors"));
    const spec::Spec first_epoch = small_bucketed({"train.epochs=1"});
    const BuiltGraph first_built = build_graph(first_epoch, builtin_ops());
    options.out_dir = (dir / "resumed").string();
    train::train(first_epoch, first_built, options);
    options.resume = true;
    train::train(s, built, options);
    options.resume = false;
    CHECK(test::read_file(dir / "a" / "checkpoint.safetensors") == test::read_file(dir / "resumed" / "checkpoint.safetensors"));
    // Stopped in the middle of epoch 2 (100 steps an epoch), then resumed.
    const spec::Spec mid_epoch = small_bucketed({"train.max_steps=130"});
    const BuiltGraph mid_built = build_graph(mid_epoch, builtin_ops());
    options.out_dir = (dir / "mid").string();
    train::train(mid_epoch, mid_built, options);
    CHECK(test::read_file(dir / "mid" / "checkpoint.safetensors") != test::read_file(dir / "a" / "checkpoint.safetensors"));
    options.resume = true;
    train::train(s, built, options);
    options.resume = false;
    CHECK(test::read_file(dir / "a" / "checkpoint.safetensors") == test::read_file(dir / "mid" / "checkpoint.safetensors"));

    // A dense layer over time loses the padding's place: the lstm after it
    // reads every step, so its state depends on where the batch is cut.
    const std::string right_leak = two_branch_spec(R"(  - {name: left_embedding, op: embedding, inputs: [x1], vocab: 64, dim: 8}
  - {name: left_lstm, op: lstm, inputs: [left_embedding], units: 12}
  - {name: right_embedding, op: embedding, inputs: [x2], vocab: 64, dim: 8}
  - {name: right_projected, op: dense, inputs: [right_embedding], units: 8}
  - {name: right_lstm, op: lstm, inputs: [right_projected], units: 12})",
                                                   "left_lstm", "right_lstm", 32, 0.5);
    // The same on the left, the side the windows are not sorted by: its own
    // most cut batch is checked, not only the batch cut the most overall.
    const std::string left_leak = two_branch_spec(R"(  - {name: left_embedding, op: embedding, inputs: [x1], vocab: 64, dim: 8}
  - {name: left_projected, op: dense, inputs: [left_embedding], units: 8}
  - {name: left_lstm, op: lstm, inputs: [left_projected], units: 12}
  - {name: right_embedding, op: embedding, inputs: [x2], vocab: 64, dim: 8}
  - {name: right_lstm, op: lstm, inputs: [right_embedding], units: 12})",
                                                  "left_lstm", "right_lstm", 4, 0.5);
    // A dense layer over the time axis needs the declared length.
    const std::string fixed_length = two_branch_spec(R"(  - {name: left_embedding, op: embedding, inputs: [x1], vocab: 64, dim: 3}
  - {name: left_steps, op: sum_last, inputs: [left_embedding]}
  - {name: left_out, op: dense, inputs: [left_steps], units: 4}
  - {name: right_embedding, op: embedding, inputs: [x2], vocab: 64, dim: 8}
  - {name: right_lstm, op: lstm, inputs: [right_embedding], units: 4})",
                                                     "left_out", "right_lstm", 4, 0.2);
    // Each refused before the first step, naming the inputs' cut, the node and where train.length_buckets was written.
    const auto refusal = [&](const std::string& yaml, const std::string& name) -> std::string {
        const spec::Spec bad = spec::load_spec_string(yaml, name);
        const BuiltGraph bad_built = build_graph(bad, builtin_ops());
        options.out_dir = (dir / name).string();
        try {
            train::train(bad, bad_built, options);
        } catch (const Error& e) {
            CHECK_FALSE(std::filesystem::exists(dir / name / "metrics.jsonl"));
            return e.what();
        }
        return "(trained)";
    };
    CHECK_THAT(refusal(right_leak, "right_leak"),
               Contains("<string>:") && Contains("train.length_buckets") && Contains("'x2' from 8 to") && Contains("reads padding steps") &&
                   Contains("'right_lstm' (lstm)"));
    CHECK_THAT(refusal(left_leak, "left_leak"), Contains("'x1' from 6 to") && Contains("node 'left_lstm' (lstm)"));
    CHECK_THAT(refusal(fixed_length, "fixed_length"),
               Contains("<string>:") && Contains("train.length_buckets: the model cannot take a batch cut") && Contains("'x1' from 6 to") &&
                   Contains("left_out"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("train.length_buckets is checked where it is written", "[buckets][spec]") {
    const std::string base = GRAPHRUN_SOURCE_DIR "/tests/specs/small_siamese.yaml";
    CHECK(spec::load_spec_file(base).train.length_buckets.window == 0);  // off unless asked
    CHECK_THROWS_WITH(spec::load_spec_file(base, {"train.length_buckets.window=0"}), Contains("train.length_buckets.window"));
    CHECK_THROWS_WITH(spec::load_spec_file(base, {"train.length_buckets.multiple=-3"}), Contains("train.length_buckets.multiple"));
    CHECK_THROWS_WITH(spec::load_spec_file(base, {"train.length_buckets.size=3"}), Contains("size"));
    CHECK_THROWS_WITH(spec::load_spec_file(base, {"train.length_buckets.window=99999999999"}), Contains("must be at most 1000000"));
    // Given, with nothing in it: on, with the defaults.
    const std::string yaml = "inputs:\n  - {name: a, shape: [4], dtype: int32}\nnodes:\n  - {name: loss, op: mean, inputs: [e]}\n"
                             "  - {name: e, op: embedding, inputs: [a], vocab: 9, dim: 2}\nloss: loss\ntrain: {length_buckets: {}}\n";
    const spec::Spec s = spec::load_spec_string(yaml, "x");
    CHECK(s.train.length_buckets.window == 50);
    CHECK(s.train.length_buckets.multiple == 16);
}
