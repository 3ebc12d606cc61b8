// Training through the library: what Model::fit takes and reports
// (docs/library.md). The same types drive `graphrun train`.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "graphrun/error.hpp"
#include "graphrun/tensor.hpp"

namespace graphrun {
class Executor;
}

namespace graphrun::train {

class Communicator;  // the ranks of a data-parallel run (MPI); not part of the public API

// A run that failed for a reason other than bad input (a non-finite loss or
// gradient). It is an Error like every other graphrun error; the CLI exits 1
// for it and 2 for the others (bad input).
class TrainingFailure : public Error {
public:
    using Error::Error;
};

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

// One figure a task reports for an epoch (absent: not measurable, e.g. no validation data).
struct Metric {
    std::string name;            // "val_auc", "val_accuracy", ...
    std::optional<double> value;
    std::string format;          // fmt format of the value in the epoch line, e.g. "{:.3f}"
};

struct EpochMetrics {
    int epoch = 0;
    double train_loss = 0;
    std::optional<double> val_loss;
    // The task's figures, in its order (task siamese: val_auc, pos_sim,
    // neg_sim, spread; task classify: val_accuracy, val_macro_f1).
    std::vector<Metric> metrics;
    std::optional<double> metric(const std::string& name) const;  // absent also when the task has no such figure
    double samples_per_s = 0;       // training samples a second, all ranks together
    double lr = 0;                   // the learning rate of the epoch's last step (train.schedule)
    int ranks = 1;                   // MPI processes; with more than one, the JSON also has
    double allreduce_s_per_step = 0; // the time a step spent summing gradients across them
    std::vector<float> val_similarity, val_label;  // task siamese, for pictures; not in the JSON line
    // Task classify: the confusion matrix, [truth * classes + predicted] counts, and the classes' names.
    std::vector<double> val_confusion;
    std::vector<std::string> val_classes;
    std::string to_json() const;                   // one line of metrics.jsonl
};

struct Progress {
    int epoch, epochs;
    std::int64_t step, steps;
    double loss, samples_per_s, eta_s;
};

struct TrainOptions {
    std::string out_dir;               // metrics.jsonl, checkpoint.safetensors (last) and best.safetensors go here
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

}  // namespace graphrun::train
