// train.length_buckets at the start of a run. The token inputs of the task
// (Task::length_bucketed_inputs) may be cut to each batch's longest text
// (Executor::allow_shorter), and every length met keeps its plan. Cutting
// padding must not change what the model computes: that holds where every op
// over time reads each text's real steps only (lstm, gru, bidirectional,
// max_pool and mean_pool after an embedding), and fails for one that reads
// the padding. So for each token input the epoch's batch that cuts it the most runs both ways first; the first
// node whose output differs, or a model that cannot take the shorter input,
// is an error at train.length_buckets' place in the spec.
#pragma once

#include <cstdint>

#include "engine/core/executor.hpp"
#include "engine/spec/builder.hpp"
#include "engine/train/task.hpp"

namespace graphrun::train {

// After the epoch is planned (`count` samples) and the parameters are set.
// Returns how many token inputs the epoch cuts, each checked (0 without
// train.length_buckets, or where no batch of the epoch is cut).
int start_length_buckets(Executor& ex, const Task& task, const BuiltGraph& built, const spec::TrainSpec& cfg, std::int64_t count);

}  // namespace graphrun::train
