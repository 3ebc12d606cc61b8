#include "engine/core/threads.hpp"

#include <algorithm>

#include <omp.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
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

void run_parts(int parts, const std::function<void(int)>& part) {
    if (parts == 1) {
        part(0);
        return;
    }
    const auto run_part = [&](int p) {
        TaskOrder::started();
        use_one_openmp_thread();
        part(p);
        TaskOrder::ended();
    };
    TaskOrder::handing_over();  // after everything the parts read is written, the lambda too
    tbb::parallel_for(0, parts, run_part, tbb::simple_partitioner());
    TaskOrder::waited();
}

}  // namespace graphrun
