#include "engine/core/threads.hpp"

#include <algorithm>

#include <omp.h>
#include <tbb/global_control.h>
#include <tbb/task_group.h>
#include <tbb/task_arena.h>

namespace graphrun {

struct ThreadBudget::Limit {
    tbb::global_control control;
};

ThreadBudget::ThreadBudget(int threads) {
    if (threads > 0)
        limit_ = std::unique_ptr<Limit>(new Limit{{tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads)}});
}

ThreadBudget::~ThreadBudget() = default;

int parallelism() {
    const auto limit = tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
    return std::max(1, std::min(tbb::this_task_arena::max_concurrency(), static_cast<int>(limit)));
}

std::pair<std::int64_t, std::int64_t> split_rows(std::int64_t n, int parts, int p) {
    const std::int64_t base = n / parts, extra = n % parts;
    return {p * base + std::min<std::int64_t>(p, extra), base + (p < extra ? 1 : 0)};
}

void use_one_openmp_thread() {
    if (omp_get_max_threads() != 1) omp_set_num_threads(1);
}

int batch_parts(std::int64_t n) {
    constexpr std::int64_t rows_per_part = 16, min_parts = 2, max_parts = 8;
    const std::int64_t parts = std::clamp<std::int64_t>((n + rows_per_part - 1) / rows_per_part, min_parts, max_parts);
    return static_cast<int>(std::max<std::int64_t>(1, std::min(parts, n)));
}

namespace {
thread_local bool parts_in_sequence = false;
}  // namespace

SequentialParts::SequentialParts() : before_(parts_in_sequence) { parts_in_sequence = true; }
SequentialParts::~SequentialParts() { parts_in_sequence = before_; }

void run_parts(int parts, const std::function<void(int)>& part) {
    if (parts == 1 || parts_in_sequence) {
        for (int p = 0; p < parts; ++p) part(p);
        return;
    }
    // Part 0 in this thread, the others as tasks; each task is made before the
    // order is stated (TaskOrder), so it reads nothing written after the hand-over.
    tbb::task_group group;
    for (int p = 1; p < parts; ++p) {
        tbb::task_handle task = group.defer([&part, p] {
            TaskOrder::started();
            struct Ended {  // also when the part throws
                ~Ended() { TaskOrder::ended(); }
            } ended;
            use_one_openmp_thread();
            part(p);
        });
        TaskOrder::handing_over();
        group.run(std::move(task));
    }
    try {
        part(0);
    } catch (...) {
        group.wait();
        TaskOrder::waited();
        throw;
    }
    group.wait();
    TaskOrder::waited();
}

}  // namespace graphrun
