#include "engine/core/plan.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace graphrun {

const char* to_string(RunMode mode) { return mode == RunMode::training ? "training" : "inference"; }

std::int64_t Plan::value_bytes() const {
    std::int64_t total = 0;
    for (std::size_t s = 0; s < slot_bytes.size(); ++s) {
        const bool gradient_slot = std::any_of(buffers.begin(), buffers.end(), [&](const PlannedBuffer& b) { return b.gradient && b.slot == static_cast<int>(s); });
        if (!gradient_slot) total += slot_bytes[s];
    }
    return total;
}

std::int64_t Plan::gradient_bytes() const {
    std::int64_t total = 0;
    for (const auto& b : buffers)
        if (b.gradient) total += b.bytes;
    return total;
}

std::int64_t Plan::unshared_bytes() const {
    std::int64_t total = 0;
    for (const auto& b : buffers) total += b.bytes;
    return total;
}

namespace {

std::int64_t bytes_of(const TensorType& t) { return element_count(t.shape) * static_cast<std::int64_t>(dtype_size(t.dtype)); }

}  // namespace

Plan compile_plan(const Graph& graph, const std::vector<TensorType>& leaf_types, RunMode mode, const std::vector<char>& needed,
                  const std::vector<char>& keep) {
    const auto& nodes = graph.nodes();
    const std::size_t count = nodes.size();
    Plan plan;
    plan.mode = mode;
    plan.runs.assign(count, 0);
    plan.kept.assign(count, 0);
    plan.types.resize(count);
    plan.value_slot.resize(count);

    // Concrete types, node by node: the batch is known only now.
    for (std::size_t i = 0; i < count; ++i) {
        const Node& n = nodes[i];
        plan.value_slot[i].assign(n.outputs.size(), -1);
        if (!needed[i]) continue;
        if (!n.op) {
            plan.types[i] = {leaf_types[i]};
            continue;
        }
        std::vector<TensorType> in_types;
        for (const ValueRef& in : n.inputs) in_types.push_back(plan.types[static_cast<std::size_t>(in.node)][static_cast<std::size_t>(in.output)]);
        try {
            plan.types[i] = n.op->infer(in_types);
        } catch (const ShapeError& e) {
            throw Error(fmt::format("node '{}' ({}): {}", n.name, n.op_name, e.what()));
        }
        plan.runs[i] = 1;
        plan.order.push_back(static_cast<int>(i));
        plan.kept[i] = mode == RunMode::training || keep[i];
    }

    // Waves: a node joins the wave after the latest wave of the nodes it reads.
    std::vector<int> wave_of(count, -1);
    for (int i : plan.order) {
        int wave = 0;
        for (const ValueRef& in : nodes[static_cast<std::size_t>(i)].inputs)
            wave = std::max(wave, wave_of[static_cast<std::size_t>(in.node)] + 1);
        wave_of[static_cast<std::size_t>(i)] = wave;
        if (static_cast<int>(plan.waves.size()) <= wave) plan.waves.resize(static_cast<std::size_t>(wave) + 1);
        plan.waves[static_cast<std::size_t>(wave)].push_back(i);
    }

    // What each node depends on, transitively: a buffer may pass to a node
    // only when that node cannot start before the buffer's producer and every
    // reader of it have finished, whichever executor runs the plan.
    std::vector<std::vector<char>> depends(count, std::vector<char>(count, 0));
    for (int i : plan.order)
        for (const ValueRef& in : nodes[static_cast<std::size_t>(i)].inputs) {
            auto& d = depends[static_cast<std::size_t>(i)];
            const auto& from = depends[static_cast<std::size_t>(in.node)];
            d[static_cast<std::size_t>(in.node)] = 1;
            for (std::size_t k = 0; k < count; ++k) d[k] |= from[k];
        }
    std::vector<int> step_of(count, -1);
    for (std::size_t s = 0; s < plan.order.size(); ++s) step_of[static_cast<std::size_t>(plan.order[s])] = static_cast<int>(s);
    std::vector<std::vector<int>> readers(count);
    for (int i : plan.order)
        for (const ValueRef& in : nodes[static_cast<std::size_t>(i)].inputs) readers[static_cast<std::size_t>(in.node)].push_back(i);

    const int forward_steps = static_cast<int>(plan.order.size());
    const int last_step = mode == RunMode::training ? 2 * forward_steps - 1 : forward_steps - 1;
    struct Occupant {
        int node = -1;  // whose value holds the slot now
    };
    std::vector<Occupant> occupant;
    for (int i : plan.order) {
        const auto ui = static_cast<std::size_t>(i);
        for (std::size_t k = 0; k < plan.types[ui].size(); ++k) {
            PlannedBuffer b;
            b.value = {i, static_cast<int>(k)};
            b.bytes = bytes_of(plan.types[ui][k]);
            b.first = step_of[ui];
            b.last = b.first;
            for (int r : readers[ui]) b.last = std::max(b.last, step_of[static_cast<std::size_t>(r)]);
            if (plan.kept[ui]) b.last = last_step;
            // A free slot: its value is not kept, and this node waits for the
            // value's producer and every reader. Prefer the smallest that fits.
            int chosen = -1;
            if (mode == RunMode::inference) {
                for (std::size_t s = 0; s < occupant.size(); ++s) {
                    const int o = occupant[s].node;
                    if (plan.kept[static_cast<std::size_t>(o)] || !depends[ui][static_cast<std::size_t>(o)]) continue;
                    const bool readers_done = std::all_of(readers[static_cast<std::size_t>(o)].begin(), readers[static_cast<std::size_t>(o)].end(),
                                                          [&](int r) { return depends[ui][static_cast<std::size_t>(r)] != 0; });
                    if (!readers_done) continue;
                    // Outputs of one node are written together: never into one slot.
                    if (o == i) continue;
                    const bool fits = plan.slot_bytes[s] >= b.bytes;
                    if (chosen < 0) chosen = static_cast<int>(s);
                    else {
                        const bool chosen_fits = plan.slot_bytes[static_cast<std::size_t>(chosen)] >= b.bytes;
                        if ((fits && (!chosen_fits || plan.slot_bytes[s] < plan.slot_bytes[static_cast<std::size_t>(chosen)])) ||
                            (!fits && !chosen_fits && plan.slot_bytes[s] > plan.slot_bytes[static_cast<std::size_t>(chosen)]))
                            chosen = static_cast<int>(s);
                    }
                }
            }
            if (chosen < 0) {
                chosen = static_cast<int>(plan.slot_bytes.size());
                plan.slot_bytes.push_back(0);
                occupant.push_back({});
            }
            auto& size = plan.slot_bytes[static_cast<std::size_t>(chosen)];
            size = std::max(size, b.bytes);
            occupant[static_cast<std::size_t>(chosen)].node = i;
            b.slot = chosen;
            plan.value_slot[ui][k] = chosen;
            plan.buffers.push_back(b);
        }
    }

    // Gradients (training): every value on a path from a parameter, alive for
    // the whole backward pass (zeroed at its start, then accumulated into), and
    // one more buffer for each use of a value that several nodes read.
    if (mode == RunMode::training) {
        for (std::size_t i = 0; i < count; ++i) {
            if (!needed[i] || !nodes[i].requires_grad) continue;
            std::int64_t uses = 0;
            std::vector<int> users;
            for (int r : readers[i])
                if (std::find(users.begin(), users.end(), r) == users.end()) users.push_back(r);
            if (users.size() > 1) uses = static_cast<std::int64_t>(readers[i].size());
            for (std::size_t k = 0; k < plan.types[i].size(); ++k)
                for (std::int64_t copy = 0; copy <= uses; ++copy) {
                    PlannedBuffer b;
                    b.value = {static_cast<int>(i), static_cast<int>(k)};
                    b.gradient = true;
                    b.bytes = bytes_of(plan.types[i][k]);
                    b.first = forward_steps;
                    b.last = last_step;
                    b.slot = static_cast<int>(plan.slot_bytes.size());
                    plan.slot_bytes.push_back(b.bytes);
                    plan.buffers.push_back(b);
                }
        }
    }
    return plan;
}

}  // namespace graphrun
