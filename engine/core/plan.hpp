// A graph compiled for one set of input shapes and one mode: what runs, in
// which order, what may run at once, and every buffer with its size, its
// lifetime and the memory slot it lives in.
//
// The executor compiles a plan the first time it meets a shape (a batch size,
// a mode, a set of wanted outputs) and keeps it with its own buffers and op
// states, so a step of a shape it has seen creates nothing: no buffer, no
// oneDNN primitive (engine/core/dnnl_context.hpp counts them). The sequential
// and the task executor run the same plan; the order below is the sequential
// one, the waves show what the task executor may overlap.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/graph.hpp"

namespace graphrun {

// training keeps what backward needs (every forward value, oneDNN workspaces);
// inference does not, and its values share memory once their readers are done.
enum class RunMode { training, inference };
const char* to_string(RunMode mode);

// One buffer of the plan: an op node's output value, or (training) the
// gradient of a value that needs one. Leaves (inputs, parameters) are the
// caller's memory and are not planned.
struct PlannedBuffer {
    ValueRef value;
    bool gradient = false;
    std::int64_t bytes = 0;
    // Its lifetime, in steps of the sequential order: forward steps are
    // 0 .. order.size() - 1, backward steps follow (training).
    int first = 0, last = 0;
    int slot = 0;  // buffers that share a slot are never alive at once
};

struct Plan {
    RunMode mode = RunMode::training;
    std::vector<char> runs;                      // [node] the op nodes that run forward
    std::vector<char> kept;                      // [node] values readable after forward (inference); all in training
    std::vector<std::vector<TensorType>> types;  // [node][output] concrete types
    std::vector<int> order;                      // op nodes, a sequential order
    std::vector<std::vector<int>> waves;         // order cut where a node waits for an earlier one: a wave's nodes may run at once
    std::vector<PlannedBuffer> buffers;
    std::vector<std::int64_t> slot_bytes;        // size of each memory slot
    std::vector<std::vector<int>> value_slot;    // [node][output] slot of each planned value, -1 for leaves and values that do not run

    std::int64_t value_bytes() const;     // forward values as planned (slots shared)
    std::int64_t gradient_bytes() const;  // gradient buffers (training)
    std::int64_t unshared_bytes() const;  // every value and gradient with a buffer of its own
};

// Compiles the nodes `needed` for the leaves' types (`leaf_types[node]`; only
// leaves are read). `keep` marks the values the caller reads after an
// inference forward; in training every value is kept for backward. Throws
// Error naming the node and op when a shape does not fit.
Plan compile_plan(const Graph& graph, const std::vector<TensorType>& leaf_types, RunMode mode, const std::vector<char>& needed,
                  const std::vector<char>& keep);

}  // namespace graphrun
