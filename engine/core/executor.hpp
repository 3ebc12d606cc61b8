// Runs a Graph: forward, then reverse-mode autodiff, each as a task graph on
// oneTBB: a node runs as soon as the nodes it depends on have finished, so
// independent work (the two Siamese branches, and their backward passes) runs
// at once. The executor owns every value, every gradient and every node's
// OpState, and reuses their memory while the shapes stay the same. One
// Executor is used by one thread at a time; it runs its tasks in the calling
// thread's oneTBB arena (see engine/core/threads.hpp for the thread budget).
//
// Results do not depend on the order tasks happen to run in: a value used by
// several nodes gets one gradient buffer per use, summed in graph order.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/graph.hpp"

namespace graphrun {

class Executor {
public:
    // training keeps what backward needs (oneDNN workspaces); inference does
    // not, and is cheaper in time and memory. backward() needs a training forward.
    enum class Mode { training, inference };

    explicit Executor(const Graph& graph);

    // Feeds a graph input or sets a parameter's value. The dtype must match
    // and the shape must agree with the declared one (any batch size where the
    // batch was left open). The tensor is shared, not copied.
    void set(const std::string& node_name, Tensor value);
    void set(int node, Tensor value);

    // Runs every node. Every input and parameter must have been set.
    void forward(Mode mode = Mode::training);
    // Runs only the nodes the targets depend on; only their inputs need be set
    // (e.g. one Siamese branch, to embed sequences). backward() needs forward().
    void forward(const std::vector<ValueRef>& targets, Mode mode = Mode::training);

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

    void run_forward(const std::vector<char>& needed, Mode mode);
    void forward_node(int node, Mode mode);
    void backward_node(int node, const std::vector<char>& active);
    void check_leaf(int node, const Tensor& value) const;
    static void ensure(Tensor& slot, const TensorType& type);

    const Graph* graph_;
    std::vector<std::vector<Tensor>> values_;  // [node][output]
    std::vector<std::vector<Tensor>> grads_;   // [node][output]
    std::vector<std::unique_ptr<OpState>> states_;
    // The dependency structure, found once: each node's distinct consumers and
    // producers (op nodes only), and the uses of each output shared by several nodes.
    std::vector<std::vector<int>> consumers_, producers_;
    std::vector<std::vector<std::vector<Use>>> shared_uses_;  // [node][output], empty when one node uses it
    std::vector<std::vector<Tensor>> use_grads_;              // [consumer][slot] for shared values
    // Per node, reused every step: the input tensors, their types at the last
    // shape inference, the input gradient pointers handed to backward.
    std::vector<std::vector<Tensor>> inputs_;
    std::vector<std::vector<TensorType>> inferred_for_;
    std::vector<std::vector<Tensor*>> input_grads_;
    std::unique_ptr<std::atomic<int>[]> pending_;  // unfinished dependencies of each node during a pass
    bool forward_done_ = false;
    bool profiling_ = false;
    std::vector<NodeTime> times_;  // [node], written by each node's own task
};

}  // namespace graphrun
