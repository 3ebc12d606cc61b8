#include "engine/core/executor.hpp"

#include <algorithm>
#include <chrono>
#include <limits>

#include <fmt/format.h>
#include <omp.h>
#include <tbb/task_group.h>

#include "engine/core/accumulate.hpp"
#include "engine/core/hash.hpp"
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
            // The task (with its copy of the chain) is made first, then the
            // order is stated, then it is scheduled: the task reads nothing
            // written after the hand-over.
            tbb::task_handle task = group.defer([chain = *this, node] {
                TaskOrder::started();  // before reading anything the spawner wrote
                chain(node);
            });
            TaskOrder::handing_over();
            group.run(std::move(task));
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

// A plan with what running it needs: its value buffers (views into its
// memory slots), gradients, op states and the per-node argument lists.
struct Executor::Compiled {
    std::string key;
    Plan plan;
    std::vector<Tensor> slots;                    // the plan's memory slots for values
    std::vector<std::vector<Tensor>> values;      // [node][output]; leaves copied in at each forward
    std::vector<std::vector<Tensor>> grads;       // [node][output], made at the first backward
    std::vector<std::vector<Tensor>> use_grads;   // [consumer][slot] for shared values
    std::vector<std::unique_ptr<OpState>> states;  // [node]
    std::vector<std::vector<Tensor>> inputs;      // [node] the input tensors handed to the op
    std::vector<std::vector<TensorType>> input_types;
    std::vector<std::vector<Tensor*>> input_grads;
};

