// Two passes: check every node on its own (op, attributes, inputs, references,
// the lint), then order the nodes and build them, so an error in one node is
// reported at that node and a graph is only made from a spec that made sense.
#include "engine/spec/builder.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "engine/spec/loader.hpp"
#include "ops/composites.hpp"

namespace graphrun {
namespace {

using spec::Location;
using spec::NodeSpec;
using spec::SpecError;

// The layers and the loss, built by ops/composites.hpp. `share` names another
// layer of the same op whose weights this one uses.
struct LayerDef {
    std::string name;
    std::size_t inputs;
    std::vector<AttrSpec> attrs;
};

const std::vector<LayerDef>& layer_defs() {
    static const std::vector<LayerDef> defs{
        {"embedding", 1,
         {{"vocab", AttrKind::integer, std::nullopt, "vocabulary size V; ids are in [0, V)"},
          {"dim", AttrKind::integer, std::nullopt, "embedding size E"},
          {"share", AttrKind::string, AttrValue{std::string()}, "an embedding node whose weights to use"}}},
        {"lstm", 1,
         {{"units", AttrKind::integer, std::nullopt, "hidden size H"},
          {"return_sequences", AttrKind::boolean, AttrValue{false}, "output every step (N, T, H), not the last (N, H)"},
          {"precision", AttrKind::string, AttrValue{std::string("f32")}, "f32, or bf16: bfloat16 compute with float32 gradients"},
          {"impl", AttrKind::string, AttrValue{std::string()},
           "graphrun: graphrun's own float32 LSTM (large GEMMs over chunks of steps, fused gates); dnnl: oneDNN's LSTM primitive; "
           "default graphrun, dnnl with precision bf16"},
          {"biases", AttrKind::integer, AttrValue{std::int64_t{1}}, "1: one bias (Keras's LSTM); 2: bias_ih and bias_hh, summed (PyTorch's nn.LSTM)"},
          {"bidirectional", AttrKind::boolean, AttrValue{false}, "also read each sequence backwards from its last real step (PyTorch's bidirectional=True)"},
          {"merge", AttrKind::string, AttrValue{std::string("concat")}, "bidirectional: concat (2H features) or sum (H) of the two directions"},
          {"share", AttrKind::string, AttrValue{std::string()}, "an lstm node whose weights to use"}}},
        {"dense", 1,
         {{"units", AttrKind::integer, std::nullopt, "output features"},
          {"share", AttrKind::string, AttrValue{std::string()}, "a dense node whose weights to use"}}},
        {"layer_norm", 1,
         {{"eps", AttrKind::number, AttrValue{1e-5}, "added to the variance (nn.LayerNorm's eps)"},
          {"share", AttrKind::string, AttrValue{std::string()}, "a layer_norm node whose weights to use"}}},
        {"euclidean", 2, {{"eps", AttrKind::number, AttrValue{1e-6}, "added to a - b, as F.pairwise_distance, so identical rows have a gradient"}}},
        {"manhattan", 2, {}},
        {"contrastive_loss", 2, {{"margin", AttrKind::number, AttrValue{1.0}, "how far apart dissimilar pairs are pushed"}}},
        {"in_batch_softmax", 2,
         {{"temperature", AttrKind::number, AttrValue{0.05}, "the similarities are divided by it before the softmax (sentence-transformers' scale 20)"},
          {"symmetric", AttrKind::boolean, AttrValue{false}, "also rank the left texts for each right text, and average the two losses"}}},
        {"triplet_loss", 2,
         {{"margin", AttrKind::number, AttrValue{0.2}, "how much more similar (in cosine) the positive must be than the negative"},
          {"mining", AttrKind::string, AttrValue{std::string("semi_hard")}, "hardest | semi_hard: the batch's negative each pair is compared with"}}},
        {"gru", 1,
         {{"units", AttrKind::integer, std::nullopt, "hidden size H"},
          {"return_sequences", AttrKind::boolean, AttrValue{false}, "output every step (N, T, H), not the last (N, H)"},
          {"bidirectional", AttrKind::boolean, AttrValue{false}, "also read each sequence backwards from its last real step (PyTorch's bidirectional=True)"},
          {"merge", AttrKind::string, AttrValue{std::string("concat")}, "bidirectional: concat (2H features) or sum (H) of the two directions"},
          {"share", AttrKind::string, AttrValue{std::string()}, "a gru node whose weights to use"}}},
    };
    return defs;
}

// Registry ops that need parameters made for them: the layers wrap them.
const std::set<std::string> kHidden{"matmul", "lstm_cell", "embedding", "lstm", "layer_norm", "gru"};

const LayerDef* find_layer(const std::string& op) {
    for (const auto& d : layer_defs())
        if (d.name == op) return &d;
    return nullptr;
}

// A node's op, layer or registry op, seen the same way by the checks.
struct OpInfo {
    std::size_t min_inputs = 0, max_inputs = 0;
    const std::vector<AttrSpec>* attrs = nullptr;
};

const char* article(AttrKind kind) { return kind == AttrKind::integer ? "an" : "a"; }


Location attr_loc(const NodeSpec& n, const std::string& attr) {
    const auto it = n.attr_locs.find(attr);
    return it == n.attr_locs.end() ? n.loc : it->second;
}

// validate_attrs' checks, each at the attribute's own location; defaults filled in.
Attrs check_attrs(const NodeSpec& n, const std::vector<AttrSpec>& schema) {
    std::vector<std::string> known;
    for (const auto& s : schema) known.push_back(s.name);
    const std::string where = fmt::format("node '{}' ({})", n.name, n.op);
    Attrs full;
    for (const auto& [name, value] : n.attrs.values()) {
        const std::string& key = name;  // a structured binding cannot be captured before clang 16
        const auto s = std::find_if(schema.begin(), schema.end(), [&](const AttrSpec& a) { return a.name == key; });
        if (s == schema.end())
            throw SpecError(attr_loc(n, name), fmt::format("{}: unknown attribute '{}' (known: {}){}", where, name,
                                                           known.empty() ? "none" : spec::join(known), spec::did_you_mean(name, known)));
        if (!attr_fits(s->kind, value))
            throw SpecError(attr_loc(n, name), fmt::format("{}: attribute '{}' must be {} {}, got {}", where, name, article(s->kind),
                                                           attr_kind_name(s->kind), to_string(value)));
        full.set(name, value);
    }
    for (const auto& s : schema) {
        if (full.has(s.name)) continue;
        if (!s.default_value)
            throw SpecError(n.loc, fmt::format("{}: missing attribute '{}' ({} {}: {})", where, s.name, article(s.kind), attr_kind_name(s.kind), s.doc));
        full.set(s.name, *s.default_value);
    }
    // Sizes: zero or negative is a mistake, and more than 2^31 surely a typo.
    for (const char* size : {"vocab", "dim", "units"}) {
        if (!full.has(size) || !std::holds_alternative<std::int64_t>(full.values().at(size))) continue;
        const std::int64_t v = full.integer(size);
        if (v <= 0) throw SpecError(attr_loc(n, size), fmt::format("{}: {} must be a positive integer, got {}", where, size, v));
        if (v > spec::kMaxElements)
            throw SpecError(attr_loc(n, size), fmt::format("{}: {} {} is too large: more than 2^31 = {} elements", where, size, v, spec::kMaxElements));
    }
    return full;
}

struct Checked {
    std::vector<Attrs> attrs;            // per node, validated
    std::vector<std::vector<int>> deps;  // per node: the nodes it needs first (inputs and `share`), no repeats
};

Checked check_nodes(const spec::Spec& s, const OpRegistry& registry) {
    std::map<std::string, int> node_index;
    for (std::size_t i = 0; i < s.nodes.size(); ++i) node_index[s.nodes[i].name] = static_cast<int>(i);
    std::vector<std::string> names;  // what an input may refer to
    for (const auto& in : s.inputs) names.push_back(in.name);
    for (const auto& n : s.nodes) names.push_back(n.name);
    const std::vector<std::string> ops = spec_op_names(registry);

    Checked c;
    for (const auto& n : s.nodes) {
        OpInfo info;
        if (const LayerDef* layer = find_layer(n.op)) {
            info = {layer->inputs, layer->inputs, &layer->attrs};
        } else if (const OpDef* def = kHidden.count(n.op) ? nullptr : registry.find(n.op)) {
            info = {def->min_inputs, def->max_inputs, &def->attrs};
        } else {
            throw SpecError(n.loc, fmt::format("node '{}': unknown op '{}' (known ops: {}){}", n.name, n.op, spec::join(ops), spec::did_you_mean(n.op, ops)));
        }
        c.attrs.push_back(check_attrs(n, *info.attrs));
        if (n.inputs.size() < info.min_inputs || n.inputs.size() > info.max_inputs) {
            const std::string expected = info.min_inputs == info.max_inputs ? std::to_string(info.min_inputs)
                                                                             : fmt::format("{} to {}", info.min_inputs, info.max_inputs);
            throw SpecError(n.loc, fmt::format("node '{}' ({}): expects {} input{}, got {}", n.name, n.op, expected,
                                               info.max_inputs == 1 ? "" : "s", n.inputs.size()));
        }
        std::set<int> deps;
        for (std::size_t i = 0; i < n.inputs.size(); ++i) {
            const std::string& ref = n.inputs[i];
            if (std::find(names.begin(), names.end(), ref) == names.end())
                throw SpecError(n.input_locs.at(i), fmt::format("node '{}': no input or node named '{}'{}", n.name, ref, spec::did_you_mean(ref, names)));
            if (node_index.count(ref)) deps.insert(node_index[ref]);
        }
        if (c.attrs.back().has("share") && !c.attrs.back().string("share").empty()) {
            const std::string& shared = c.attrs.back().string("share");
            const Location where = attr_loc(n, "share");
            const auto it = node_index.find(shared);
            if (it == node_index.end()) {
                std::vector<std::string> nodes;
                for (const auto& m : s.nodes) nodes.push_back(m.name);
                throw SpecError(where, fmt::format("node '{}': shares the weights of '{}', but there is no node by that name{}", n.name, shared,
                                                   spec::did_you_mean(shared, nodes)));
            }
            const NodeSpec& other = s.nodes[static_cast<std::size_t>(it->second)];
            if (other.name == n.name) throw SpecError(where, fmt::format("node '{}': cannot share weights with itself", n.name));
            if (other.op != n.op)
                throw SpecError(where, fmt::format("node '{}': a {} node can only share the weights of another {} node, and '{}' is a {} node",
                                                   n.name, n.op, n.op, shared, other.op));
            deps.insert(it->second);
        }
        // The lint: a cosine similarity is 1 for identical vectors, a distance 0.
        // Fed as the distance, the loss would push similar pairs apart.
        if (n.op == "contrastive_loss" && node_index.count(n.inputs[0]) &&
            s.nodes[static_cast<std::size_t>(node_index[n.inputs[0]])].op == "cosine")
            throw SpecError(n.input_locs.at(0),
                            fmt::format("node '{}': contrastive_loss expects a distance, but '{}' is a cosine similarity (1 = identical): "
                                        "feed `1 - cosine` (a `sub` node with a constant 1.0) instead",
                                        n.name, n.inputs[0]));
        c.deps.emplace_back(deps.begin(), deps.end());
    }
    return c;
}

// Kahn's algorithm, taking the ready node with the smallest name first: the
// order, and so the parameters' order and their seeded initial values, does
// not depend on the order of the nodes in the file.
std::vector<int> topological_order(const spec::Spec& s, const std::vector<std::vector<int>>& deps) {
    const std::size_t count = s.nodes.size();
    std::vector<int> pending(count);
    std::vector<std::vector<int>> users(count);
    for (std::size_t i = 0; i < count; ++i) {
        pending[i] = static_cast<int>(deps[i].size());
        for (int d : deps[i]) users[static_cast<std::size_t>(d)].push_back(static_cast<int>(i));
    }
    const auto by_name = [&](int a, int b) { return s.nodes[static_cast<std::size_t>(a)].name < s.nodes[static_cast<std::size_t>(b)].name; };
    std::set<int, decltype(by_name)> ready(by_name);
    for (std::size_t i = 0; i < count; ++i)
        if (pending[i] == 0) ready.insert(static_cast<int>(i));
    std::vector<int> order;
    while (!ready.empty()) {
        const int next = *ready.begin();
        ready.erase(ready.begin());
        order.push_back(next);
        for (int u : users[static_cast<std::size_t>(next)])
            if (--pending[static_cast<std::size_t>(u)] == 0) ready.insert(u);
    }
    if (order.size() == count) return order;

    // Left over: nodes on a cycle and nodes after one. Each has a pending
    // dependency, so walking to pending dependencies must come back to a node seen.
    int start = 0;
    while (pending[static_cast<std::size_t>(start)] == 0) ++start;
    std::vector<int> walk{start};
    for (;;) {
        const auto& d = deps[static_cast<std::size_t>(walk.back())];
        const int next = *std::find_if(d.begin(), d.end(), [&](int x) { return pending[static_cast<std::size_t>(x)] > 0; });
        const auto seen = std::find(walk.begin(), walk.end(), next);
        if (seen != walk.end()) {
            std::vector<int> cycle(seen, walk.end());
            std::reverse(cycle.begin(), cycle.end());  // the walk went against the data's flow
            std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());  // first in the file first
            std::string path;
            for (int i : cycle) path += s.nodes[static_cast<std::size_t>(i)].name + " -> ";
            path += s.nodes[static_cast<std::size_t>(cycle[0])].name;
            throw SpecError(s.nodes[static_cast<std::size_t>(cycle[0])].loc,
                            fmt::format("the nodes form a cycle: {} (a node's inputs and `share` must not lead back to it)", path));
        }
        walk.push_back(next);
    }
}

// The layers' parameters, checked against the size limit before they exist.
void check_parameters(const NodeSpec& n, const Attrs& a, const Graph& g, const std::vector<ValueRef>& in) {
    const std::string what = fmt::format("node '{}' ({}): parameter", n.name, n.op);
    const auto last = [&]() -> std::int64_t {
        const Shape& shape = g.type(in[0]).shape;
        return shape.empty() ? 1 : shape.back();
    };
    if (n.op == "embedding") spec::check_size(n.loc, what + " weight", {a.integer("vocab"), a.integer("dim")});
    if (n.op == "lstm") {
        const std::int64_t H = a.integer("units");
        spec::check_size(n.loc, what + " weight_ih", {4 * H, last()});
        spec::check_size(n.loc, what + " weight_hh", {4 * H, H});
    }
    if (n.op == "gru") {
        const std::int64_t H = a.integer("units");
        spec::check_size(n.loc, what + " weight_ih", {3 * H, last()});
        spec::check_size(n.loc, what + " weight_hh", {3 * H, H});
    }
    if (n.op == "dense") spec::check_size(n.loc, what + " weight", {a.integer("units"), last()});
}

// What the builder knows of padded sequences: the ids behind each embedding,
// and the lengths of every (N, T, ...) value whose padding steps must not be read.
struct Padding {
    std::map<std::string, ValueRef> ids;      // embedding node -> its (N, T) ids
    std::map<std::string, ValueRef> lengths;  // sequence value -> its rows' lengths (N)
};

// Ops that keep the time axis step by step: their output's padding is where their input's was.
const std::set<std::string> kStepwise{"relu", "sigmoid", "tanh", "square", "dropout", "layer_norm"};

// The real lengths of input `k` of node n, when they are known: after an
// embedding, read from its ids (a sequence_lengths node <n>/lengths);
// after a layer that passes padding along, that layer's lengths.
std::optional<ValueRef> lengths_of_input(Graph& g, const NodeSpec& n, std::size_t k, Padding& padding) {
    const std::string& from = n.inputs[k];
    if (const auto it = padding.ids.find(from); it != padding.ids.end() && g.type(it->second).shape.size() == 2)
        return g.add(n.name + "/lengths", "sequence_lengths", {it->second});
    if (const auto it = padding.lengths.find(from); it != padding.lengths.end()) return it->second;
    return std::nullopt;
}

// A bidirectional layer's `merge`, checked where it was written.
std::string checked_merge(const NodeSpec& n, const Attrs& a) {
    const std::string& merge = a.string("merge");
    if (merge != "concat" && merge != "sum")
        throw spec::SpecError(attr_loc(n, "merge"), fmt::format("node '{}': merge must be concat or sum, got '{}'", n.name, merge));
    return merge;
}

ValueRef build_node(Graph& g, const NodeSpec& n, const Attrs& a, const std::map<std::string, ValueRef>& built,
                    Padding& padding) {
    std::vector<ValueRef> in;
    for (const auto& name : n.inputs) in.push_back(built.at(name));
    check_parameters(n, a, g, in);
    // Every sequence a node returns carries its input's lengths on.
    if (kStepwise.count(n.op)) {
        if (padding.lengths.count(n.inputs[0])) padding.lengths[n.name] = padding.lengths.at(n.inputs[0]);
        if (padding.ids.count(n.inputs[0])) padding.ids[n.name] = padding.ids.at(n.inputs[0]);
    }
    const std::string share = a.has("share") ? a.string("share") : "";
    if (n.op == "embedding") {
        padding.ids[n.name] = in[0];
        return embedding_layer(g, n.name, in[0], a.integer("vocab"), a.integer("dim"), share);
    }
    if (n.op == "dense") return dense_layer(g, n.name, in[0], a.integer("units"), share);
    if (n.op == "layer_norm") return layer_norm_layer(g, n.name, in[0], a.number("eps"), share);
    if (n.op == "euclidean") return euclidean_distance(g, n.name, in[0], in[1], a.number("eps"));
    if (n.op == "manhattan") return manhattan_distance(g, n.name, in[0], in[1]);
    if (n.op == "contrastive_loss") return contrastive_loss(g, n.name, in[0], in[1], a.number("margin"));
    if (n.op == "in_batch_softmax") return in_batch_softmax(g, n.name, in[0], in[1], a.number("temperature"), a.boolean("symmetric"));
    if (n.op == "triplet_loss") return triplet_loss(g, n.name, in[0], in[1], a.number("margin"), a.string("mining"));
    if (n.op == "lstm") {
        // Padding: the lstm reads each sequence's length (after an embedding,
        // from its ids: the last non-zero id; after another recurrent layer,
        // that layer's) and stops there; its sequences pass the lengths on.
        const std::optional<ValueRef> lengths = lengths_of_input(g, n, 0, padding);
        const bool sequences = a.boolean("return_sequences");
        if (lengths && sequences) padding.lengths[n.name] = *lengths;
        const std::int64_t biases = a.integer("biases");
        if (biases != 1 && biases != 2) throw spec::SpecError(attr_loc(n, "biases"), fmt::format("node '{}': biases must be 1 (Keras) or 2 (PyTorch), got {}", n.name, biases));
        const auto direction = [&](const std::string& node, const std::string& suffix, ValueRef x) {
            return lstm_layer(g, n.name, x, a.integer("units"), sequences, lengths, share, a.string("precision"), static_cast<int>(biases), suffix, node,
                              a.string("impl"));
        };
        if (!a.boolean("bidirectional")) return direction(n.name, "", in[0]);
        return bidirectional_layer(g, "lstm", n.name, in[0], lengths, sequences, checked_merge(n, a), direction);
    }
    if (n.op == "gru") {
        // Padding as for lstm: the gru stops at each sequence's last real step,
        // and its sequences pass the lengths on.
        const std::optional<ValueRef> lengths = lengths_of_input(g, n, 0, padding);
        const bool sequences = a.boolean("return_sequences");
        if (lengths && sequences) padding.lengths[n.name] = *lengths;
        const auto direction = [&](const std::string& node, const std::string& suffix, ValueRef x) {
            return gru_layer(g, n.name, x, a.integer("units"), sequences, lengths, share, suffix, node);
        };
        if (!a.boolean("bidirectional")) return direction(n.name, "", in[0]);
        return bidirectional_layer(g, "gru", n.name, in[0], lengths, sequences, checked_merge(n, a), direction);
    }
    // Pooling and reversing over time read each row's real steps only.
    if ((n.op == "max_pool" || n.op == "mean_pool" || n.op == "reverse_sequence") && in.size() == 1) {
        if (const auto lengths = lengths_of_input(g, n, 0, padding)) in.push_back(*lengths);
        if (n.op == "reverse_sequence" && in.size() == 2) padding.lengths[n.name] = in[1];
    }
    return g.add(n.name, n.op, in, a);
}

// A value the spec names in `outputs` or `loss`.
ValueRef named(const spec::Spec& s, const std::map<std::string, ValueRef>& built, const std::string& name, const Location& where,
               const char* what) {
    const auto it = built.find(name);
    if (it != built.end()) return it->second;
    std::vector<std::string> names;
    for (const auto& in : s.inputs) names.push_back(in.name);
    for (const auto& n : s.nodes) names.push_back(n.name);
    throw SpecError(where, fmt::format("{} names '{}', but there is no node or input by that name{}", what, name, spec::did_you_mean(name, names)));
}

}  // namespace

