#include "engine/core/executor.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <omp.h>
#include <tbb/task_group.h>

#include "engine/core/accumulate.hpp"
#include "engine/core/threads.hpp"

namespace graphrun {

namespace {

using Clock = std::chrono::steady_clock;

// Runs `run(node)` for every node with participating[node], each once every
// node it waits for has run: pending[node] counts those, and `next(node)`
// lists the nodes that wait for it. Exceptions reach the caller once every
// task has stopped.
template <class Run, class Next>
void run_task_graph(const std::vector<char>& participating, std::atomic<int>* pending, Run&& run, Next&& next) {
    // oneDNN runs on OpenMP; a primitive with several OpenMP threads inside a
    // task would multiply the threads. Parallelism comes from the tasks, so every
    // primitive gets one OpenMP thread (the caller's own setting is restored).
    const int caller_omp_threads = omp_get_max_threads();
    tbb::task_group group;
    struct Chain {
        tbb::task_group& group;
        const std::vector<char>& participating;
        std::atomic<int>* pending;
        Run& run;
        Next& next;
        // Runs a node, then one successor that became ready in the same task
        // (no hand-off), the others as new tasks.
        void operator()(int node) const {
            struct Ended {  // also when the node throws: the waiter sees what it wrote
                ~Ended() { TaskOrder::ended(); }
            } ended;
            use_one_openmp_thread();
            while (node >= 0) {
                run(node);
                int follow = -1;
                for (int s : next(node)) {
                    if (!participating[static_cast<std::size_t>(s)] || pending[s].fetch_sub(1) != 1) continue;
                    if (follow >= 0) spawn(follow);
                    follow = s;
                }
                node = follow;
            }
        }
        void spawn(int node) const {
            TaskOrder::handing_over();
            group.run([chain = *this, node] {
                TaskOrder::started();  // before reading anything the spawner wrote
                chain(node);
            });
        }
    };
    const Chain chain{group, participating, pending, run, next};
    // Find every root before starting any: once one runs, it can bring another
    // node's count to zero, and that node must not be started twice.
    std::vector<int> roots;
    for (std::size_t i = 0; i < participating.size(); ++i)
        if (participating[i] && pending[i].load() == 0) roots.push_back(static_cast<int>(i));
    for (int root : roots) chain.spawn(root);
    try {
        group.wait();
        TaskOrder::waited();
    } catch (...) {
        TaskOrder::waited();
        omp_set_num_threads(caller_omp_threads);
        throw;
    }
    omp_set_num_threads(caller_omp_threads);
}

}  // namespace

Executor::Executor(const Graph& graph) : graph_(&graph) {
    const auto& nodes = graph.nodes();
    const std::size_t count = nodes.size();
    values_.resize(count);
    grads_.resize(count);
    states_.resize(count);
    consumers_.resize(count);
    producers_.resize(count);
    shared_uses_.resize(count);
    use_grads_.resize(count);
    inputs_.resize(count);
    inferred_for_.resize(count);
    input_grads_.resize(count);
    pending_ = std::make_unique<std::atomic<int>[]>(count);
    times_.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
        values_[i].resize(nodes[i].outputs.size());
        grads_[i].resize(nodes[i].outputs.size());
        shared_uses_[i].resize(nodes[i].outputs.size());
        if (nodes[i].op) states_[i] = nodes[i].op->make_state();
        inputs_[i].resize(nodes[i].inputs.size());
        input_grads_[i].resize(nodes[i].inputs.size());
        use_grads_[i].resize(nodes[i].inputs.size());
    }
    // Every use of every output, in graph order.
    std::vector<std::vector<std::vector<Use>>> uses(count);
    for (std::size_t i = 0; i < count; ++i) uses[i].resize(nodes[i].outputs.size());
    for (std::size_t c = 0; c < count; ++c)
        for (std::size_t slot = 0; slot < nodes[c].inputs.size(); ++slot) {
            const ValueRef in = nodes[c].inputs[slot];
            const auto p = static_cast<std::size_t>(in.node);
            uses[p][static_cast<std::size_t>(in.output)].push_back({static_cast<int>(c), static_cast<int>(slot)});
            auto add_once = [](std::vector<int>& list, int x) {
                if (std::find(list.begin(), list.end(), x) == list.end()) list.push_back(x);
            };
            add_once(consumers_[p], static_cast<int>(c));
            add_once(producers_[c], in.node);
        }
    for (std::size_t p = 0; p < count; ++p)
        for (std::size_t k = 0; k < uses[p].size(); ++k) {
            std::vector<int> users;
            for (const Use& u : uses[p][k])
                if (std::find(users.begin(), users.end(), u.consumer) == users.end()) users.push_back(u.consumer);
            if (users.size() > 1) shared_uses_[p][k] = uses[p][k];
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

void Executor::forward(Mode mode) {
    run_forward(std::vector<char>(graph_->nodes().size(), 1), mode);
    forward_done_ = mode == Mode::training;
}

void Executor::forward(const std::vector<ValueRef>& targets, Mode mode) {
    const auto& nodes = graph_->nodes();
    std::vector<char> needed(nodes.size(), 0);
    for (const auto& v : targets) needed.at(static_cast<std::size_t>(v.node)) = 1;
    for (std::size_t i = nodes.size(); i-- > 0;)
        if (needed[i])
            for (const auto& in : nodes[i].inputs) needed[static_cast<std::size_t>(in.node)] = 1;
    run_forward(needed, mode);
    forward_done_ = false;  // a partial forward leaves other values stale
}

void Executor::run_forward(const std::vector<char>& needed, Mode mode) {
    const auto& nodes = graph_->nodes();
    forward_done_ = false;
    // Leaves first: they are set, not computed.
    std::vector<char> ops(nodes.size(), 0);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        if (!needed[i]) continue;
        if (!nodes[i].op) check_leaf(static_cast<int>(i), values_[i][0]);
        else ops[i] = 1;
    }
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        int waits = 0;
        for (int p : producers_[i]) waits += ops[static_cast<std::size_t>(p)];
        pending_[i].store(waits);
    }
    run_task_graph(
        ops, pending_.get(), [&](int node) { forward_node(node, mode); },
        [&](int node) -> const std::vector<int>& { return consumers_[static_cast<std::size_t>(node)]; });
}

