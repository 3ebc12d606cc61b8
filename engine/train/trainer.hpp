// The training loop, for any graph with a scalar loss: batches from the
// task (engine/train/task.hpp), forward and backward, the ranks' gradient sum
// (MPI), clipping and the optimizer (engine/train/step.hpp), progress,
// validation, metrics.jsonl, checkpoints (last and best) and resuming.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/core/executor.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/spec/builder.hpp"
#include "graphrun/training.hpp"

namespace graphrun::train {

std::vector<EpochMetrics> train(const spec::Spec& spec, const BuiltGraph& built, const TrainOptions& options);

// The task's figures for a checkpoint on held-out data: `data` (a TSV in the
// spec's data.inputs layout), or the spec's data.test when empty. The
// figures keep their validation names (val_loss, val_accuracy, ...).
EpochMetrics evaluate(const spec::Spec& spec, const BuiltGraph& built, const std::string& checkpoint, const std::string& data);

// Sets every parameter of the executor's graph from a checkpoint; a missing
// parameter, a tensor of another type, or a tensor that is neither a parameter
// nor optimizer state is an Error naming `path` and listing them.
void load_parameters(Executor& executor, const io::Checkpoint& checkpoint, const std::map<std::string, Tensor>& optimizer_state,
                     const std::string& path);
// How the spec's data becomes the graph's inputs ("text as words tokens,
// lowercased", "synthetic ids", ...): weights trained on one are meaningless
// with another, though every shape fits.
std::string input_encoding(const spec::Spec& spec);
// After load_parameters: a checkpoint that records how it was trained must
// match `spec` in its input encoding and, with `same_graph`, in its graph's
// structure hash (a resumed run, a run's own model). An Error says what differs.
void check_trained_for(const io::Checkpoint& checkpoint, const std::string& path, const spec::Spec& spec, const Graph& graph, bool same_graph);
// The checkpoint's optimizer state (`<param>.adam_m`, `.adam_v`, `.sgd_momentum`).
std::map<std::string, Tensor> optimizer_tensors(const io::Checkpoint& checkpoint);

}  // namespace graphrun::train
