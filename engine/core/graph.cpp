#include "engine/core/graph.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace graphrun {

void Graph::check_new_name(const std::string& name) const {
    if (name.empty()) throw Error("a node needs a name");
    if (find(name)) throw Error(fmt::format("node '{}' is defined twice", name));
}

ValueRef Graph::add_leaf(const std::string& name, NodeKind kind, TensorType type, const Attrs& attrs) {
    check_new_name(name);
    for (std::size_t i = 0; i < type.shape.size(); ++i)
        if (type.shape[i] < 0 && !(i == 0 && type.shape[i] == kAnyDim))
            throw Error(fmt::format("node '{}': bad shape {}: sizes must be positive; only the batch (first) dimension may be left open", name, to_string(type.shape)));
    Node n;
    n.name = name;
    n.kind = kind;
    n.op_name = kind == NodeKind::input ? "input" : "parameter";
    n.requires_grad = kind == NodeKind::parameter;
    n.attrs = attrs;
    if (n.requires_grad && type.dtype != DType::f32)
        throw Error(fmt::format("parameter '{}' must be f32, got {}", name, dtype_name(type.dtype)));
    n.outputs.push_back(std::move(type));
    n.composite_kind = composite_kind_;
    n.composite_name = composite_name_;
    nodes_.push_back(std::move(n));
    return {static_cast<int>(nodes_.size() - 1), 0};
}

ValueRef Graph::input(const std::string& name, TensorType type) { return add_leaf(name, NodeKind::input, std::move(type)); }
ValueRef Graph::parameter(const std::string& name, TensorType type, const Attrs& init) {
    return add_leaf(name, NodeKind::parameter, std::move(type), init);
}

ValueRef Graph::add(const std::string& name, const std::string& op_name, std::vector<ValueRef> inputs, const Attrs& attrs) {
    check_new_name(name);
    const OpDef* def = registry_->find(op_name);
    if (!def) {
        throw Error(fmt::format("node '{}': unknown op '{}' (known ops: {})", name, op_name, fmt::join(registry_->names(), ", ")));
    }
    const std::string where = fmt::format("node '{}' ({})", name, op_name);
    if (inputs.size() < def->min_inputs || inputs.size() > def->max_inputs) {
        std::string expected = def->min_inputs == def->max_inputs ? std::to_string(def->min_inputs)
                                                                  : fmt::format("{} to {}", def->min_inputs, def->max_inputs);
        throw Error(fmt::format("{}: expects {} input{}, got {}", where, expected, def->max_inputs == 1 ? "" : "s", inputs.size()));
    }
    std::vector<TensorType> in_types;
    for (const auto& v : inputs) {
        if (v.node < 0 || v.node >= static_cast<int>(nodes_.size()) || v.output < 0 ||
            v.output >= static_cast<int>(nodes_[static_cast<std::size_t>(v.node)].outputs.size()))
            throw Error(fmt::format("{}: an input refers to a value that does not exist", where));
        in_types.push_back(type(v));
    }
    Node n;
    n.name = name;
    n.op_name = op_name;
    n.attrs = validate_attrs(where, def->attrs, attrs);
    try {
        n.op = def->make(n.attrs);
    } catch (const Error& e) {  // an attribute out of its range
        throw Error(fmt::format("{}: {}", where, e.what()));
    }
    try {
        n.outputs = n.op->infer(in_types);
    } catch (const ShapeError& e) {
        std::vector<std::string> got;
        for (const auto& t : in_types) got.push_back(to_string(t));
        throw Error(fmt::format("{}: {} (inputs: {})", where, e.what(), fmt::join(got, ", ")));
    }
    n.inputs = std::move(inputs);
    for (const auto& v : n.inputs)
        if (nodes_[static_cast<std::size_t>(v.node)].requires_grad) n.requires_grad = true;
    // Integer outputs (batch_index of embeddings, say) carry no gradient, whatever they were computed from.
    if (std::none_of(n.outputs.begin(), n.outputs.end(), [](const TensorType& t) { return t.dtype == DType::f32; })) n.requires_grad = false;
    n.composite_kind = composite_kind_;
    n.composite_name = composite_name_;
    nodes_.push_back(std::move(n));
    return {static_cast<int>(nodes_.size() - 1), 0};
}

void Graph::begin_composite(const std::string& kind, const std::string& name) {
    composite_kind_ = kind;
    composite_name_ = name;
}

void Graph::end_composite() {
    composite_kind_.clear();
    composite_name_.clear();
}

const TensorType& Graph::type(ValueRef v) const {
    return node(v).outputs.at(static_cast<std::size_t>(v.output));
}

std::optional<int> Graph::find(const std::string& name) const {
    for (std::size_t i = 0; i < nodes_.size(); ++i)
        if (nodes_[i].name == name) return static_cast<int>(i);
    return std::nullopt;
}

int Graph::index_of(const std::string& name) const {
    auto i = find(name);
    if (!i) throw Error(fmt::format("no node named '{}'", name));
    return *i;
}

std::vector<int> Graph::parameters() const {
    std::vector<int> out;
    for (std::size_t i = 0; i < nodes_.size(); ++i)
        if (nodes_[i].kind == NodeKind::parameter) out.push_back(static_cast<int>(i));
    return out;
}

std::vector<int> Graph::inputs() const {
    std::vector<int> out;
    for (std::size_t i = 0; i < nodes_.size(); ++i)
        if (nodes_[i].kind == NodeKind::input) out.push_back(static_cast<int>(i));
    return out;
}

std::int64_t Graph::parameter_count() const {
    std::int64_t count = 0;
    for (int p : parameters()) count += element_count(node(p).outputs[0].shape);
    return count;
}

std::string structure_hash(const Graph& graph) {
    std::string text;
    for (const Node& n : graph.nodes()) {
        text += fmt::format("{}|{}|{}|", n.name, n.op_name, static_cast<int>(n.kind));
        const OpDef* def = n.kind == NodeKind::op ? graph.registry().find(n.op_name) : nullptr;
        const auto part_of_model = [&](const std::string& key) {
            if (!def) return true;
            for (const AttrSpec& a : def->attrs)
                if (a.name == key) return a.part_of_model;
            return true;
        };
        if (n.kind != NodeKind::parameter)
            for (const auto& [key, value] : n.attrs.values())
                if (part_of_model(key)) text += fmt::format("{}={};", key, to_string(value));
        for (const ValueRef& in : n.inputs) text += fmt::format("<{}:{}", in.node, in.output);
        for (const TensorType& t : n.outputs) text += ">" + to_string(t);
        text += '\n';
    }
    std::uint64_t h = 14695981039346656037ull;
    for (const char c : text) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    return fmt::format("{:016x}", h);
}

}  // namespace graphrun