void Executor::forward_node(int node, Mode mode) {
    const auto i = static_cast<std::size_t>(node);
    const Node& n = graph_->nodes()[i];
    auto& inputs = inputs_[i];
    bool same_types = inferred_for_[i].size() == inputs.size() && values_[i][0].defined();
    for (std::size_t k = 0; k < inputs.size(); ++k) {
        inputs[k] = value(n.inputs[k]);
        same_types = same_types && inferred_for_[i][k] == inputs[k].type();
    }
    // Re-infer with the concrete shapes when they change: the batch is known only now.
    if (!same_types) {
        std::vector<TensorType> in_types;
        for (const auto& t : inputs) in_types.push_back(t.type());
        std::vector<TensorType> out_types;
        try {
            out_types = n.op->infer(in_types);
        } catch (const ShapeError& e) {
            throw Error(fmt::format("node '{}' ({}): {}", n.name, n.op_name, e.what()));
        }
        for (std::size_t k = 0; k < out_types.size(); ++k) ensure(values_[i][k], out_types[k]);
        inferred_for_[i] = std::move(in_types);
    }
    const auto start = profiling_ ? Clock::now() : Clock::time_point{};
    try {
        n.op->forward({inputs, values_[i], states_[i].get(), mode == Mode::training});
        if (profiling_) {
            times_[i].forward_s += std::chrono::duration<double>(Clock::now() - start).count();
            ++times_[i].forward_calls;
            times_[i].forward_flops += n.op->forward_flops(inferred_for_[i]);
        }
    } catch (const Error& e) {
        inferred_for_[i].clear();  // the outputs may not match the inputs now
        throw Error(fmt::format("node '{}' ({}): {}", n.name, n.op_name, e.what()));
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
    if (!forward_done_) throw Error("backward() needs a forward() in training mode with the current inputs first");
    const auto& nodes = graph_->nodes();
    const std::size_t count = nodes.size();

    // Which nodes the seeds depend on: walk the graph backwards from them.
    std::vector<char> relevant(count, 0);
    for (const auto& [v, seed] : seeds) relevant[static_cast<std::size_t>(v.node)] = 1;
    for (std::size_t i = count; i-- > 0;)
        if (relevant[i])
            for (const auto& in : nodes[i].inputs) relevant[static_cast<std::size_t>(in.node)] = 1;

    // The nodes whose gradients are computed. Parameters always get one
    // (zeros when the loss does not reach them). Their memory is zeroed once;
    // every op's backward then accumulates.
    std::vector<char> active(count, 0);
    for (std::size_t i = 0; i < count; ++i) {
        if (!nodes[i].requires_grad || (!relevant[i] && nodes[i].kind != NodeKind::parameter)) continue;
        active[i] = 1;
        for (std::size_t k = 0; k < nodes[i].outputs.size(); ++k) {
            ensure(grads_[i][k], values_[i][k].type());
            grads_[i][k].zero();
            for (const Use& u : shared_uses_[i][k]) {
                Tensor& g = use_grads_[static_cast<std::size_t>(u.consumer)][static_cast<std::size_t>(u.slot)];
                ensure(g, values_[i][k].type());
                g.zero();
            }
        }
    }
    for (const auto& [v, seed] : seeds) {
        Tensor& g = grads_[static_cast<std::size_t>(v.node)][static_cast<std::size_t>(v.output)];
        if (!g.defined()) continue;  // the value depends on no parameter
        if (seed.type() != g.type())
            throw Error(fmt::format("seed gradient for '{}' is {}, the value is {}", nodes[static_cast<std::size_t>(v.node)].name,
                                    to_string(seed.type()), to_string(g.type())));
        add_into(g, seed);
    }

    // A node runs backward once every active node that uses it has (they add
    // into its gradient); a node without an op only gathers its shared uses.
    std::vector<char> runs(count, 0);
    for (std::size_t i = 0; i < count; ++i) runs[i] = active[i] && (relevant[i] || !nodes[i].op);
    for (std::size_t i = 0; i < count; ++i) {
        int waits = 0;
        for (int c : consumers_[i]) waits += runs[static_cast<std::size_t>(c)] && nodes[static_cast<std::size_t>(c)].op ? 1 : 0;
        pending_[i].store(waits);
    }
    run_task_graph(
        runs, pending_.get(), [&](int node) { backward_node(node, active); },
        [&](int node) -> const std::vector<int>& { return producers_[static_cast<std::size_t>(node)]; });
}

void Executor::backward_node(int node, const std::vector<char>& active) {
    const auto i = static_cast<std::size_t>(node);
    const Node& n = graph_->nodes()[i];
    // Sum the gradients of a shared value's uses, in graph order, so the result
    // does not depend on which user finished first.
    for (std::size_t k = 0; k < shared_uses_[i].size(); ++k)
        for (const Use& u : shared_uses_[i][k]) add_into(grads_[i][k], use_grads_[static_cast<std::size_t>(u.consumer)][static_cast<std::size_t>(u.slot)]);
    if (!n.op) return;
    auto& input_grads = input_grads_[i];
    for (std::size_t slot = 0; slot < n.inputs.size(); ++slot) {
        const ValueRef in = n.inputs[slot];
        const auto p = static_cast<std::size_t>(in.node);
        const auto k = static_cast<std::size_t>(in.output);
        if (!active[p]) input_grads[slot] = nullptr;
        else if (shared_uses_[p][k].empty()) input_grads[slot] = &grads_[p][k];
        else input_grads[slot] = &use_grads_[i][slot];
    }
    const auto start = profiling_ ? Clock::now() : Clock::time_point{};
    try {
        n.op->backward({inputs_[i], values_[i], grads_[i], input_grads, states_[i].get()});
        if (profiling_) {
            times_[i].backward_s += std::chrono::duration<double>(Clock::now() - start).count();
            ++times_[i].backward_calls;
            times_[i].backward_flops += n.op->backward_flops(inferred_for_[i]);
        }
    } catch (const Error& e) {
        throw Error(fmt::format("node '{}' ({}) backward: {}", n.name, n.op_name, e.what()));
    }
}

void Executor::set_profiling(bool on) { profiling_ = on; }

void Executor::reset_profile() { times_.assign(graph_->nodes().size(), NodeTime{}); }

const Tensor& Executor::grad(int parameter_node) const {
    const Node& n = graph_->node(parameter_node);
    if (n.kind != NodeKind::parameter) throw Error(fmt::format("node '{}' is not a parameter", n.name));
    const Tensor& g = grads_[static_cast<std::size_t>(parameter_node)][0];
    if (!g.defined()) throw Error(fmt::format("parameter '{}' has no gradient: run backward() first", n.name));
    return g;
}

const Tensor* Executor::gradient(ValueRef v) const {
    const Tensor& g = grads_.at(static_cast<std::size_t>(v.node)).at(static_cast<std::size_t>(v.output));
    return g.defined() ? &g : nullptr;
}

const Tensor& Executor::grad(const std::string& parameter_name) const { return grad(graph_->index_of(parameter_name)); }

}  // namespace graphrun
