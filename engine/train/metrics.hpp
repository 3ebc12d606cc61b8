// The numbers that show a Siamese model separating similar from dissimilar
// pairs, or collapsing.
#pragma once

#include <optional>
#include <span>

namespace graphrun::train {

// ROC AUC of a score for label 1 against label 0: the chance that a random
// similar pair scores above a random dissimilar one, ties counting half.
// None when either class is missing.
std::optional<double> roc_auc(std::span<const float> score, std::span<const float> label);

// The mean cosine between the embeddings (rows of an (n, d) matrix) of
// different samples; near 1 means every input maps to nearly one point.
// sum_{i != j} u_i.u_j = |sum_i u_i|^2 - sum_i |u_i|^2 for unit rows u_i.
std::optional<double> embedding_spread(const float* rows, std::int64_t n, std::int64_t d);

}  // namespace graphrun::train
