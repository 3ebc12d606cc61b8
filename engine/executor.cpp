#include "engine/executor.hpp"

#include <fmt/format.h>

namespace graphrun {

Executor::Executor(const Graph& graph) : graph_(&graph) {
    const auto& nodes = graph.nodes();
    values_.resize(nodes.size());
    grads_.resize(nodes.size());
    states_.resize(nodes.size());
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        values_[i].resize(nodes[i].outputs.size());
        grads_[i].resize(nodes[i].outputs.size());
        if (nodes[i].op) states_[i] = nodes[i].op->make_state();
    }
}

void Executor::check_leaf(int node, const Tensor& value) const {
    const Node& n = graph_->node(node);
    const TensorType& want = n.outputs[0];
    if (!value.defined())
        throw Error(fmt::format("{} '{}' has no value: set it before forward()", n.op_name, n.name));
    if (value.dtype() != want.dtype || !shapes_agree(value.shape(), want.shape))
        throw Error(fmt::format("{} '{}' expects {}, got {}", n.op_name, n.name, to_string(want), to_string(value.type())));
}

void Executor::set(const std::string& node_name, Tensor value) { set(graph_->index_of(node_name), std::move(value)); }

void Executor::set(int node, Tensor value) {
    const Node& n = graph_->node(node);
    if (n.kind == NodeKind::op) throw Error(fmt::format("node '{}' is computed by the graph ({}); only inputs and parameters are set", n.name, n.op_name));
    check_leaf(node, value);
    values_[static_cast<std::size_t>(node)][0] = std::move(value);
    forward_done_ = false;
}

void Executor::ensure(Tensor& slot, const TensorType& type) {
    if (!slot.defined() || slot.type() != type) slot = Tensor(type);
}

void Executor::forward() {
    run_forward(std::vector<char>(graph_->nodes().size(), 1));
    forward_done_ = true;
}

void Executor::forward(const std::vector<ValueRef>& targets) {
    const auto& nodes = graph_->nodes();
    std::vector<char> needed(nodes.size(), 0);
    for (const auto& v : targets) needed.at(static_cast<std::size_t>(v.node)) = 1;
    for (std::size_t i = nodes.size(); i-- > 0;)
        if (needed[i])
            for (const auto& in : nodes[i].inputs) needed[static_cast<std::size_t>(in.node)] = 1;
    run_forward(needed);
    forward_done_ = false;  // a partial forward leaves other values stale
}

void Executor::run_forward(const std::vector<char>& needed) {
    const auto& nodes = graph_->nodes();
    std::vector<TensorType> in_types;
    std::vector<Tensor> inputs;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        const Node& n = nodes[i];
        if (!needed[i]) continue;
        if (!n.op) {
            check_leaf(static_cast<int>(i), values_[i][0]);
            continue;
        }
        in_types.clear();
        inputs.clear();
        for (const auto& v : n.inputs) {
            inputs.push_back(value(v));
            in_types.push_back(inputs.back().type());
        }
        // Re-infer with the concrete shapes: the batch is known only now.
        std::vector<TensorType> out_types;
        try {
            out_types = n.op->infer(in_types);
        } catch (const ShapeError& e) {
            throw Error(fmt::format("node '{}' ({}): {}", n.name, n.op_name, e.what()));
        }
        for (std::size_t k = 0; k < out_types.size(); ++k) ensure(values_[i][k], out_types[k]);
        try {
            n.op->forward({inputs, values_[i], states_[i].get()});
        } catch (const Error& e) {
            throw Error(fmt::format("node '{}' ({}): {}", n.name, n.op_name, e.what()));
        }
    }
}

const Tensor& Executor::value(ValueRef v) const {
    return values_.at(static_cast<std::size_t>(v.node)).at(static_cast<std::size_t>(v.output));
}

const Tensor& Executor::value(const std::string& node_name) const { return value(ValueRef{graph_->index_of(node_name), 0}); }

void Executor::backward(ValueRef scalar_loss) {
    const Tensor& loss = value(scalar_loss);
    if (loss.numel() != 1)
        throw Error(fmt::format("the loss '{}' must be a scalar, got shape {}", graph_->node(scalar_loss).name, to_string(loss.shape())));
    Tensor seed(loss.type());
    seed.fill(1.0f);
    backward({{scalar_loss, seed}});
}

void Executor::backward(const std::vector<std::pair<ValueRef, Tensor>>& seeds) {
    if (!forward_done_) throw Error("backward() needs a forward() with the current inputs first");
    const auto& nodes = graph_->nodes();
    const std::size_t count = nodes.size();

    // Which nodes the seeds depend on: walk the graph backwards from them.
    std::vector<char> relevant(count, 0);
    for (const auto& [v, seed] : seeds) relevant[static_cast<std::size_t>(v.node)] = 1;
    for (std::size_t i = count; i-- > 0;)
        if (relevant[i])
            for (const auto& in : nodes[i].inputs) relevant[static_cast<std::size_t>(in.node)] = 1;

    // Zero the gradient memory once; every op's backward then accumulates.
    for (std::size_t i = 0; i < count; ++i) {
        // Parameters always get a gradient (zeros when the loss does not reach them).
        if (!nodes[i].requires_grad || (!relevant[i] && nodes[i].kind != NodeKind::parameter)) continue;
        for (std::size_t k = 0; k < nodes[i].outputs.size(); ++k) {
            ensure(grads_[i][k], values_[i][k].type());
            grads_[i][k].zero();
        }
    }
    for (const auto& [v, seed] : seeds) {
        Tensor& g = grads_[static_cast<std::size_t>(v.node)][static_cast<std::size_t>(v.output)];
        if (!g.defined()) continue;  // the value depends on no parameter
        if (seed.type() != g.type())
            throw Error(fmt::format("seed gradient for '{}' is {}, the value is {}", nodes[static_cast<std::size_t>(v.node)].name,
                                    to_string(seed.type()), to_string(g.type())));
        const float* s = seed.f32();
        float* d = g.f32();
        for (std::int64_t j = 0; j < g.numel(); ++j) d[j] += s[j];
    }

    std::vector<Tensor> inputs;
    std::vector<Tensor*> input_grads;
    for (std::size_t i = count; i-- > 0;) {
        const Node& n = nodes[i];
        if (!n.op || !relevant[i] || !n.requires_grad) continue;
        inputs.clear();
        input_grads.clear();
        for (const auto& in : n.inputs) {
            inputs.push_back(value(in));
            const bool wanted = nodes[static_cast<std::size_t>(in.node)].requires_grad;
            input_grads.push_back(wanted ? &grads_[static_cast<std::size_t>(in.node)][static_cast<std::size_t>(in.output)] : nullptr);
        }
        try {
            n.op->backward({inputs, values_[i], grads_[i], input_grads, states_[i].get()});
        } catch (const Error& e) {
            throw Error(fmt::format("node '{}' ({}) backward: {}", n.name, n.op_name, e.what()));
        }
    }
}

const Tensor& Executor::grad(int parameter_node) const {
    const Node& n = graph_->node(parameter_node);
    if (n.kind != NodeKind::parameter) throw Error(fmt::format("node '{}' is not a parameter", n.name));
    const Tensor& g = grads_[static_cast<std::size_t>(parameter_node)][0];
    if (!g.defined()) throw Error(fmt::format("parameter '{}' has no gradient: run backward() first", n.name));
    return g;
}

const Tensor& Executor::grad(const std::string& parameter_name) const { return grad(graph_->index_of(parameter_name)); }

}  // namespace graphrun
