// What a training run feeds the graph and what it measures. The trainer's
// loop (engine/train/trainer.cpp: batches, optimizer, clipping, checkpoints,
// resume, progress, metrics.jsonl, MPI) knows only this interface; the spec's
// `task` picks one:
//   siamese  (engine/train/siamese_task.cpp)  pairs with sampled negatives,
//            the guard against positive-only data, the cosine lint, AUC,
//            similar/dissimilar similarity and the embeddings' spread
//   classify (engine/train/classify_task.cpp) samples with a class label,
//            accuracy and macro F1
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/core/executor.hpp"
#include "engine/spec/builder.hpp"
#include "engine/text/tokenizer.hpp"
#include "engine/train/communicator.hpp"
#include "graphrun/training.hpp"

namespace graphrun::train {

// The seed of epoch `epoch`'s draws (order, negatives) from train.seed: every
// rank and every resumed run draws the same.
inline std::uint64_t epoch_seed(std::uint64_t seed, int epoch) { return seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(epoch) + 1; }

// The vocabulary of the embedding that reads an input, or 0 when none does.
std::int64_t embedding_vocabulary(const Graph& graph, int input);

// One batch: a tensor for each graph input, `rows` rows each.
struct Batch {
    std::vector<int> nodes;       // the graph's input nodes
    std::vector<Tensor> tensors;  // [k] for nodes[k]: (rows, the input's shape)
    std::int64_t rows = 0;
    std::vector<Tensor> declared;  // [k] at the declared shape: tensors[k] is it, or a narrower view of its memory (set_width)

    // Tensors of `rows` rows for every input of the graph.
    static Batch for_inputs(const Graph& graph, std::int64_t rows);
    void feed(Executor& executor) const;
    Tensor& of(int node);
    const Tensor& of(int node) const;
    // Makes input `node`'s tensor (rows, width), a view of the declared one's
    // memory (no allocation in a step): a token input cut to its batch's longest text.
    void set_width(int node, std::int64_t width);
};

// What a task's figure is, for the epoch line and for choosing the best checkpoint.
struct MetricInfo {
    std::string name;
    std::string format;  // "{:.3f}"
    bool higher_is_better = true;
};

class Task {
public:
    virtual ~Task() = default;

    // How the task turns text into ids (saved into the run's folder), if it reads text.
    virtual const text::Tokenizer* tokenizer() const { return nullptr; }
    // What `graphrun check` says of the data (counts, lengths), and what the
    // trainer warns of before the first step (texts cut short).
    virtual std::vector<std::string> data_report() const { return {}; }
    virtual std::vector<std::string> data_warnings() const { return {}; }
    // After a validation pass: the cut that decides (similar above it), chosen
    // on the validation samples, for tasks that decide by a threshold.
    virtual std::optional<double> decision_threshold() const { return std::nullopt; }

    // The figures end_validation reports, in order; the first is train.select's default.
    virtual const std::vector<MetricInfo>& metrics() const = 0;

    // Plans epoch `epoch` (1-based; negatives and order drawn from train.seed
    // and the epoch alone, so every rank and every resume plans the same) and
    // returns how many training samples it has.
    virtual std::int64_t plan_epoch(int epoch) = 0;
    // Samples [first, first + batch.rows) of the planned epoch into the batch.
    // With length buckets, the token inputs' tensors are cut to the batch's
    // longest text (Batch::set_width).
    virtual void fill_training(std::int64_t first, Batch& batch) const = 0;
    // The token inputs train.length_buckets cuts (axis 1), or none.
    virtual std::vector<int> length_bucketed_inputs() const { return {}; }

    // Per training step, a few sums the task keeps (summed over the ranks
    // before after_step sees them), e.g. the embeddings' spread.
    virtual std::size_t step_sums() const { return 0; }
    virtual void measure_step(const Executor& /*executor*/, std::span<double> /*sums*/) const {}
    // The epoch's running figures; a warning (e.g. collapse) through `warn`.
    virtual void after_step(std::span<const double> /*sums*/, int /*epoch*/, std::int64_t /*step*/,
                            const std::function<void(const std::string&)>& /*warn*/) {}
    // What the epoch's steps add to its metrics (the spread), and where a
    // stopped epoch's running sums go in a checkpoint and come back from.
    virtual void end_training_epoch(EpochMetrics& /*metrics*/) {}
    virtual std::map<std::string, std::string> save_epoch_sums() const { return {}; }
    virtual void restore_epoch_sums(const std::map<std::string, std::string>& /*metadata*/) {}
    virtual void start_epoch_sums() {}

    // Validation: held out, never trained on, the same samples every epoch.
    // Without a validation loss (the loss means nothing on the validation
    // samples), val_loss is left out and cannot be selected.
    virtual bool has_validation_loss() const { return true; }
    virtual std::int64_t validation_size() const = 0;
    virtual void fill_validation(std::int64_t first, Batch& batch) const = 0;
    // The values a validation forward must keep (the loss is kept anyway).
    virtual std::vector<ValueRef> validation_targets() const = 0;
    virtual void start_validation() = 0;
    virtual void observe_validation(const Executor& executor, const Batch& batch) = 0;
    // Sums the ranks' observations and fills the figures.
    virtual void end_validation(Communicator& communicator, EpochMetrics& metrics) = 0;
};

// The task the spec names, with its data loaded and checked (Error with the
// file and what was expected). `options` carries allow_positive_only. With
// `evaluation_data` (a path, or "" for the spec's data.test) its validation
// samples are that held-out data instead, and no training data is read.
std::unique_ptr<Task> make_task(const spec::Spec& spec, const BuiltGraph& built, const TrainOptions& options,
                                const std::optional<std::string>& evaluation_data);

// Each task's maker, for make_task.
std::unique_ptr<Task> make_siamese_task(const spec::Spec& spec, const BuiltGraph& built, const TrainOptions& options);
std::unique_ptr<Task> make_classify_task(const spec::Spec& spec, const BuiltGraph& built, const std::optional<std::string>& evaluation_data);

}  // namespace graphrun::train
