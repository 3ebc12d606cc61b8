#include "engine/core/threads.hpp"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <vector>

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

namespace {

// Every run_parts in flight whose parts are not all claimed yet. A thread that
// runs parts takes the next one of the costliest such call (longest processing
// time first), its own or another node's: so two threads start the long
// parts (a 600-step LSTM's) before the short ones (a 52-step LSTM's) and end
// together. With oneTBB's own order, a thread ran its own short parts first
// and came to a long one late while the other thread waited for it. Who runs
// a part changes nothing that it computes.
struct PartJob {
    const std::function<void(int)>* part = nullptr;
    int parts = 0;
    double part_cost = 0;
    int claimed = 0;  // under the pool's mutex
    std::mutex mutex;  // guards what follows
    std::condition_variable finished;
    int unfinished = 0;
    std::exception_ptr failed;  // the first exception of a part
};

struct PartPool {
    std::mutex mutex;
    std::vector<PartJob*> open;  // in the order they came: among equal costs the first wins
};

PartPool& part_pool() {
    static PartPool pool;
    return pool;
}

// Runs one unclaimed part of the costliest open job; false if there is none.
bool run_costliest_part() {
    PartPool& pool = part_pool();
    PartJob* job = nullptr;
    int p = 0;
    {
        const std::lock_guard lock(pool.mutex);
        const auto best = std::max_element(pool.open.begin(), pool.open.end(),
                                           [](const PartJob* a, const PartJob* b) { return a->part_cost < b->part_cost; });
        if (best == pool.open.end()) return false;
        job = *best;
        p = job->claimed++;
        if (job->claimed == job->parts) pool.open.erase(best);
    }
    std::exception_ptr failed;
    try {
        (*job->part)(p);
    } catch (...) {
        failed = std::current_exception();
    }
    // Under the job's mutex to the end: its caller returns (and the job ends)
    // only once it holds that mutex after the last part.
    const std::lock_guard lock(job->mutex);
    if (failed && !job->failed) job->failed = failed;
    if (--job->unfinished == 0) job->finished.notify_all();
    return true;
}

}  // namespace

void run_parts(int parts, double part_cost, const std::function<void(int)>& part) {
    if (parts <= 0) return;
    if (parts == 1 || parts_in_sequence) {
        for (int p = 0; p < parts; ++p) part(p);
        return;
    }
    // Idle threads join through tasks that each run one part (of whichever
    // call is costliest then): one task for every part but the caller's first,
    // so a call of more parts than threads keeps every thread busy. The tasks
    // are made before the job is published (nothing can throw between that
    // and the end of the call), and each before the order is stated
    // (TaskOrder), so it reads nothing written after the hand-over.
    tbb::task_group group;
    std::vector<tbb::task_handle> helpers;
    for (int k = 1; k < parts; ++k)
        helpers.push_back(group.defer([] {
            TaskOrder::started();
            struct Ended {
                ~Ended() { TaskOrder::ended(); }
            } ended;
            use_one_openmp_thread();
            run_costliest_part();
        }));
    PartJob job;
    job.part = &part;
    job.parts = parts;
    job.part_cost = part_cost;
    job.unfinished = parts;
    {
        const std::lock_guard lock(part_pool().mutex);
        part_pool().open.push_back(&job);
    }
    for (tbb::task_handle& task : helpers) {
        TaskOrder::handing_over();
        group.run(std::move(task));
    }
    // This thread runs parts, the costliest first (its own, or another call's
    // once its own are all claimed: a node's time in a profile may hold
    // another node's part), while this call's have not all finished; then it
    // sleeps until the threads running this call's last parts are done
    // (spinning took their core's time).
    const auto done = [&job] {
        const std::lock_guard lock(job.mutex);
        return job.unfinished == 0;
    };
    while (!done() && run_costliest_part()) {
    }
    {
        std::unique_lock lock(job.mutex);
        job.finished.wait(lock, [&job] { return job.unfinished == 0; });
    }
    group.wait();
    TaskOrder::waited();
    if (job.failed) std::rethrow_exception(job.failed);
}

}  // namespace graphrun
