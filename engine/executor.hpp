// Runs a Graph: forward in topological order, then reverse-mode autodiff in
// reverse order. This is the plain sequential executor; it owns every value,
// every gradient and every node's OpState, and reuses their memory while the
// shapes stay the same. One Executor is used by one thread at a time.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "engine/graph.hpp"

namespace graphrun {

class Executor {
public:
    explicit Executor(const Graph& graph);

    // Feeds a graph input or sets a parameter's value. The dtype must match
    // and the shape must agree with the declared one (any batch size where the
    // batch was left open). The tensor is shared, not copied.
    void set(const std::string& node_name, Tensor value);
    void set(int node, Tensor value);

    // Runs every node. Every input and parameter must have been set.
    void forward();
    // Runs only the nodes the targets depend on; only their inputs need be set
    // (e.g. one Siamese branch, to embed sequences). backward() needs forward().
    void forward(const std::vector<ValueRef>& targets);

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

    const Graph& graph() const { return *graph_; }

private:
    void run_forward(const std::vector<char>& needed);
    void check_leaf(int node, const Tensor& value) const;
    static void ensure(Tensor& slot, const TensorType& type);

    const Graph* graph_;
    std::vector<std::vector<Tensor>> values_;  // [node][output]
    std::vector<std::vector<Tensor>> grads_;   // [node][output]
    std::vector<std::unique_ptr<OpState>> states_;
    bool forward_done_ = false;
};

}  // namespace graphrun
