// How many threads graphrun may use (engine/core/threads.hpp says how it uses them).
#pragma once

#include <memory>

namespace graphrun {

// While it lives, graphrun runs on at most `threads` threads (0: every core).
class ThreadBudget {
public:
    explicit ThreadBudget(int threads);
    ~ThreadBudget();
    ThreadBudget(const ThreadBudget&) = delete;
    ThreadBudget& operator=(const ThreadBudget&) = delete;

private:
    struct Limit;  // oneTBB's global_control, kept out of the public headers
    std::unique_ptr<Limit> limit_;
};

}  // namespace graphrun
