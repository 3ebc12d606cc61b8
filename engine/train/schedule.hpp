// The learning rate of each optimizer step (train.schedule): a linear warm-up
// from 0, then constant, or a linear or cosine decay to min_lr at the run's
// last step. The multipliers are HuggingFace transformers' (LambdaLR lambdas
// of get_constant_schedule_with_warmup, get_linear_schedule_with_warmup and
// get_cosine_schedule_with_warmup), at step s counted from 0 for the run's
// first optimizer step, as LambdaLR counts. With W warm-up steps, S steps in
// the run and r = min_lr / lr:
//   s < W:     f = s / max(1, W)                       (the first step's rate is 0)
//   constant:  f = 1
//   linear:    f = max(0, (S - s) / max(1, S - W)) (1 - r) + r
//   cosine:    f = max(0, (1 + cos(pi (s - W) / max(1, S - W))) / 2) (1 - r) + r
//   lr(s) = lr f
// (r = 0 gives HF's functions exactly; a nonzero r is what HF's
// get_cosine_with_min_lr_schedule_with_warmup does with min_lr_rate.)
// A function of the step count alone, which checkpoints record: a resumed run
// continues it exactly.
#pragma once

#include <cstdint>

#include "engine/spec/spec.hpp"

namespace graphrun::train {

class LrSchedule {
public:
    // `lr`: train.optimizer.lr; `run_steps`: S, the optimizer steps of the whole run.
    LrSchedule(const spec::ScheduleSpec& spec, double lr, std::int64_t run_steps);
    // The rate of optimizer step s (0 for the run's first).
    double lr(std::int64_t s) const { return lr_ * multiplier(s); }
    double multiplier(std::int64_t s) const;
    std::int64_t run_steps() const { return run_steps_; }

private:
    spec::ScheduleSpec spec_;
    double lr_;
    std::int64_t run_steps_;
};

// S: epochs * steps per epoch, or max_steps when it is set and smaller.
std::int64_t run_steps(const spec::TrainSpec& train, std::int64_t steps_per_epoch);

}  // namespace graphrun::train
