#include "engine/train/pair_model.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include <fmt/format.h>

#include "engine/core/executor.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/metrics.hpp"
#include "engine/train/trainer.hpp"
#include "ops/builtin.hpp"

namespace graphrun::train {

namespace fs = std::filesystem;

struct PairModel::Impl {
    spec::Spec spec;
    std::unique_ptr<BuiltGraph> built;
    SiameseRoles roles;
    std::unique_ptr<text::Tokenizer> tokenizer;
    std::string checkpoint;
    // Inference only; one caller at a time.
    mutable std::unique_ptr<Executor> executor;
};

PairModel::PairModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PairModel::PairModel(PairModel&&) noexcept = default;
PairModel::~PairModel() = default;

PairModel PairModel::load_run(const std::string& dir) {
    const fs::path run(dir);
    const fs::path yaml = run / "model.yaml";
    if (!fs::is_directory(run)) throw Error(fmt::format("{}: no such folder (a run's folder, the --out of graphrun train)", dir));
    if (!fs::exists(yaml)) throw Error(fmt::format("{}: no model.yaml in it: not a run folder of graphrun train", dir));
    auto impl = std::make_unique<Impl>();
    impl->spec = spec::load_spec_file(yaml.string());
    if (impl->spec.task != "siamese")
        throw Error(fmt::format("{}: a model of task {}; scoring and embedding texts are for pair models (task siamese)", yaml.string(), impl->spec.task));
    if (impl->spec.data.kind != spec::DataSpec::Kind::text || impl->spec.run.tokenizer.empty())
        throw Error(fmt::format("{}: the model was trained on {}, not on text: there is no tokenizer to read texts with", yaml.string(),
                                input_encoding(impl->spec)));
    impl->built = std::make_unique<BuiltGraph>(build_graph(impl->spec, builtin_ops()));
    impl->roles = find_roles(impl->built->graph);
    impl->tokenizer = text::load_tokenizer(dir);
    const std::int64_t fits = std::min(impl->roles.shape.left_vocab, impl->roles.shape.right_vocab);
    if (impl->tokenizer->vocab_size() > fits)
        throw Error(fmt::format("{}: the tokenizer has {} ids, the model's embeddings {}", (run / "tokenizer.json").string(), impl->tokenizer->vocab_size(), fits));
    const std::string checkpoint = (run / (impl->spec.run.checkpoint.empty() ? "checkpoint.safetensors" : impl->spec.run.checkpoint)).string();
    const io::Checkpoint ckpt = io::read_safetensors(checkpoint);
    impl->checkpoint = checkpoint;
    impl->executor = std::make_unique<Executor>(impl->built->graph);
    load_parameters(*impl->executor, ckpt, optimizer_tensors(ckpt), checkpoint);
    check_trained_for(ckpt, checkpoint, impl->spec, impl->built->graph, true);
    return PairModel(std::move(impl));
}

const spec::Spec& PairModel::spec() const { return impl_->spec; }
const std::string& PairModel::checkpoint() const { return impl_->checkpoint; }
std::string PairModel::structure() const { return structure_hash(impl_->built->graph); }
const text::Tokenizer& PairModel::tokenizer() const { return *impl_->tokenizer; }
std::optional<double> PairModel::threshold() const { return impl_->spec.run.threshold; }
const text::Metric& PairModel::metric() const { return impl_->roles.metric; }
std::int64_t PairModel::dimension() const { return impl_->built->graph.type(impl_->roles.left_embedding).shape.at(1); }
std::int64_t PairModel::length(Side side) const { return side == Side::left ? impl_->roles.shape.left_length : impl_->roles.shape.right_length; }

std::vector<float> PairModel::embed(Side side, const std::vector<std::string>& texts) const {
    const Graph& graph = impl_->built->graph;
    const int input = side == Side::left ? impl_->roles.left_input : impl_->roles.right_input;
    const ValueRef embedding = side == Side::left ? impl_->roles.left_embedding : impl_->roles.right_embedding;
    const std::int64_t length = this->length(side), d = dimension();
    const DType dtype = graph.node(input).outputs[0].dtype;
    constexpr std::int64_t kBatch = 64;  // two plans at most: full batches and the last one
    std::vector<float> out(texts.size() * static_cast<std::size_t>(d));
    std::vector<std::int32_t> ids(static_cast<std::size_t>(kBatch * length)), scratch;
    for (std::size_t first = 0; first < texts.size(); first += kBatch) {
        const auto rows = static_cast<std::int64_t>(std::min<std::size_t>(kBatch, texts.size() - first));
        for (std::int64_t r = 0; r < rows; ++r)
            text::encode_to_length(*impl_->tokenizer, texts[first + static_cast<std::size_t>(r)], length, ids.data() + r * length, scratch);
        Tensor batch(TensorType{dtype, {rows, length}});
        for (std::int64_t j = 0; j < rows * length; ++j) {
            if (dtype == DType::i32) batch.i32()[j] = ids[static_cast<std::size_t>(j)];
            else batch.i64()[j] = ids[static_cast<std::size_t>(j)];
        }
        impl_->executor->set(input, std::move(batch));
        impl_->executor->forward({embedding}, Executor::Mode::inference);
        const Tensor& e = impl_->executor->value(embedding);
        std::copy_n(e.f32(), rows * d, out.data() + first * static_cast<std::size_t>(d));
    }
    return out;
}

void PairModel::set_parameter(const std::string& name, const Tensor& value) { impl_->executor->set(name, value); }

float PairModel::similarity(const float* a, const float* b) const { return impl_->roles.metric.similarity(a, b, dimension()); }

PairEvaluation evaluate_pairs(const PairModel& model, const TextPairs& data, std::int64_t candidates, std::uint64_t seed) {
    const std::int64_t d = model.dimension();
    const std::vector<float> left = model.embed(Side::left, data.left), right = model.embed(Side::right, data.right);
    const auto row = [d](const std::vector<float>& m, std::size_t i) { return m.data() + i * static_cast<std::size_t>(d); };
    const std::size_t n = data.label.size();
    PairEvaluation e;
    for (std::size_t i = 0; i < n; ++i) {
        e.similarity.push_back(model.similarity(row(left, i), row(right, i)));
        e.label.push_back(data.label[i]);
    }
    std::mt19937_64 rng(seed);
    const bool all_similar = std::all_of(data.label.begin(), data.label.end(), [](float y) { return y == 1.0f; });
    if (all_similar && n > 1) {
        // Dissimilar pairs by random pairing: left i with the right text of another pair.
        std::uniform_int_distribution<std::size_t> other(0, n - 2);
        for (std::size_t i = 0; i < n; ++i) {
            std::size_t j = other(rng);
            if (j >= i) ++j;
            e.similarity.push_back(model.similarity(row(left, i), row(right, j)));
            e.label.push_back(0.0f);
        }
    }
    for (std::size_t k = 0; k < e.similarity.size(); ++k)
        if (!std::isfinite(e.similarity[k]))
            throw Error(fmt::format("{}: pair {}: the model's similarity is {}, not a number it can rank by", data.path, k % n + 1, e.similarity[k]));
    e.pairs = static_cast<std::int64_t>(e.label.size());
    e.similar = std::count(e.label.begin(), e.label.end(), 1.0f);
    e.auc = roc_auc(e.similarity, e.label);
    e.average_precision = average_precision(e.similarity, e.label);
    e.threshold = model.threshold();
    if (e.threshold) {
        const Decisions at = decide(e.similarity, e.label, *e.threshold);
        e.accuracy = at.accuracy;
        e.precision = at.precision;
        e.recall = at.recall;
        e.f1 = at.f1;
    }

    // Ranking among a fixed sample of similar pairs.
    std::vector<std::size_t> positives;
    for (std::size_t i = 0; i < n; ++i)
        if (data.label[i] == 1.0f) positives.push_back(i);
    std::mt19937_64 sample_rng(seed ^ 0x72616e6bULL);
    std::shuffle(positives.begin(), positives.end(), sample_rng);
    positives.resize(static_cast<std::size_t>(std::min<std::int64_t>(candidates, static_cast<std::int64_t>(positives.size()))));
    e.candidates = static_cast<std::int64_t>(positives.size());
    if (e.candidates < 2) return e;
    double hits1 = 0, hits5 = 0, hits10 = 0, reciprocal = 0;
    for (std::size_t a = 0; a < positives.size(); ++a) {
        const float own = model.similarity(row(left, positives[a]), row(right, positives[a]));
        std::int64_t rank = 1;
        for (std::size_t b = 0; b < positives.size(); ++b)
            if (b != a && model.similarity(row(left, positives[a]), row(right, positives[b])) >= own) ++rank;
        hits1 += rank <= 1;
        hits5 += rank <= 5;
        hits10 += rank <= 10;
        reciprocal += 1.0 / static_cast<double>(rank);
    }
    const auto count = static_cast<double>(positives.size());
    e.recall_at_1 = hits1 / count;
    e.recall_at_5 = hits5 / count;
    e.recall_at_10 = hits10 / count;
    e.mrr = reciprocal / count;
    return e;
}

}  // namespace graphrun::train
