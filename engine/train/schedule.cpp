#include "engine/train/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace graphrun::train {

LrSchedule::LrSchedule(const spec::ScheduleSpec& spec, double lr, std::int64_t run_steps) : spec_(spec), lr_(lr), run_steps_(run_steps) {}

double LrSchedule::multiplier(std::int64_t s) const {
    // Doubles in HF's order of operations, so the rates are PyTorch's to the last bit.
    const double step = static_cast<double>(s), warmup = static_cast<double>(spec_.warmup), total = static_cast<double>(run_steps_);
    if (s < spec_.warmup) return step / std::max(1.0, warmup);
    if (spec_.decay == "constant") return 1.0;
    const double span = std::max(1.0, total - warmup);
    double f = 0;
    if (spec_.decay == "linear") {
        f = std::max(0.0, (total - step) / span);
    } else {  // cosine
        const double progress = (step - warmup) / span;
        f = std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
    }
    const double floor = spec_.min_lr / lr_;
    return f * (1.0 - floor) + floor;
}

std::int64_t run_steps(const spec::TrainSpec& train, std::int64_t steps_per_epoch) {
    const std::int64_t all = train.epochs * steps_per_epoch;
    return train.max_steps > 0 ? std::min(all, train.max_steps) : all;
}

}  // namespace graphrun::train
