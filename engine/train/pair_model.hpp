// A trained Siamese run, for use: its folder (OUT of `graphrun train`) holds
// model.yaml, the tokenizer and the weights. It embeds texts with either
// branch, scores pairs by the model's own similarity (the cosine of the two
// embeddings, or minus their euclidean or manhattan distance, as the graph
// joins its branches), and measures held-out pairs (graphrun evaluate).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/spec/builder.hpp"
#include "engine/text/tokenizer.hpp"
#include "engine/train/data.hpp"
#include "engine/train/siamese_task.hpp"

namespace graphrun::train {

enum class Side { left, right };

class PairModel {
public:
    // RUN/model.yaml, RUN/tokenizer.json (+ .model), RUN/<run.checkpoint>.
    // An Error names the file and what is missing or does not fit.
    static PairModel load_run(const std::string& dir);
    PairModel(PairModel&&) noexcept;
    ~PairModel();

    const spec::Spec& spec() const;
    const std::string& checkpoint() const;  // the weights' file, in the run's folder
    std::string structure() const;          // the graph's structure hash
    const text::Tokenizer& tokenizer() const;
    // Chosen on the validation pairs when training ended; on the similarity
    // (for a distance model on minus the distance: similar at or below -threshold).
    std::optional<double> threshold() const;
    const text::Metric& metric() const;        // how the graph joins the two embeddings
    std::int64_t dimension() const;            // of an embedding
    std::int64_t length(Side side) const;      // tokens an input holds; longer texts are cut

    // One row per text, in the order given: (texts.size() * dimension()) floats.
    std::vector<float> embed(Side side, const std::vector<std::string>& texts) const;
    // Uses `value` (shared, not copied) for the parameter `name` from now on:
    // Model keeps one set of weights for its graph and this one.
    void set_parameter(const std::string& name, const Tensor& value);
    // The model's similarity of two embeddings, as the graph computes it: the
    // cosine (|v| clamped to eps), or minus the euclidean or manhattan distance.
    float similarity(const float* left, const float* right) const;

private:
    struct Impl;
    explicit PairModel(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// The figures of `graphrun evaluate` for pairs. Labelled pairs are scored as
// given; when every pair is similar, each left text also meets the right text
// of another pair (drawn with `seed`) as a dissimilar pair. Ranking: each left
// text of `candidates` similar pairs (a fixed sample drawn with `seed`) against
// those pairs' right texts; its partner's rank counts every other candidate
// scoring at least as high (ties count against).
struct PairEvaluation {
    std::int64_t pairs = 0, similar = 0, candidates = 0;
    std::optional<double> auc, average_precision, threshold, accuracy, precision, recall, f1;
    std::optional<double> recall_at_1, recall_at_5, recall_at_10, mrr;
    std::vector<float> similarity, label;  // each scored pair's
};
PairEvaluation evaluate_pairs(const PairModel& model, const TextPairs& data, std::int64_t candidates, std::uint64_t seed);

}  // namespace graphrun::train
