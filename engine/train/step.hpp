// The arithmetic of one training step, shared by the trainer's loop
// (engine/train/trainer.cpp) and Model::train_step, so both train alike:
//   forward_backward -> (the ranks' allreduce, in the trainer) -> apply_gradients.
#pragma once

#include <memory>
#include <string>

#include "graphrun/error.hpp"
#include "engine/core/executor.hpp"
#include "engine/spec/spec.hpp"
#include "engine/train/optimizer.hpp"
#include "graphrun/training.hpp"

namespace graphrun::train {

// The optimizer a spec's train.optimizer describes (Adam, AdamW or SGD, PyTorch's rules).
std::unique_ptr<Optimizer> make_optimizer(const spec::OptimizerSpec& spec);

// Forward on what the executor was fed, then backward from `loss` when the
// loss is finite. Returns the loss; a non-finite one is returned, not thrown,
// because ranks under MPI must first agree to stop (non_finite_loss says why).
float forward_backward(Executor& executor, ValueRef loss);

// "the loss is NaN; the first non-finite value comes from node 'x' (op)".
std::string non_finite_loss(float loss, const Executor& executor);

// With the gradients final: clips their global norm to clip_norm (<= 0: no
// clipping), refuses a non-finite gradient (TrainingFailure: `where`, the
// node whose gradient holds it, then `after`), and applies the optimizer.
void apply_gradients(Executor& executor, Optimizer& optimizer, double clip_norm, const std::string& where, const std::string& after);

// Names the first node (in graph order) whose output holds a NaN or an infinity, or "".
std::string first_non_finite_node(const Executor& executor);
// After backward(): the first node, in the order backward runs (from the loss
// toward the inputs), whose output's gradient holds a NaN or an infinity, or "".
std::string first_non_finite_gradient(const Executor& executor);

}  // namespace graphrun::train
