// Runs a Graph: forward, then reverse-mode autodiff. With Schedule::tasks each
// pass is a task graph on oneTBB: a node runs as soon as the nodes it depends
// on have finished, so independent work (the two Siamese branches, and their
// backward passes) runs at once; Schedule::sequential runs the same plan node
// by node in the calling thread. One Executor is used by one thread at a time;
// it runs its tasks in the calling thread's oneTBB arena (see
// engine/core/threads.hpp for the thread budget).
//
// Each forward picks the plan (engine/core/plan.hpp) of its input shapes, mode
// and wanted outputs, compiling it the first time: a plan owns its buffers and
// its nodes' OpStates (with their oneDNN primitives), so a step of a shape
// seen before allocates nothing and creates no primitive.
//
// Results depend on neither the schedule nor the thread count: a value used
// by several nodes gets one gradient buffer per use, summed in graph order,
// and an op that cuts its batch cuts it by the batch size alone (batch_parts).
#pragma once

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/graph.hpp"
#include "engine/core/plan.hpp"

namespace graphrun {

class Executor {
public:
    // training keeps what backward needs (oneDNN workspaces); inference does
    // not, and is cheaper in time and memory. backward() needs a training forward.
    using Mode = RunMode;
    enum class Schedule { tasks, sequential };

    explicit Executor(const Graph& graph, Schedule schedule = Schedule::tasks);
    ~Executor();

    // Feeds a graph input or sets a parameter's value. The dtype must match
    // and the shape must agree with the declared one (any batch size where the
    // batch was left open). The tensor is shared, not copied.
    void set(const std::string& node_name, Tensor value);
    void set(int node, Tensor value);

    // Lets an input's `axis` be shorter than declared (1 .. the declared size),
    // for batches cut to their longest text (train.length_buckets): the declared
    // size is the longest the graph takes, each length met gets its own plan.
    // Whether the graph gives the same results at every length is the caller's
    // to know (the trainer checks it on a batch).
    void allow_shorter(int input_node, int axis);
    // Plans kept before the least recently used is dropped (default 8); a
    // trainer that meets one plan per length bucket keeps them all.
    void set_plan_capacity(std::size_t plans) { plan_capacity_ = std::max<std::size_t>(plans, 1); }

    // Runs every node. Every input and parameter must have been set.
    // What random draws in training forwards (dropout) start from: a seed, the
    // step (the trainer's optimizer step, so a resumed run draws as one never
    // stopped) and the batch's first row among all ranks' rows. Every node
    // mixes in its own name (ForwardArgs::draw_seed).
    void set_draws(std::uint64_t seed, std::uint64_t step, std::int64_t first_row = 0) {
        draw_seed_ = seed;
        draw_step_ = step;
        draw_first_row_ = first_row;
    }

    void forward(Mode mode = Mode::training);
    // Runs only the nodes the targets depend on; only their inputs need be set
    // (e.g. one Siamese branch, to embed sequences). backward() needs forward().
    // In inference only the targets' values stay readable: the others' memory
    // is reused within the pass.
    void forward(const std::vector<ValueRef>& targets, Mode mode = Mode::training);

    // The plan the last forward ran; throws before any forward.
    const Plan& plan() const;
    // For tests: fill the value buffers of every plan compiled from now on
    // with NaN, so an op that leaves part of its output unwritten (and so
    // would read a reused buffer's old contents) shows.
    static bool poison_new_buffers;

    // Compiled plans held, and bytes held by their op states (workspaces,
    // scratchpads, primitives' buffers) as the ops report them.
    std::size_t plans() const { return compiled_.size(); }
    std::int64_t state_bytes() const;

    const Tensor& value(ValueRef v) const;
    const Tensor& value(const std::string& node_name) const;  // output 0

    // Gradient of a scalar value (seed 1) with respect to every parameter it
    // depends on. Only nodes on a path from a parameter to the loss run their
    // backward; inputs that need no gradient get none.
    void backward(ValueRef scalar_loss);
    // The general form: a seed gradient for each named value; the result is the
    // gradient of sum_k <seed_k, value_k>.
    void backward(const std::vector<std::pair<ValueRef, Tensor>>& seeds);

    // The gradient of a parameter after backward(); zeros when the loss does
    // not depend on it.
    const Tensor& grad(int parameter_node) const;
    const Tensor& grad(const std::string& parameter_name) const;
    // The gradient of any value after backward(), or nullptr where none was computed.
    const Tensor* gradient(ValueRef v) const;

    const Graph& graph() const { return *graph_; }

    // Per-node wall time of forward and backward, summed over the calls made
    // while profiling is on (each node's own time: with parallel tasks the
    // times of different nodes overlap). Off by default; costs two clock reads a node.
    struct NodeTime {
        double forward_s = 0, backward_s = 0;
        std::int64_t forward_calls = 0, backward_calls = 0;
        double forward_flops = 0, backward_flops = 0;  // as the op counts them (Op::forward_flops)
    };
    void set_profiling(bool on);  // pauses and resumes; the sums stay
    void reset_profile();
    const std::vector<NodeTime>& profile() const { return times_; }

private:
    // Where the gradient of one use of a value goes: the value's own gradient
    // when it has one user, else a buffer of this use's own.
    struct Use {
        int consumer, slot;
    };

    struct Compiled;  // a plan with its buffers and op states

    void run_forward(const std::vector<char>& needed, const std::vector<char>& keep, Mode mode);
    Compiled& compiled_for(const std::vector<char>& needed, const std::vector<char>& keep, Mode mode);
    void forward_node(int node, Mode mode);
    std::uint64_t draw_seed(const std::string& node_name) const;
    void backward_node(int node, const std::vector<char>& active);
    void check_leaf(int node, const Tensor& value) const;
    template <class Run, class Next>
    void run_pass(const std::vector<char>& participating, const std::vector<int>& order, Run&& run, Next&& next);
    static void ensure(Tensor& slot, const TensorType& type);

    const Graph* graph_;
    Schedule schedule_;
    std::vector<Tensor> leaves_;  // [node] inputs and parameters, as set
    std::vector<std::vector<int>> shorter_axes_;  // [node] axes that may be shorter than declared (allow_shorter)
    std::size_t plan_capacity_ = 8;
    // The dependency structure, found once: each node's distinct consumers and
    // producers (op nodes only), and the uses of each output shared by several nodes.
    std::vector<std::vector<int>> consumers_, producers_;
    std::vector<std::vector<std::vector<Use>>> shared_uses_;  // [node][output], empty when one node uses it
    std::vector<std::unique_ptr<Compiled>> compiled_;         // the plans met so far, least recently used first
    Compiled* current_ = nullptr;                             // the last forward's
    std::unique_ptr<std::atomic<int>[]> pending_;  // unfinished dependencies of each node during a pass
    bool forward_done_ = false;
    bool profiling_ = false;
    std::uint64_t draw_seed_ = 0, draw_step_ = 0;
    std::int64_t draw_first_row_ = 0;
    std::vector<NodeTime> times_;  // [node], written by each node's own task
};

}  // namespace graphrun
