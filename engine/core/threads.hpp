// How many threads graphrun uses. oneDNN's primitives run on OpenMP and the
// executor's tasks on oneTBB; the executor runs every primitive with one
// OpenMP thread and gets its parallelism from tasks (independent nodes, and the
// lstm's batch cut into parts), so the oneTBB limit bounds the whole process.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

#include "graphrun/thread_budget.hpp"

namespace graphrun {

// The threads graphrun may use now: the budget, or every core without one.
// It decides who computes what, never what is computed: no result depends on it.
int parallelism();

// How many parts an op cuts a batch of n rows into: a function of n alone, so
// the parts, and the order their partial sums are added in, are the same for
// any thread count. Two parts at least (two threads can share even a lone
// LSTM), more for large batches at up to 16 rows a part (oneDNN's per-step
// GEMMs are too small to split well across threads), at most 8, never more
// than the rows.
int batch_parts(std::int64_t n);

// Runs part(0) .. part(parts - 1) on this thread and on idle oneTBB threads,
// each oneDNN primitive in them with one OpenMP thread; returns when all have
// finished, rethrowing a part's exception. `part_cost` (any unit, the same for
// every caller: graphrun's ops give FLOPs) orders the parts of concurrent
// calls: a thread free to run one takes the costliest call's first, and helps
// other calls while its own last parts finish elsewhere. Under a
// SequentialParts (the sequential executor) they run in order, in this thread.
void run_parts(int parts, double part_cost, const std::function<void(int)>& part);

// While one lives, run_parts in this thread runs its parts one after another.
class SequentialParts {
public:
    SequentialParts();
    ~SequentialParts();
    SequentialParts(const SequentialParts&) = delete;
    SequentialParts& operator=(const SequentialParts&) = delete;

private:
    bool before_;
};

// Rows [first, first + count) of part p when n rows are cut into `parts`
// consecutive parts whose sizes differ by at most one (the lstm's batch parts,
// an MPI rank's share of a batch).
std::pair<std::int64_t, std::int64_t> split_rows(std::int64_t n, int parts, int p);

// oneTBB's own synchronization is invisible to ThreadSanitizer: Debian's
// libtbb is not instrumented, so a task would look unordered with the code
// that spawned it and with the code that waited for it. A TaskOrder restates
// the order oneTBB guarantees with one atomic the sanitizer sees: bumped after
// a task is made (task_group::defer, which copies its closure) and before it
// is scheduled, and when it ends; read when it starts and after the wait. A
// task made after the bump (group.run(f) copies f after any bump before it)
// would read its own closure unordered, which ThreadSanitizer reported once in
// about eight runs. Outside a ThreadSanitizer build it compiles to nothing.
#if defined(__SANITIZE_THREAD__)  // GCC
#define GRAPHRUN_THREAD_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)  // clang
#define GRAPHRUN_THREAD_SANITIZER 1
#endif
#endif
class TaskOrder {
public:
    // Static, on one atomic for the whole process: a task must not have to
    // read anything of its spawner's (a captured reference) before the order
    // is stated.
#if defined(GRAPHRUN_THREAD_SANITIZER)
    static void handing_over() { count().fetch_add(1, std::memory_order_acq_rel); }
    static void started() { (void)count().load(std::memory_order_acquire); }
    static void ended() { count().fetch_add(1, std::memory_order_acq_rel); }
    static void waited() { (void)count().load(std::memory_order_acquire); }

private:
    static std::atomic<std::uint64_t>& count() {
        static std::atomic<std::uint64_t> n{0};
        return n;
    }
#else
    static void handing_over() {}
    static void started() {}
    static void ended() {}
    static void waited() {}
#endif
};

// Gives the calling thread's oneDNN primitives one OpenMP thread (see above).
void use_one_openmp_thread();

}  // namespace graphrun
