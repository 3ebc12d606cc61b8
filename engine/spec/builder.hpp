// spec::Spec -> Graph. The builder checks what needs the ops: op names, their
// attributes, the number of inputs, references between nodes, cycles, and the
// shapes (by building the graph, which infers every shape). Every error is a
// spec::SpecError starting with the location of the node or value at fault.
//
// YAML-level ops: the layers `embedding`, `lstm`, `dense` and the loss
// `contrastive_loss` (ops/composites.hpp), and every op of the registry by its
// name except those that need parameters made for them (matmul, lstm_cell and
// the raw embedding and lstm, which the layers wrap). docs/spec.md lists them.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/graph.hpp"
#include "engine/spec/spec.hpp"

namespace graphrun {

struct BuiltGraph {
    Graph graph;
    ValueRef loss;  // a scalar
    std::vector<std::pair<std::string, ValueRef>> outputs;  // the spec's `outputs`, in its order
    // Every graph node made for a spec node or input (parameters and parts
    // included) -> where the spec defined it, so later errors can point there.
};

// Inputs become graph inputs of shape (kAnyDim, ...spec shape); nodes are built
// in a topological order that does not depend on their order in the file.
BuiltGraph build_graph(const spec::Spec& spec, const OpRegistry& registry);

// The ops a spec may use, in the order docs and errors list them.
std::vector<std::string> spec_op_names(const OpRegistry& registry);

}  // namespace graphrun