std::vector<std::string> spec_op_names(const OpRegistry& registry) {
    std::vector<std::string> names;
    for (const auto& d : layer_defs()) names.push_back(d.name);
    for (const auto& name : registry.names())
        if (!kHidden.count(name)) names.push_back(name);
    return names;
}

BuiltGraph build_graph(const spec::Spec& s, const OpRegistry& registry) {
    const Checked checked = check_nodes(s, registry);
    const std::vector<int> order = topological_order(s, checked.deps);

    BuiltGraph out{Graph(registry), {}, {}};
    Graph& g = out.graph;
    std::map<std::string, ValueRef> built;
    Padding padding;
    for (const auto& in : s.inputs) {
        Shape shape{kAnyDim};
        shape.insert(shape.end(), in.shape.begin(), in.shape.end());
        built[in.name] = g.input(in.name, {in.dtype, shape});
    }
    for (int i : order) {
        const NodeSpec& n = s.nodes[static_cast<std::size_t>(i)];
        try {
            built[n.name] = build_node(g, n, checked.attrs[static_cast<std::size_t>(i)], built, padding);
        } catch (const SpecError&) {
            throw;
        } catch (const Error& e) {
            // The graph's message names the node and says what it expected.
            throw SpecError(n.loc, e.what());
        }
    }

    for (const auto& name : s.outputs) out.outputs.emplace_back(name, named(s, built, name, s.outputs_loc, "outputs"));
    out.loss = named(s, built, s.loss, s.loss_loc, "loss");
    const TensorType& t = g.type(out.loss);
    if (!t.shape.empty() || t.dtype != DType::f32)
        throw SpecError(s.loss_loc, fmt::format("the loss '{}' must be a float32 scalar (one value for the whole batch), got {}; "
                                                "reduce it with `mean` or `sum`", s.loss, to_string(t)));
    return out;
}

}  // namespace graphrun