Executor::Executor(const Graph& graph, Schedule schedule) : graph_(&graph), schedule_(schedule) {
    const auto& nodes = graph.nodes();
    const std::size_t count = nodes.size();
    leaves_.resize(count);
    shorter_axes_.resize(count);
    consumers_.resize(count);
    producers_.resize(count);
    shared_uses_.resize(count);
    pending_ = std::make_unique<std::atomic<int>[]>(count);
    times_.resize(count);
    for (std::size_t i = 0; i < count; ++i) shared_uses_[i].resize(nodes[i].outputs.size());
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

Executor::~Executor() = default;

bool Executor::poison_new_buffers = false;

void Executor::check_leaf(int node, const Tensor& value) const {
    const Node& n = graph_->node(node);
    const TensorType& want = n.outputs[0];
    if (!value.defined())
        throw Error(fmt::format("{} '{}' has no value: set it before forward()", n.op_name, n.name));
    const auto& shorter = shorter_axes_[static_cast<std::size_t>(node)];
    bool agree = value.dtype() == want.dtype && value.shape().size() == want.shape.size();
    for (std::size_t d = 0; agree && d < want.shape.size(); ++d) {
        const bool may_be_shorter = std::find(shorter.begin(), shorter.end(), static_cast<int>(d)) != shorter.end();
        agree = may_be_shorter ? value.shape()[d] >= 1 && value.shape()[d] <= want.shape[d] : shapes_agree({value.shape()[d]}, {want.shape[d]});
    }
    if (!agree)
        throw Error(fmt::format("{} '{}' expects {}{}, got {}", n.op_name, n.name, to_string(want),
                                shorter.empty() ? "" : fmt::format(" (axis {} at most as long)", fmt::join(shorter, ", ")), to_string(value.type())));
}

void Executor::allow_shorter(int input_node, int axis) {
    const Node& n = graph_->node(input_node);
    if (n.kind != NodeKind::input) throw Error(fmt::format("allow_shorter: '{}' is not a graph input", n.name));
    const Shape& declared = n.outputs[0].shape;
    if (axis < 1 || axis >= static_cast<int>(declared.size()) || declared[static_cast<std::size_t>(axis)] == kAnyDim)
        throw Error(fmt::format("allow_shorter: input '{}' ({}) has no fixed axis {} to cut", n.name, to_string(n.outputs[0]), axis));
    auto& axes = shorter_axes_[static_cast<std::size_t>(input_node)];
    if (std::find(axes.begin(), axes.end(), axis) == axes.end()) axes.push_back(axis);
}

void Executor::set(const std::string& node_name, Tensor value) { set(graph_->index_of(node_name), std::move(value)); }

void Executor::set(int node, Tensor value) {
    const Node& n = graph_->node(node);
    if (n.kind == NodeKind::op) throw Error(fmt::format("node '{}' is computed by the graph ({}); only inputs and parameters are set", n.name, n.op_name));
    check_leaf(node, value);
    leaves_[static_cast<std::size_t>(node)] = std::move(value);
    forward_done_ = false;
}

void Executor::ensure(Tensor& slot, const TensorType& type) {
    if (!slot.defined() || slot.type() != type) slot = Tensor(type);
}

void Executor::forward(Mode mode) {
    const std::vector<char> all(graph_->nodes().size(), 1);
    run_forward(all, all, mode);
    forward_done_ = mode == Mode::training;
}

void Executor::forward(const std::vector<ValueRef>& targets, Mode mode) {
    const auto& nodes = graph_->nodes();
    std::vector<char> needed(nodes.size(), 0), keep(nodes.size(), 0);
    for (const auto& v : targets) needed.at(static_cast<std::size_t>(v.node)) = keep[static_cast<std::size_t>(v.node)] = 1;
    for (std::size_t i = nodes.size(); i-- > 0;)
        if (needed[i])
            for (const auto& in : nodes[i].inputs) needed[static_cast<std::size_t>(in.node)] = 1;
    run_forward(needed, keep, mode);
    forward_done_ = false;  // a partial forward leaves other values stale
}

Executor::Compiled& Executor::compiled_for(const std::vector<char>& needed, const std::vector<char>& keep, Mode mode) {
    const auto& nodes = graph_->nodes();
    // The key: mode, which nodes run and are kept, the leaves' types where the
    // graph leaves a dimension open (the others cannot change).
    std::string key(1, mode == Mode::training ? 't' : 'i');
    for (std::size_t i = 0; i < nodes.size(); ++i) key += static_cast<char>('0' + needed[i] + 2 * keep[i]);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        const Shape& declared = nodes[i].outputs[0].shape;
        if (needed[i] && !nodes[i].op && (std::find(declared.begin(), declared.end(), kAnyDim) != declared.end() || !shorter_axes_[i].empty()))
            key += to_string(leaves_[i].type());
    }
    for (std::size_t c = compiled_.size(); c-- > 0;)
        if (compiled_[c]->key == key) {
            // Most recently used last.
            std::rotate(compiled_.begin() + static_cast<std::ptrdiff_t>(c), compiled_.begin() + static_cast<std::ptrdiff_t>(c) + 1, compiled_.end());
            return *compiled_.back();
        }

    std::vector<TensorType> leaf_types(nodes.size());
    for (std::size_t i = 0; i < nodes.size(); ++i)
        if (needed[i] && !nodes[i].op) leaf_types[i] = leaves_[i].type();
    auto c = std::make_unique<Compiled>();
    c->key = std::move(key);
    c->plan = compile_plan(*graph_, leaf_types, mode, needed, keep);
    const Plan& plan = c->plan;
    const std::size_t count = nodes.size();
    c->values.resize(count);
    c->grads.resize(count);
    c->use_grads.resize(count);
    c->states.resize(count);
    c->inputs.resize(count);
    c->input_types.resize(count);
    c->input_grads.resize(count);
    // Memory for the value slots (gradients are made by backward, as their
    // nodes turn out to need them); each value a view that keeps its slot alive.
    c->slots.resize(plan.slot_bytes.size());
    for (const PlannedBuffer& b : plan.buffers) {
        Tensor& slot = c->slots[static_cast<std::size_t>(b.slot)];
        if (b.gradient || slot.defined()) continue;
        slot = Tensor(Shape{(plan.slot_bytes[static_cast<std::size_t>(b.slot)] + 3) / 4});
        if (poison_new_buffers) slot.fill(std::numeric_limits<float>::quiet_NaN());
    }
    for (std::size_t i = 0; i < count; ++i) {
        c->values[i].resize(nodes[i].outputs.size());
        c->grads[i].resize(nodes[i].outputs.size());
        c->use_grads[i].resize(nodes[i].inputs.size());
        c->inputs[i].resize(nodes[i].inputs.size());
        c->input_grads[i].resize(nodes[i].inputs.size());
        if (!plan.runs[i]) continue;
        c->states[i] = nodes[i].op->make_state();
        for (std::size_t k = 0; k < nodes[i].outputs.size(); ++k)
            c->values[i][k] = c->slots[static_cast<std::size_t>(plan.value_slot[i][k])].view(plan.types[i][k]);
        for (const ValueRef& in : nodes[i].inputs)
            c->input_types[i].push_back(plan.types[static_cast<std::size_t>(in.node)][static_cast<std::size_t>(in.output)]);
    }
    // A server fed every batch size from 1 up would hold a plan for each: keep the most recent few.
    while (compiled_.size() >= plan_capacity_) compiled_.erase(compiled_.begin());
    compiled_.push_back(std::move(c));
    return *compiled_.back();
}

