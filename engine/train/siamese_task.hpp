// task: siamese. Pairs of token sequences (synthetic, .npy files or a TSV of
// text pairs), dissimilar pairs sampled by random pairing, the guard against
// positive-only data, and the figures that show separation or collapse:
// validation AUC, mean similarity of similar and dissimilar pairs, and the
// spread of the embeddings (engine/train/metrics.hpp).
#pragma once

#include <string>
#include <vector>

#include "engine/core/graph.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/spec.hpp"
#include "engine/text/metric.hpp"
#include "engine/train/data.hpp"

namespace graphrun::train {

// The parts of a graph the task needs, found by their roles: the two token
// inputs, the label input, and the one node joining the branches: a cosine
// node (its inputs are the embeddings), or the output of a euclidean or
// manhattan composite (the embeddings are the inputs of its <name>/difference).
struct SiameseRoles {
    int left_input = -1, right_input = -1, label_input = -1;
    ValueRef join;  // (N): the cosine, or the distance
    ValueRef left_embedding, right_embedding;
    text::Metric metric;  // the joining node's, with its eps
    PairShape shape;
    // The model's similarity (higher = more similar) from the joining node's value.
    float similarity(float joined) const { return metric.is_distance() ? -joined : joined; }
};
SiameseRoles find_roles(const Graph& graph);

// The kind of the loss (in_batch_softmax, triplet_loss, or its op) when it
// ranks each pair against the batch's other pairs (it is computed from a
// cosine_matrix), else "". Such a loss trains on similar pairs alone.
std::string ranking_objective(const BuiltGraph& built);

// The validation pairs a run measures each epoch: `validation` as held out and,
// where it holds similar pairs only, `negatives` (at least 1) dissimilar pairs
// for each, drawn once from the run's seed (the same pairs every epoch).
std::vector<Sample> plan_validation(const PairSet& validation, std::int64_t negatives, std::uint64_t seed);

// The message of the guard that stops a run on positive-only data.
std::string positive_only_message(const spec::Spec& spec);

}  // namespace graphrun::train
