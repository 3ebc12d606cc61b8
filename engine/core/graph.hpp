// A dataflow graph: plain data, a vector of nodes in topological order,
// addressed by index. A node can only name nodes added before it, so the
// order in which nodes are added is already a topological order.
//
// Leaves are graph inputs (data, never differentiated) and parameters
// (weights, requires_grad). Every other node applies an op from a registry;
// its output types are inferred when it is added, before any data flows.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/op.hpp"

namespace graphrun {

// One output of one node.
struct ValueRef {
    int node = -1;
    int output = 0;
    bool operator==(const ValueRef&) const = default;
};

enum class NodeKind { input, parameter, op };

struct Node {
    std::string name;
    NodeKind kind = NodeKind::op;
    std::string op_name;  // "input" and "parameter" for leaves
    Attrs attrs;          // validated, with defaults filled in
    std::vector<ValueRef> inputs;
    std::vector<TensorType> outputs;
    std::unique_ptr<Op> op;  // null for leaves
    bool requires_grad = false;
    // When the node is a part of a composite such as `dense` or
    // `contrastive_loss`: that composite's kind and instance name.
    std::string composite_kind;
    std::string composite_name;
};

class Graph {
public:
    explicit Graph(const OpRegistry& registry) : registry_(&registry) {}
    Graph(Graph&&) = default;
    Graph& operator=(Graph&&) = default;

    ValueRef input(const std::string& name, TensorType type);
    // `init` says how to fill it (see engine/train/initializer.hpp); it is kept in the node's attrs.
    ValueRef parameter(const std::string& name, TensorType type, const Attrs& init = {});
    // Adds a node applying `op_name`. Throws Error naming the node and the op
    // for an unknown op, bad attributes, a wrong number of inputs or a shape
    // mismatch. Returns its first output; a node's other outputs are
    // ValueRef{node, k}.
    ValueRef add(const std::string& name, const std::string& op_name, std::vector<ValueRef> inputs, const Attrs& attrs = {});

    // Nodes added while a composite scope is open are marked as its parts.
    void begin_composite(const std::string& kind, const std::string& name);
    void end_composite();

    const std::vector<Node>& nodes() const { return nodes_; }
    const Node& node(int index) const { return nodes_.at(static_cast<std::size_t>(index)); }
    const Node& node(ValueRef v) const { return node(v.node); }
    const TensorType& type(ValueRef v) const;
    std::optional<int> find(const std::string& name) const;
    int index_of(const std::string& name) const;  // throws Error when absent
    std::vector<int> parameters() const;          // indices of parameter nodes, in order
    std::vector<int> inputs() const;              // indices of input nodes, in order
    std::int64_t parameter_count() const;         // trainable scalars
    const OpRegistry& registry() const { return *registry_; }

private:
    ValueRef add_leaf(const std::string& name, NodeKind kind, TensorType type, const Attrs& attrs = {});
    void check_new_name(const std::string& name) const;

    const OpRegistry* registry_;
    std::vector<Node> nodes_;
    std::string composite_kind_, composite_name_;
};

// A hash of what the graph computes (FNV-1a, 16 hex digits): every node's
// name, op, attributes, inputs and output types. Parameters count by name
// and type only: how they were initialized is no part of the model; nor is
// an attribute that chooses how an op runs (AttrSpec::part_of_model false).
std::string structure_hash(const Graph& graph);

}  // namespace graphrun