const Plan& Executor::plan() const {
    if (!current_) throw Error("the executor has no plan yet: run forward() first");
    return current_->plan;
}

std::int64_t Executor::state_bytes() const {
    std::int64_t total = 0;
    for (const auto& c : compiled_)
        for (const auto& s : c->states)
            if (s) total += s->bytes();
    return total;
}

template <class Run, class Next>
void Executor::run_pass(const std::vector<char>& participating, const std::vector<int>& order, Run&& run, Next&& next) {
    if (schedule_ == Schedule::tasks) {
        run_task_graph(participating, pending_.get(), run, next);
        return;
    }
    // As in a task: every primitive with one OpenMP thread (the caller's setting comes back).
    struct OneOpenMpThread {
        const int caller = omp_get_max_threads();
        OneOpenMpThread() { use_one_openmp_thread(); }
        ~OneOpenMpThread() { omp_set_num_threads(caller); }
    } one_thread;
    const SequentialParts sequential;  // an op's batch parts run one after another, in this thread
    for (int node : order)
        if (participating[static_cast<std::size_t>(node)]) run(node);
}

void Executor::run_forward(const std::vector<char>& needed, const std::vector<char>& keep, Mode mode) {
    const auto& nodes = graph_->nodes();
    forward_done_ = false;
    // Leaves first: they are set, not computed.
    for (std::size_t i = 0; i < nodes.size(); ++i)
        if (needed[i] && !nodes[i].op) check_leaf(static_cast<int>(i), leaves_[i]);
    current_ = nullptr;  // until the plan is whole: a failed compile leaves none
    Compiled& c = compiled_for(needed, keep, mode);
    current_ = &c;
    for (std::size_t i = 0; i < nodes.size(); ++i)
        if (needed[i] && !nodes[i].op) c.values[i][0] = leaves_[i];
    const std::vector<char>& ops = c.plan.runs;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        int waits = 0;
        for (int p : producers_[i]) waits += ops[static_cast<std::size_t>(p)];
        pending_[i].store(waits);
    }
    run_pass(
        ops, c.plan.order, [&](int node) { forward_node(node, mode); },
        [&](int node) -> const std::vector<int>& { return consumers_[static_cast<std::size_t>(node)]; });
}

// splitmix64 of the executor's seed, step and the node's name (FNV-1a): the
// streams of two nodes, or of two steps, are unrelated.
std::uint64_t Executor::draw_seed(const std::string& node_name) const {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const char ch : node_name) h = (h ^ static_cast<unsigned char>(ch)) * 0x100000001b3ULL;
    return splitmix64_mix(h ^ (draw_seed_ * 0x9E3779B97F4A7C15ULL) ^ (draw_step_ * 0xD1B54A32D192ED03ULL));
}

void Executor::forward_node(int node, Mode mode) {
    const auto i = static_cast<std::size_t>(node);
    const Node& n = graph_->nodes()[i];
    Compiled& c = *current_;
    auto& inputs = c.inputs[i];
    for (std::size_t k = 0; k < inputs.size(); ++k) inputs[k] = c.values[static_cast<std::size_t>(n.inputs[k].node)][static_cast<std::size_t>(n.inputs[k].output)];
    const auto start = profiling_ ? Clock::now() : Clock::time_point{};
    try {
        n.op->forward({inputs, c.values[i], c.states[i].get(), mode == Mode::training, draw_seed(n.name), draw_first_row_});
        if (profiling_) {
            times_[i].forward_s += std::chrono::duration<double>(Clock::now() - start).count();
            ++times_[i].forward_calls;
            times_[i].forward_flops += n.op->forward_flops(c.input_types[i]);
        }
    } catch (const Error& e) {
        throw Error(fmt::format("node '{}' ({}): {}", n.name, n.op_name, e.what()));
    }
}

