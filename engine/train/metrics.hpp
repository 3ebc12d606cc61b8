// The numbers that show a Siamese model separating similar from dissimilar
// pairs, or collapsing.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace graphrun::train {

// ROC AUC of a score for label 1 against label 0: the chance that a random
// similar pair scores above a random dissimilar one, ties counting half.
// None when either class is missing.
std::optional<double> roc_auc(std::span<const float> score, std::span<const float> label);

// How close the embeddings (rows of an (n, d) matrix) of different samples
// are; near 1 means every input maps to nearly one point.
//   directions (a cosine model, which sees directions only): the mean cosine
//     between different rows; sum_{i != j} u_i.u_j = |sum_i u_i|^2 - sum_i |u_i|^2
//     for unit rows u_i.
//   points (a distance model: rows pointing one way with different lengths are
//     still told apart): the mean inner product between different rows over
//     their mean squared norm, (|sum_i e_i|^2 - sum_i |e_i|^2) / ((n - 1) sum_i |e_i|^2);
//     1 only when every row is the same point, about 0 for rows spread around the origin.
enum class SpreadOf { directions, points };
std::optional<double> embedding_spread(const float* rows, std::int64_t n, std::int64_t d, SpreadOf of = SpreadOf::directions);

// Average precision of a score for label 1 (scikit-learn's
// average_precision_score: sum over the positives, ranked by score, of the
// precision at each, tied scores taken together). None without positives.
std::optional<double> average_precision(std::span<const float> score, std::span<const float> label);

// The cut on the score with the highest accuracy when "score >= threshold"
// means label 1: halfway between two neighbouring distinct scores (or just
// outside them all); the lowest such cut when several tie.
struct ThresholdChoice {
    double threshold = 0, accuracy = 0;
};
std::optional<ThresholdChoice> best_accuracy_threshold(std::span<const float> score, std::span<const float> label);

// At a threshold: accuracy, and precision, recall, F1 of label 1 (0 when undefined, as scikit-learn's zero_division=0).
struct Decisions {
    double accuracy = 0, precision = 0, recall = 0, f1 = 0;
};
Decisions decide(std::span<const float> score, std::span<const float> label, double threshold);

}  // namespace graphrun::train
