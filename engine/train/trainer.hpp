// Training a Siamese graph from a spec: data, negatives, the collapse guard,
// the loop, validation metrics, checkpoints and resuming.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "graphrun/error.hpp"
#include "engine/core/executor.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/spec/builder.hpp"
#include "engine/train/communicator.hpp"
#include "engine/train/data.hpp"
#include "engine/train/step.hpp"
#include "graphrun/training.hpp"

namespace graphrun::train {

// The parts of a graph the trainer needs, found by their roles: the two token
// inputs, the label input, the cosine node whose inputs are the embeddings.
struct SiameseRoles {
    int left_input = -1, right_input = -1, label_input = -1;
    ValueRef similarity, left_embedding, right_embedding;
    PairShape shape;
};
SiameseRoles find_roles(const Graph& graph);

std::vector<EpochMetrics> train(const spec::Spec& spec, const BuiltGraph& built, const TrainOptions& options);

// The message of the guard that stops a run on positive-only data.
std::string positive_only_message(const spec::Spec& spec);

// Sets every parameter of the executor's graph from a checkpoint; a missing
// parameter, a tensor of another type, or a tensor that is neither a parameter
// nor optimizer state is an Error naming `path` and listing them.
void load_parameters(Executor& executor, const io::Checkpoint& checkpoint, const std::map<std::string, Tensor>& optimizer_state,
                     const std::string& path);
// The checkpoint's optimizer state (`<param>.adam_m`, `.adam_v`, `.sgd_momentum`).
std::map<std::string, Tensor> optimizer_tensors(const io::Checkpoint& checkpoint);

}  // namespace graphrun::train
