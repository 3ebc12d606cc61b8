// Training a Siamese graph from a spec: data, negatives, the collapse guard,
// the loop, validation metrics, checkpoints and resuming.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/core/executor.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/spec/builder.hpp"
#include "engine/train/communicator.hpp"
#include "engine/train/data.hpp"
#include "engine/train/step.hpp"

namespace graphrun::train {

// A run stopped on request (TrainOptions::stop, e.g. SIGINT) after writing a
// checkpoint that --resume continues from, to the same weights as a run that
// was never stopped.
class TrainingInterrupted : public Error {
public:
    TrainingInterrupted(const std::string& message, std::string checkpoint) : Error(message), checkpoint_(std::move(checkpoint)) {}
    const std::string& checkpoint() const { return checkpoint_; }

private:
    std::string checkpoint_;
};

// The parts of a graph the trainer needs, found by their roles: the two token
// inputs, the label input, the cosine node whose inputs are the embeddings.
struct SiameseRoles {
    int left_input = -1, right_input = -1, label_input = -1;
    ValueRef similarity, left_embedding, right_embedding;
    PairShape shape;
};
SiameseRoles find_roles(const Graph& graph);

struct EpochMetrics {
    int epoch = 0;
    double train_loss = 0;
    std::optional<double> val_loss, val_auc, pos_sim, neg_sim, spread;
    double samples_per_s = 0;       // training pairs a second, all ranks together
    int ranks = 1;                   // MPI processes; with more than one, the JSON also has
    double allreduce_s_per_step = 0; // the time a step spent summing gradients across them
    std::vector<float> val_similarity, val_label;  // for pictures; not in the JSON line
    std::string to_json() const;                   // one line of metrics.jsonl
};

struct Progress {
    int epoch, epochs;
    std::int64_t step, steps;
    double loss, samples_per_s, eta_s;
};

struct TrainOptions {
    std::string out_dir;               // metrics.jsonl and checkpoint.safetensors go here
    bool resume = false;               // continue from out_dir/checkpoint.safetensors
    std::string init_checkpoint;       // start from these weights
    // Start from these weights, by parameter name (Model::fit passes the
    // model's own, so fit continues where the model is). Below --resume and
    // init_checkpoint; without any of the three, train.seed's initialization.
    std::map<std::string, Tensor> initial_parameters;
    bool allow_positive_only = false;  // skip the guard against positive-only data
    std::function<void(const Progress&)> on_step;
    std::function<void(const EpochMetrics&)> on_epoch;
    std::function<void(const std::string&)> on_warning;
    // Read after every step: when true, the run writes a checkpoint (mid-epoch
    // if need be) and throws TrainingInterrupted. The CLI sets it on SIGINT.
    const std::atomic<bool>* stop = nullptr;
    // The ranks of a data-parallel run (engine/train/communicator.hpp); nullptr: one process.
    // on_step, on_epoch and on_warning run on rank 0 only; on_finish on every rank.
    Communicator* communicator = nullptr;
    bool profile = false;                              // time every node's forward and backward in the training steps
    std::function<void(const Executor&)> on_finish;   // after the last epoch, e.g. to read Executor::profile()
};

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
