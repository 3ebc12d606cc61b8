#include "ops/composites.hpp"

#include <cmath>

#include <fmt/format.h>

namespace graphrun {

namespace {
// Marks every node added in its lifetime as a part of one composite.
struct CompositeScope {
    CompositeScope(Graph& g, const std::string& kind, const std::string& name) : graph(g) { graph.begin_composite(kind, name); }
    ~CompositeScope() { graph.end_composite(); }
    Graph& graph;
};

std::int64_t last_dim(const Graph& graph, ValueRef v) {
    const auto& shape = graph.type(v).shape;
    if (shape.empty()) throw Error("node '" + graph.node(v).name + "': expected a tensor with a feature dimension, got a scalar");
    return shape.back();
}

// The layer's parameter `param`: a new one, or the one `share_from` made.
ValueRef layer_parameter(Graph& graph, const std::string& layer, const std::string& share_from, const std::string& param,
                         const Shape& shape, const Attrs& init) {
    if (share_from.empty()) return graph.parameter(layer + "." + param, {DType::f32, shape}, init);
    const std::string shared = share_from + "." + param;
    const auto index = graph.find(shared);
    if (!index || graph.node(*index).kind != NodeKind::parameter)
        throw Error(fmt::format("node '{}': shares weights with '{}', which has no parameter '{}' (is it defined, and a layer of the same kind?)",
                                layer, share_from, shared));
    const Shape& have = graph.node(*index).outputs[0].shape;
    if (have != shape)
        throw Error(fmt::format("node '{}': shares '{}' of shape {}, but needs shape {}", layer, shared, to_string(have), to_string(shape)));
    return ValueRef{*index, 0};
}

Attrs uniform(double bound) { return {{"init", std::string("uniform")}, {"bound", bound}}; }
}  // namespace

ValueRef embedding_layer(Graph& graph, const std::string& name, ValueRef ids, std::int64_t vocab, std::int64_t dim,
                         const std::string& share_from) {
    // nn.Embedding draws from N(0, 1).
    const ValueRef weight = layer_parameter(graph, name, share_from, "weight", {vocab, dim}, {{"init", std::string("normal")}, {"std", 1.0}});
    return graph.add(name, "embedding", {ids, weight});
}

ValueRef lstm_layer(Graph& graph, const std::string& name, ValueRef x, std::int64_t units, bool return_sequences,
                    std::optional<ValueRef> lengths, const std::string& share_from, const std::string& precision, int biases,
                    const std::string& param_suffix, const std::string& node_name, const std::string& impl) {
    const std::string& node = node_name.empty() ? name : node_name;
    const std::string& sfx = param_suffix;
    const std::int64_t in = last_dim(graph, x);
    // nn.LSTM draws every weight from U(-1/sqrt(H), 1/sqrt(H)).
    const Attrs init = uniform(1.0 / std::sqrt(static_cast<double>(units)));
    const ValueRef w_ih = layer_parameter(graph, name, share_from, "weight_ih" + sfx, {4 * units, in}, init);
    const ValueRef w_hh = layer_parameter(graph, name, share_from, "weight_hh" + sfx, {4 * units, units}, init);
    // One bias (Keras's LSTM, one draw), or PyTorch's two, bias_ih + bias_hh:
    // the same function, but two parameters, each drawn and each moved by the
    // optimizer (under Adam the sum moves about twice as far a step).
    ValueRef bias;
    if (biases == 2) {
        const ValueRef bias_ih = layer_parameter(graph, name, share_from, "bias_ih" + sfx, {4 * units}, init);
        const ValueRef bias_hh = layer_parameter(graph, name, share_from, "bias_hh" + sfx, {4 * units}, init);
        bias = graph.add(node + "/bias", "add", {bias_ih, bias_hh});
    } else {
        // Drawn as PyTorch's bias_ih + bias_hh would sum: two uniform draws
        // added (a triangular distribution on [-2/sqrt(H), 2/sqrt(H)]), so one
        // bias starts where PyTorch's two start together.
        Attrs sum_of_two = init;
        sum_of_two.set("draws", std::int64_t{2});
        bias = layer_parameter(graph, name, share_from, "bias" + sfx, {4 * units}, sum_of_two);
    }
    std::vector<ValueRef> inputs{x, w_ih, w_hh, bias};
    if (lengths) inputs.push_back(*lengths);
    return graph.add(node, "lstm", inputs, {{"units", units}, {"return_sequences", return_sequences}, {"precision", precision}, {"impl", impl}});
}

ValueRef bidirectional_layer(Graph& graph, const std::string& kind, const std::string& name, ValueRef x, std::optional<ValueRef> lengths,
                             bool return_sequences, const std::string& merge, const RecurrentDirection& direction) {
    if (merge != "concat" && merge != "sum") throw Error(fmt::format("node '{}': merge must be concat or sum, got '{}'", name, merge));
    CompositeScope scope(graph, "bidirectional_" + kind, name);
    const std::string p = name + "/";
    const ValueRef forward = direction(p + "forward", "", x);
    std::vector<ValueRef> reverse_inputs{x};
    if (lengths) reverse_inputs.push_back(*lengths);
    const ValueRef reversed = graph.add(p + "reversed", "reverse_sequence", reverse_inputs);
    ValueRef backward = direction(p + "backward", "_reverse", reversed);
    if (return_sequences) {
        reverse_inputs[0] = backward;
        backward = graph.add(p + "backward_in_order", "reverse_sequence", reverse_inputs);
    }
    return graph.add(name, merge == "concat" ? "concat" : "add", {forward, backward});
}

ValueRef gru_layer(Graph& graph, const std::string& name, ValueRef x, std::int64_t units, bool return_sequences,
                   std::optional<ValueRef> lengths, const std::string& share_from, const std::string& param_suffix,
                   const std::string& node_name) {
    const std::string& sfx = param_suffix;
    const std::int64_t in = last_dim(graph, x);
    // nn.GRU draws every weight and both biases from U(-1/sqrt(H), 1/sqrt(H)).
    const Attrs init = uniform(1.0 / std::sqrt(static_cast<double>(units)));
    std::vector<ValueRef> inputs{x};
    inputs.push_back(layer_parameter(graph, name, share_from, "weight_ih" + sfx, {3 * units, in}, init));
    inputs.push_back(layer_parameter(graph, name, share_from, "weight_hh" + sfx, {3 * units, units}, init));
    inputs.push_back(layer_parameter(graph, name, share_from, "bias_ih" + sfx, {3 * units}, init));
    inputs.push_back(layer_parameter(graph, name, share_from, "bias_hh" + sfx, {3 * units}, init));
    if (lengths) inputs.push_back(*lengths);
    return graph.add(node_name.empty() ? name : node_name, "gru", inputs, {{"units", units}, {"return_sequences", return_sequences}});
}

ValueRef dense_layer(Graph& graph, const std::string& name, ValueRef x, std::int64_t units, const std::string& share_from) {
    CompositeScope scope(graph, "dense", name);
    const std::int64_t in = last_dim(graph, x);
    // nn.Linear: U(-1/sqrt(in), 1/sqrt(in)) for both.
    const Attrs init = uniform(1.0 / std::sqrt(static_cast<double>(in)));
    const ValueRef weight = layer_parameter(graph, name, share_from, "weight", {units, in}, init);
    const ValueRef bias = layer_parameter(graph, name, share_from, "bias", {units}, init);
    return graph.add(name, "matmul", {x, weight, bias}, {{"transpose_b", true}});
}

ValueRef layer_norm_layer(Graph& graph, const std::string& name, ValueRef x, double eps, const std::string& share_from) {
    const std::int64_t D = last_dim(graph, x);
    // nn.LayerNorm starts as the identity on normalized rows.
    const ValueRef weight = layer_parameter(graph, name, share_from, "weight", {D}, {{"init", std::string("ones")}});
    const ValueRef bias = layer_parameter(graph, name, share_from, "bias", {D}, {{"init", std::string("zeros")}});
    return graph.add(name, "layer_norm", {x, weight, bias}, {{"eps", eps}});
}

ValueRef euclidean_distance(Graph& graph, const std::string& name, ValueRef a, ValueRef b, double eps) {
    CompositeScope scope(graph, "euclidean", name);
    const std::string p = name + "/";
    const ValueRef difference = graph.add(p + "difference", "sub", {a, b});
    const ValueRef eps_value = graph.add(p + "eps", "constant", {}, {{"value", eps}});
    const ValueRef shifted = graph.add(p + "shifted", "add", {difference, eps_value});
    const ValueRef squared = graph.add(p + "squared", "square", {shifted});
    const ValueRef sum = graph.add(p + "sum", "sum_last", {squared});
    return graph.add(name, "sqrt", {sum});
}

ValueRef manhattan_distance(Graph& graph, const std::string& name, ValueRef a, ValueRef b) {
    CompositeScope scope(graph, "manhattan", name);
    const std::string p = name + "/";
    const ValueRef difference = graph.add(p + "difference", "sub", {a, b});
    const ValueRef size = graph.add(p + "abs", "abs", {difference});
    return graph.add(name, "sum_last", {size});
}

ValueRef contrastive_loss(Graph& graph, const std::string& name, ValueRef distance, ValueRef label, double margin) {
    CompositeScope scope(graph, "contrastive_loss", name);
    const std::string p = name + "/";
    // Similar pairs (y = 1) are pulled together: y d^2.
    const ValueRef d_squared = graph.add(p + "d_squared", "square", {distance});
    const ValueRef similar = graph.add(p + "similar_term", "mul", {label, d_squared});
    // Dissimilar pairs (y = 0) are pushed apart up to the margin: (1 - y) max(margin - d, 0)^2.
    const ValueRef margin_value = graph.add(p + "margin", "constant", {}, {{"value", margin}});
    const ValueRef gap = graph.add(p + "gap", "sub", {margin_value, distance});
    const ValueRef hinge = graph.add(p + "hinge", "max", {gap}, {{"scalar", 0.0}});
    const ValueRef hinge_squared = graph.add(p + "hinge_squared", "square", {hinge});
    const ValueRef one = graph.add(p + "one", "constant", {}, {{"value", 1.0}});
    const ValueRef dissimilar = graph.add(p + "dissimilar", "sub", {one, label});
    const ValueRef dissimilar_term = graph.add(p + "dissimilar_term", "mul", {dissimilar, hinge_squared});
    const ValueRef per_pair = graph.add(p + "per_pair", "add", {similar, dissimilar_term});
    return graph.add(name, "mean", {per_pair});
}

ValueRef in_batch_softmax(Graph& graph, const std::string& name, ValueRef left, ValueRef right, double temperature, bool symmetric) {
    if (!(temperature > 0)) throw Error(fmt::format("node '{}': temperature must be positive, got {}", name, temperature));
    CompositeScope scope(graph, "in_batch_softmax", name);
    const std::string p = name + "/";
    // Logits: every left against every right, sharpened by the temperature.
    const ValueRef scores = graph.add(p + "scores", "cosine_matrix", {left, right});
    const ValueRef scale = graph.add(p + "scale", "constant", {}, {{"value", 1.0 / temperature}});
    const ValueRef logits = graph.add(p + "logits", "mul", {scores, scale});
    // Row i's right answer is column i.
    const ValueRef labels = graph.add(p + "labels", "batch_index", {left});
    if (!symmetric) return graph.add(name, "cross_entropy", {logits, labels});
    const ValueRef left_to_right = graph.add(p + "left_to_right", "cross_entropy", {logits, labels});
    const ValueRef logits_t = graph.add(p + "logits_t", "transpose", {logits});
    const ValueRef right_to_left = graph.add(p + "right_to_left", "cross_entropy", {logits_t, labels});
    const ValueRef both = graph.add(p + "both", "add", {left_to_right, right_to_left});
    const ValueRef half = graph.add(p + "half", "constant", {}, {{"value", 0.5}});
    return graph.add(name, "mul", {both, half});
}

ValueRef triplet_loss(Graph& graph, const std::string& name, ValueRef left, ValueRef right, double margin, const std::string& mining) {
    CompositeScope scope(graph, "triplet_loss", name);
    const ValueRef scores = graph.add(name + "/scores", "cosine_matrix", {left, right});
    return graph.add(name, "triplet", {scores}, {{"margin", margin}, {"mining", mining}});
}

}  // namespace graphrun
