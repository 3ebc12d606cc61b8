// How many threads graphrun uses. oneDNN's primitives run on OpenMP and the
// executor's tasks on oneTBB; the executor runs every primitive with one
// OpenMP thread and gets its parallelism from tasks (independent nodes, and the
// lstm's batch cut into parts), so the oneTBB limit bounds the whole process.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

#include "graphrun/thread_budget.hpp"

namespace graphrun {

// The threads graphrun may use now: the budget, or every core without one.
// Ops cut work into this many parts, so a result depends on it (and only on it).
int parallelism();

// Runs part(0) .. part(parts - 1) as oneTBB tasks, each oneDNN primitive in
// them with one OpenMP thread; returns when all have finished.
void run_parts(int parts, const std::function<void(int)>& part);

// Rows [first, first + count) of part p when n rows are cut into `parts`
// consecutive parts whose sizes differ by at most one (the lstm's batch parts,
// an MPI rank's share of a batch).
std::pair<std::int64_t, std::int64_t> split_rows(std::int64_t n, int parts, int p);

// Gives the calling thread's oneDNN primitives one OpenMP thread (see above).
void use_one_openmp_thread();

}  // namespace graphrun