const Tensor& Executor::value(ValueRef v) const {
    const auto i = static_cast<std::size_t>(v.node);
    const Node& n = graph_->nodes().at(i);
    if (!n.op) return leaves_[i];
    static const Tensor none;
    if (!current_ || !current_->plan.runs[i]) return none;
    if (!current_->plan.kept[i])
        throw Error(fmt::format("the value of '{}' was not kept: an inference forward keeps only its targets' values", n.name));
    return current_->values[i].at(static_cast<std::size_t>(v.output));
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
    Compiled& c = *current_;

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
            const TensorType& type = nodes[i].op ? c.plan.types[i][k] : leaves_[i].type();
            ensure(c.grads[i][k], type);
            c.grads[i][k].zero();
            for (const Use& u : shared_uses_[i][k]) {
                Tensor& g = c.use_grads[static_cast<std::size_t>(u.consumer)][static_cast<std::size_t>(u.slot)];
                ensure(g, type);
                g.zero();
            }
        }
    }
    for (const auto& [v, seed] : seeds) {
        Tensor& g = c.grads[static_cast<std::size_t>(v.node)][static_cast<std::size_t>(v.output)];
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
        for (int u : consumers_[i]) waits += runs[static_cast<std::size_t>(u)] && nodes[static_cast<std::size_t>(u)].op ? 1 : 0;
        pending_[i].store(waits);
    }
    std::vector<int> reverse_order(count);
    for (std::size_t i = 0; i < count; ++i) reverse_order[i] = static_cast<int>(count - 1 - i);
    run_pass(
        runs, reverse_order, [&](int node) { backward_node(node, active); },
        [&](int node) -> const std::vector<int>& { return producers_[static_cast<std::size_t>(node)]; });
}

void Executor::backward_node(int node, const std::vector<char>& active) {
    const auto i = static_cast<std::size_t>(node);
    const Node& n = graph_->nodes()[i];
    Compiled& c = *current_;
    // Sum the gradients of a shared value's uses, in graph order, so the result
    // does not depend on which user finished first.
    for (std::size_t k = 0; k < shared_uses_[i].size(); ++k)
        for (const Use& u : shared_uses_[i][k]) add_into(c.grads[i][k], c.use_grads[static_cast<std::size_t>(u.consumer)][static_cast<std::size_t>(u.slot)]);
    if (!n.op) return;
    auto& input_grads = c.input_grads[i];
    for (std::size_t slot = 0; slot < n.inputs.size(); ++slot) {
        const ValueRef in = n.inputs[slot];
        const auto p = static_cast<std::size_t>(in.node);
        const auto k = static_cast<std::size_t>(in.output);
        if (!active[p]) input_grads[slot] = nullptr;
        else if (shared_uses_[p][k].empty()) input_grads[slot] = &c.grads[p][k];
        else input_grads[slot] = &c.use_grads[i][slot];
    }
    const auto start = profiling_ ? Clock::now() : Clock::time_point{};
    try {
        n.op->backward({c.inputs[i], c.values[i], c.grads[i], input_grads, c.states[i].get()});
        if (profiling_) {
            times_[i].backward_s += std::chrono::duration<double>(Clock::now() - start).count();
            ++times_[i].backward_calls;
            times_[i].backward_flops += n.op->backward_flops(c.input_types[i]);
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
    const Tensor* g = gradient(ValueRef{parameter_node, 0});
    if (!g) throw Error(fmt::format("parameter '{}' has no gradient: run backward() first", n.name));
    return *g;
}

const Tensor* Executor::gradient(ValueRef v) const {
    if (!current_) return nullptr;
    const Tensor& g = current_->grads.at(static_cast<std::size_t>(v.node)).at(static_cast<std::size_t>(v.output));
    return g.defined() ? &g : nullptr;
}

const Tensor& Executor::grad(const std::string& parameter_name) const { return grad(graph_->index_of(parameter_name)); }

}  // namespace graphrun
