#include "tools/graph_json.hpp"

#include <nlohmann/json.hpp>

namespace graphrun {

namespace {

using json = nlohmann::ordered_json;

json shape_json(const Shape& shape) {
    json out = json::array();
    for (std::int64_t d : shape) out.push_back(d == kAnyDim ? json("N") : json(d));
    return out;
}

const char* dtype_json(DType dtype) {
    switch (dtype) {
        case DType::f32: return "float32";
        case DType::i32: return "int32";
        case DType::i64: return "int64";
    }
    return "unknown";
}

json attr_json(const AttrValue& value) {
    return std::visit([](const auto& v) { return json(v); }, value);
}

const char* kind_name(NodeKind kind) {
    switch (kind) {
        case NodeKind::input: return "input";
        case NodeKind::parameter: return "parameter";
        case NodeKind::op: return "op";
    }
    return "op";
}

}  // namespace

std::string graph_to_json(const Graph& graph, const GraphDumpInfo& info) {
    json doc;
    doc["format"] = "graphrun-graph";
    doc["version"] = kGraphDumpVersion;
    doc["name"] = info.name;
    doc["spec"] = info.spec;
    json inputs = json::array();
    for (int i : graph.inputs()) inputs.push_back(graph.node(i).name);
    doc["inputs"] = inputs;
    doc["outputs"] = info.outputs;
    doc["loss"] = info.loss ? json(*info.loss) : json(nullptr);
    doc["parameters"] = {{"trainable", graph.parameter_count()}, {"non_trainable", 0}};

    const auto& nodes = graph.nodes();
    json out_nodes = json::array();
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        const Node& n = nodes[i];
        json node;
        node["name"] = n.name;
        node["kind"] = kind_name(n.kind);
        node["op"] = n.op_name;
        json in = json::array();
        std::int64_t params = 0;
        for (const ValueRef& v : n.inputs) {
            const Node& from = graph.node(v);
            in.push_back({{"node", from.name}, {"output", v.output}});
            if (from.kind == NodeKind::parameter) params += element_count(from.outputs[0].shape);
        }
        if (n.kind == NodeKind::parameter) params = element_count(n.outputs[0].shape);
        node["inputs"] = in;
        json attrs = json::object();
        for (const auto& [key, value] : n.attrs.values()) attrs[key] = attr_json(value);
        node["attributes"] = attrs;
        json outs = json::array();
        for (const TensorType& t : n.outputs) outs.push_back({{"shape", shape_json(t.shape)}, {"dtype", dtype_json(t.dtype)}});
        node["outputs"] = outs;
        node["parameters"] = params;
        node["composite"] = n.composite_kind.empty() ? json(nullptr) : json{{"kind", n.composite_kind}, {"name", n.composite_name}};
        if (info.profile && n.op && i < info.profile->size()) {
            const auto& t = (*info.profile)[i];
            node["profile"] = {{"forward_ms", 1e3 * t.forward_s},    {"backward_ms", 1e3 * t.backward_s},
                               {"forward_calls", t.forward_calls},    {"backward_calls", t.backward_calls},
                               {"forward_flops", t.forward_flops},    {"backward_flops", t.backward_flops}};
        }
        out_nodes.push_back(node);
    }
    doc["nodes"] = out_nodes;
    if (info.profile) doc["profile"] = {{"steps", info.steps}};
    return doc.dump(2) + "\n";
}

}  // namespace graphrun
