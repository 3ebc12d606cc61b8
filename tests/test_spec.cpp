// YAML specs: graphs/siamese.yaml loads and builds the model Keras counts
// 146,944 parameters for; node order, shared weights and --set work; and
// every mistake a spec can hold is reported at its file:line:column with what
// was expected. Small specs live in tests/specs/ or inline below.
#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include <catch2/catch.hpp>

#include "engine/core/executor.hpp"
#include "engine/train/initializer.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "ops/builtin.hpp"

using namespace graphrun;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

std::string source(const std::string& path) { return std::string(GRAPHRUN_SOURCE_DIR) + "/" + path; }

BuiltGraph build_file(const std::string& path, const std::vector<std::string>& overrides = {}) {
    return build_graph(spec::load_spec_file(source(path), overrides), builtin_ops());
}

// The message of the SpecError that loading and building throw; anything else fails.
std::string error_of(const std::function<void()>& load_and_build) {
    try {
        load_and_build();
    } catch (const spec::SpecError& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("not a SpecError: ") + e.what();
    }
    return "no error";
}
std::string error_of_string(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
    return error_of([&] { build_graph(spec::load_spec_string(yaml, "test", overrides), builtin_ops()); });
}
std::string error_of_file(const std::string& path) {
    return error_of([&] { build_file(path); });
}

// A small Siamese head on feature vectors (no lstm), for the error cases.
// Lines: 6 da, 7 db, 8 sim, 9 one, 10 dist, 11 loss, 12 outputs, 13 loss.
const std::string kBase = R"(inputs:
  - {name: a, shape: [4]}
  - {name: b, shape: [4]}
  - {name: y, shape: []}
nodes:
  - {name: da, op: dense, inputs: [a], units: 3}
  - {name: db, op: dense, inputs: [b], units: 3, share: da}
  - {name: sim, op: cosine, inputs: [da, db]}
  - {name: one, op: constant, value: 1.0}
  - {name: dist, op: sub, inputs: [one, sim]}
  - {name: loss, op: contrastive_loss, inputs: [dist, y]}
outputs: [sim]
loss: loss
)";

// kBase with the first `from` replaced by `to`.
std::string with(const std::string& from, const std::string& to, std::string yaml = kBase) {
    const auto at = yaml.find(from);
    REQUIRE(at != std::string::npos);
    return yaml.replace(at, from.size(), to);
}

int index(const Graph& g, const std::string& name) { return g.index_of(name); }

}  // namespace

TEST_CASE("graphs/siamese.yaml loads with the values it states", "[spec]") {
    const spec::Spec s = spec::load_spec_file(source("graphs/siamese.yaml"));
    CHECK(s.name == "siamese");
    REQUIRE(s.inputs.size() == 3);
    CHECK(s.inputs[0].name == "x1");
    CHECK(s.inputs[0].dtype == DType::i32);
    CHECK(s.inputs[1].shape == Shape{600});
    CHECK(s.inputs[2].shape.empty());
    CHECK(s.inputs[2].dtype == DType::f32);
    CHECK(s.nodes.size() == 10);
    CHECK(s.outputs == std::vector<std::string>{"left_dense", "right_dense", "similarity"});
    CHECK(s.loss == "loss");
    CHECK(s.data.kind == spec::DataSpec::Kind::synthetic);
    CHECK(s.data.synthetic.samples == 10000);
    CHECK(s.data.synthetic.min_length == 0.5);
    CHECK(s.train.epochs == 2);
    CHECK(s.train.batch_size == 32);
    CHECK(s.train.validation == 0.1);
    CHECK(s.train.optimizer.type == "adam");
    CHECK(s.train.optimizer.eps == 1e-8);
    CHECK(s.train.clip_norm == 0.0);
    CHECK(s.nodes[1].attrs.integer("units") == 64);
    CHECK_THAT(s.nodes[1].loc.str(), Contains("graphs/siamese.yaml:") && Contains(":5"));
    CHECK(s.train.locs.at("epochs").line > 0);
}

TEST_CASE("graphs/siamese.yaml builds Keras's 146,944 parameters, with lengths for the padding", "[spec]") {
    const BuiltGraph b = build_file("graphs/siamese.yaml");
    const Graph& g = b.graph;
    CHECK(g.parameter_count() == 146944);
    CHECK(g.type({index(g, "x1"), 0}) == TensorType{DType::i32, {kAnyDim, 52}});
    CHECK(g.type({index(g, "y"), 0}) == TensorType{DType::f32, {kAnyDim}});
    REQUIRE(b.outputs.size() == 3);
    CHECK(b.outputs[0].first == "left_dense");
    CHECK(g.type(b.outputs[0].second).shape == Shape{kAnyDim, 256});
    CHECK(g.type(b.outputs[1].second).shape == Shape{kAnyDim, 256});
    CHECK(g.type(b.outputs[2].second).shape == Shape{kAnyDim});
    CHECK(g.type(b.loss).shape.empty());
    CHECK(g.node(b.loss).name == "loss");
    // The lstm after an embedding reads the real lengths of x1.
    const Node& lstm = g.node(index(g, "left_lstm"));
    const int lengths = index(g, "left_lstm/lengths");
    CHECK(std::find(lstm.inputs.begin(), lstm.inputs.end(), ValueRef{lengths, 0}) != lstm.inputs.end());
    CHECK(g.node(lengths).op_name == "sequence_lengths");
    CHECK(g.node(lengths).inputs.at(0) == ValueRef{index(g, "x1"), 0});
    CHECK(g.find("right_lstm/lengths").has_value());
}

TEST_CASE("the order of the nodes in the file does not change the graph", "[spec]") {
    const BuiltGraph a = build_file("graphs/siamese.yaml");
    const BuiltGraph b = build_file("tests/specs/siamese_shuffled.yaml");
    spec::Spec shuffled = spec::load_spec_file(source("graphs/siamese.yaml"));
    std::shuffle(shuffled.nodes.begin(), shuffled.nodes.end(), std::mt19937(7));
    const BuiltGraph c = build_graph(shuffled, builtin_ops());
    for (const BuiltGraph* other : {&b, &c}) {
        REQUIRE(other->graph.nodes().size() == a.graph.nodes().size());
        for (std::size_t i = 0; i < a.graph.nodes().size(); ++i) {
            const Node &x = a.graph.nodes()[i], &y = other->graph.nodes()[i];
            CHECK(x.name == y.name);
            CHECK(x.op_name == y.op_name);
            CHECK(x.inputs == y.inputs);
            CHECK(x.outputs == y.outputs);
        }
        CHECK(other->loss == a.loss);
    }
}

TEST_CASE("share: the branches use one set of weights", "[spec]") {
    const BuiltGraph b = build_file("tests/specs/shared.yaml");
    const Graph& g = b.graph;
    CHECK(g.parameter_count() == 146944 / 2);
    for (const char* p : {"right_embedding.weight", "right_lstm.weight_ih", "right_lstm.bias", "right_dense.weight"})
        CHECK_FALSE(g.find(p).has_value());
    const auto uses = [&](const std::string& node, const std::string& param) {
        const auto& in = g.node(index(g, node)).inputs;
        return std::find(in.begin(), in.end(), ValueRef{index(g, param), 0}) != in.end();
    };
    CHECK(uses("left_embedding", "left_embedding.weight"));
    CHECK(uses("right_embedding", "left_embedding.weight"));
    CHECK(uses("right_lstm", "left_lstm.weight_hh"));
    CHECK(uses("right_dense", "left_dense.bias"));
    CHECK(spec::load_spec_file(source("tests/specs/shared.yaml")).name == "shared_siamese");
}

TEST_CASE("a built spec runs forward and backward, padding and shared weights included", "[spec]") {
    const BuiltGraph b = build_file("tests/specs/shared.yaml");
    Executor ex(b.graph);
    initialize_parameters(ex, 3);
    // Two pairs of id sequences with padding (id 0) after 12 and 20 tokens.
    Tensor x1({2, 20}, DType::i64), x2({2, 20}, DType::i64);
    for (std::int64_t i = 0; i < 40; ++i) {
        x1.i64()[i] = (i % 20 < (i < 20 ? 12 : 20)) ? 1 + (7 * i) % 999 : 0;
        x2.i64()[i] = (i % 20 < 15) ? 1 + (11 * i) % 999 : 0;
    }
    ex.set("x1", x1);
    ex.set("x2", x2);
    ex.set("y", Tensor::from_floats({2}, std::vector<float>{1, 0}));
    ex.forward();
    CHECK(ex.value(b.graph.node(b.outputs[0].second).name).numel() == 2);
    const float loss = ex.value(b.loss).f32()[0];
    CHECK(std::isfinite(loss));
    CHECK(loss >= 0);
    ex.backward(b.loss);
    double norm = 0;
    for (float g : ex.grad("left_lstm.weight_hh").floats()) norm += std::abs(g);
    CHECK(norm > 0);
}

TEST_CASE("overrides from --set change values before the spec is read", "[spec]") {
    const std::vector<std::string> set{"train.epochs=5", "train.optimizer.lr=0.01", "train.shuffle=false",
                                       "data.synthetic.samples=100", "nodes.left_lstm.units=16", "name=short"};
    const spec::Spec s = spec::load_spec_file(source("graphs/siamese.yaml"), set);
    CHECK(s.train.epochs == 5);
    CHECK(s.train.optimizer.lr == 0.01);
    CHECK_FALSE(s.train.shuffle);
    CHECK(s.data.synthetic.samples == 100);
    CHECK(s.name == "short");
    CHECK(s.train.locs.at("epochs").str() == "--set train.epochs");
    CHECK(s.nodes[1].attr_locs.at("units").str() == "--set nodes.left_lstm.units");
    // The left lstm shrinks: 4 x 16 x (32 + 16 + 1) and a dense of 16 x 256 + 256.
    CHECK(build_graph(s, builtin_ops()).graph.parameter_count() == 146944 / 2 + 32000 + 3136 + 4352);
    // A section the file lacks is created.
    CHECK(spec::load_spec_string(kBase, "t", {"train.optimizer.type=sgd", "train.optimizer.momentum=0.9"}).train.optimizer.momentum == 0.9);
}

TEST_CASE("errors in --set overrides name the key", "[spec]") {
    CHECK_THAT(error_of_string(kBase, {"train.epoch=3"}), StartsWith("--set train.epoch: unknown train key 'epoch'") && Contains("did you mean 'train.epochs'?"));
    CHECK_THAT(error_of_string(kBase, {"trian.epochs=3"}), Contains("did you mean 'train.epochs'?"));
    CHECK_THAT(error_of_string(kBase, {"nodes.dz.units=3"}),
               StartsWith("--set nodes.dz.units: no node named 'dz'") && Contains("did you mean 'nodes.da.units'?"));
    CHECK_THAT(error_of_string(kBase, {"data.synthetic.sample=3"}), Contains("did you mean 'data.synthetic.samples'?"));
    CHECK_THAT(error_of_string(kBase, {"train.epochs.x=3"}), StartsWith("--set train.epochs.x: ") && Contains("single value"));
    CHECK_THAT(error_of_string(kBase, {"train.epochs"}), Contains("expected KEY=VALUE"));
    // A bad value is reported where it came from.
    CHECK_THAT(error_of_string(kBase, {"train.epochs=0"}), StartsWith("--set train.epochs: ") && Contains("must be a positive integer, got 0"));
    CHECK_THAT(error_of_string(kBase, {"nodes.da.units=2.5"}), StartsWith("--set nodes.da.units: ") && Contains("must be an integer"));
    CHECK_THAT(error_of_string(kBase, {"nodes.da.unit=2"}), StartsWith("--set nodes.da.unit: ") && Contains("did you mean 'units'?"));
}

TEST_CASE("data: files paths are resolved against the spec's folder", "[spec]") {
    const spec::Spec s = spec::load_spec_file(source("tests/specs/files_data.yaml"));
    CHECK(s.data.kind == spec::DataSpec::Kind::files);
    CHECK(s.data.files.inputs.at("a") == source("tests/specs/data/a.npy"));
    CHECK(s.data.files.labels == source("tests/labels.npy"));
    CHECK(spec::load_spec_string(with("loss: loss\n", "loss: loss\ndata: {text: {path: pairs.tsv}}\n"), "t").data.text.path == "pairs.tsv");
    CHECK_THAT(error_of_string(with("loss: loss\n", "loss: loss\ndata: {files: {inputs: {aa: a.npy}}}\n")),
               StartsWith("<string>:14:") && Contains("no input named 'aa'"));
}

TEST_CASE("spec errors: not YAML, empty, wrong structure", "[spec]") {
    const std::string not_yaml = source("tests/specs/not_yaml.yaml");
    CHECK_THAT(error_of_file("tests/specs/not_yaml.yaml"), StartsWith(not_yaml + ":3:1: not valid YAML: "));
    CHECK_THAT(error_of_file("tests/specs/empty.yaml"), StartsWith(source("tests/specs/empty.yaml") + ":1:1: the spec is empty"));
    CHECK_THAT(error_of_file("tests/specs/map_as_list.yaml"), StartsWith(source("tests/specs/map_as_list.yaml") + ":8:3: train must be a map, got a list"));
    CHECK_THAT(error_of_file("tests/specs/list_as_map.yaml"), StartsWith(source("tests/specs/list_as_map.yaml") + ":5:3: nodes must be a list, got a map"));
    CHECK_THAT(error_of_file("tests/specs/missing.yaml"), Contains("no such file"));
    CHECK_THAT(error_of_string("- 1\n- 2\n"), StartsWith("<string>:1:1: the spec must be a map, got a list"));
    CHECK_THAT(error_of_string(with("loss: loss\n", "")), StartsWith("<string>:1:1: the spec needs a `loss` key"));
    CHECK_THAT(error_of_string(with("train", "train", kBase + "train: {epochs: 1}\ntrain: {epochs: 2}\n")), StartsWith("<string>:15:1: ") && Contains("appears twice (first at <string>:14:1)"));
}

TEST_CASE("spec errors: unknown keys suggest the near miss", "[spec]") {
    CHECK_THAT(error_of_string(kBase + "trian: {epochs: 1}\n"), StartsWith("<string>:14:1: unknown key 'trian' in the spec") && Contains("did you mean 'train'?"));
    CHECK_THAT(error_of_string(kBase + "train: {epcohs: 1}\n"), StartsWith("<string>:14:9: unknown key 'epcohs' in train") && Contains("did you mean 'epochs'?"));
    CHECK_THAT(error_of_string(kBase + "data: {synthetc: {}}\n"), StartsWith("<string>:14:8: unknown key 'synthetc' in data") && Contains("did you mean 'synthetic'?"));
    CHECK_THAT(error_of_string(kBase + "data:\n  synthetic: {sample: 5}\n"), StartsWith("<string>:15:15: ") && Contains("did you mean 'samples'?"));
    CHECK_THAT(error_of_string(with("{name: da,", "{nmae: da,")), StartsWith("<string>:6:5: a node needs a name (is 'nmae' a misspelt 'name'?)"));
    CHECK_THAT(error_of_string(with("{name: da, op:", "{name: da, opp:")), StartsWith("<string>:6:5: node 'da' needs an op (is 'opp' a misspelt 'op'?)"));
    CHECK_THAT(error_of_string(with("{name: a, shape: [4]}", "{name: a, shape: [4], dtyp: int32}")), StartsWith("<string>:2:27: unknown key 'dtyp' in an input") && Contains("did you mean 'dtype'?"));
    CHECK_THAT(error_of_string(with("units: 3}", "unit: 3}")), StartsWith("<string>:6:46: node 'da' (dense): unknown attribute 'unit'") && Contains("did you mean 'units'?"));
}

TEST_CASE("spec errors: wrong types", "[spec]") {
    CHECK_THAT(error_of_string(kBase + "train: {epochs: two}\n"), StartsWith("<string>:14:17: train.epochs must be an integer, got 'two'"));
    CHECK_THAT(error_of_string(kBase + "train: {epochs: 2.5}\n"), StartsWith("<string>:14:17: train.epochs must be an integer, got 2.5"));
    CHECK_THAT(error_of_string(kBase + "train: {shuffle: 3}\n"), Contains("train.shuffle must be true or false"));
    CHECK_THAT(error_of_string(kBase + "train: {optimizer: {lr: fast}}\n"), Contains("train.optimizer.lr must be a number, got 'fast'"));
    CHECK_THAT(error_of_string(with("units: 3}", "units: 3.5}")), StartsWith("<string>:6:47: ") && Contains("attribute 'units' must be an integer, got 3.5"));
    CHECK_THAT(error_of_string(with("units: 3}", "units: \"3\"}")), Contains("attribute 'units' must be an integer, got '3'"));
    CHECK_THAT(error_of_string(with("value: 1.0", "value: one")), Contains("attribute 'value' must be a number, got 'one'"));
    CHECK_THAT(error_of_string(with("shape: [4]", "shape: 4")), StartsWith("<string>:2:22: input 'a': shape must be a list, got '4'"));
    CHECK_THAT(error_of_string(with("shape: [4]}", "shape: [4], dtype: float64}")), Contains("dtype must be one of int32, int64, float32, got 'float64'"));
}

TEST_CASE("spec errors: sizes must be positive and not absurd", "[spec]") {
    CHECK_THAT(error_of_string(with("units: 3}", "units: 0}")), StartsWith("<string>:6:47: ") && Contains("units must be a positive integer, got 0"));
    const std::string embedding = with("{name: da, op: dense, inputs: [a], units: 3}", "{name: da, op: dense, inputs: [e], units: 3}\n  - {name: e, op: embedding, inputs: [a], vocab: 10, dim: 4}");
    CHECK_THAT(error_of_string(with("vocab: 10", "vocab: 0", embedding)), StartsWith("<string>:7:") && Contains("vocab must be a positive integer"));
    CHECK_THAT(error_of_string(with("dim: 4", "dim: -2", embedding)), Contains("dim must be a positive integer, got -2"));
    CHECK_THAT(error_of_string(kBase + "train: {epochs: 0}\n"), Contains("train.epochs must be a positive integer, got 0"));
    CHECK_THAT(error_of_string(kBase + "train: {batch_size: -32}\n"), Contains("train.batch_size must be a positive integer, got -32"));
    CHECK_THAT(error_of_string(kBase + "data: {synthetic: {samples: 0}}\n"), Contains("data.synthetic.samples must be a positive integer, got 0"));
    CHECK_THAT(error_of_string(with("shape: [4]", "shape: [0]")), StartsWith("<string>:2:") && Contains("must be a positive integer, got 0"));
    // Refused before anything is allocated: 10^9 x 10^3 floats would be 4 TB.
    CHECK_THAT(error_of_string(with("vocab: 10, dim: 4", "vocab: 1000000000, dim: 1000", embedding)),
               StartsWith("<string>:7:5: ") && Contains("weight (1000000000, 1000) is too large: 1000000000000 elements"));
    CHECK_THAT(error_of_string(with("shape: [4]", "shape: [100000, 100000]")), StartsWith("<string>:2:") && Contains("too large: 10000000000 elements"));
    CHECK_THAT(error_of_string(with("units: 3}", "units: 100000000000}")), Contains("too large"));
    CHECK_THAT(error_of_string(kBase + "train: {validation: 1.0}\n"), Contains("train.validation must be in [0, 1), got 1"));
    CHECK_THAT(error_of_string(kBase + "train: {validation: -0.1}\n"), Contains("train.validation must be in [0, 1), got -0.1"));
}

TEST_CASE("spec errors: names and references", "[spec]") {
    CHECK_THAT(error_of_string(with("{name: one,", "{name: da,")), StartsWith("<string>:9:5: node 'da' is defined twice (first as a node at <string>:6:5)"));
    CHECK_THAT(error_of_string(with("{name: da,", "{name: a,")), StartsWith("<string>:6:5: node 'a' is defined twice (first as an input at <string>:2:5)"));
    CHECK_THAT(error_of_string(with("inputs: [one, sim]", "inputs: [one, simm]")),
               StartsWith("<string>:10:41: node 'dist': no input or node named 'simm'") && Contains("did you mean 'sim'?"));
    CHECK_THAT(error_of_string(with("share: da", "share: dd")), Contains("shares the weights of 'dd', but there is no node") && Contains("did you mean 'da'?"));
    CHECK_THAT(error_of_string(with("share: da", "share: sim")), Contains("a dense node can only share the weights of another dense node"));
    CHECK_THAT(error_of_string(with("{name: da,", "{name: d.a,")), Contains("node name 'd.a' must be letters, digits"));
    CHECK_THAT(error_of_file("tests/specs/cycle.yaml"), StartsWith(source("tests/specs/cycle.yaml") + ":6:5: the nodes form a cycle: a -> b -> c -> a"));
    CHECK_THAT(error_of_string(with("outputs: [sim]", "outputs: [simm]")), StartsWith("<string>:12:10: outputs names 'simm'") && Contains("did you mean 'sim'?"));
    CHECK_THAT(error_of_string(with("loss: loss\n", "loss: los\n")), StartsWith("<string>:13:7: loss names 'los'") && Contains("did you mean 'loss'?"));
    CHECK_THAT(error_of_string(with("loss: loss\n", "loss: dist\n")), StartsWith("<string>:13:7: the loss 'dist' must be a float32 scalar"));
}

TEST_CASE("spec errors: ops, attributes, inputs, shapes", "[spec]") {
    CHECK_THAT(error_of_string(with("op: cosine", "op: cosin")),
               StartsWith("<string>:8:5: node 'sim': unknown op 'cosin' (known ops: embedding, lstm, dense, ") && Contains("did you mean 'cosine'?"));
    CHECK_THAT(error_of_string(with("op: cosine", "op: matmul")), Contains("unknown op 'matmul'"));
    CHECK_THAT(error_of_string(with(", units: 3}", "}")), StartsWith("<string>:6:5: node 'da' (dense): missing attribute 'units'"));
    CHECK_THAT(error_of_string(with("op: cosine, inputs: [da, db]", "op: cosine, inputs: [da, db], eps: 0.1, scale: 2")),
               StartsWith("<string>:8:") && Contains("unknown attribute 'scale' (known: eps)"));
    CHECK_THAT(error_of_string(with("inputs: [da, db]", "inputs: [da]")), StartsWith("<string>:8:5: node 'sim' (cosine): expects 2 inputs, got 1"));
    // The graph's own message, at the node.
    CHECK_THAT(error_of_string(with("units: 3, share: da}", "units: 5}")), StartsWith("<string>:8:5: node 'sim' (cosine): "));
    CHECK_THAT(error_of_string(with("units: 3, share: da}", "units: 5, share: da}")), StartsWith("<string>:7:5: node 'db': shares 'da.weight'"));
}

TEST_CASE("spec errors: data, train, optimizer", "[spec]") {
    CHECK_THAT(error_of_string(kBase + "data: {}\n"), StartsWith("<string>:14:7: data must hold exactly one of synthetic, files, text, inputs; got none"));
    CHECK_THAT(error_of_string(kBase + "data: {synthetic: {}, text: {path: a.tsv}}\n"), Contains("got synthetic and text"));
    CHECK_THAT(error_of_string(kBase + "train: {optimizer: {type: adan}}\n"),
               StartsWith("<string>:14:27: unknown optimizer type 'adan' (known: adam, adamw, sgd)") && Contains("did you mean 'adam'?"));
    CHECK_THAT(error_of_string(kBase + "train: {optimizer: {type: adam, momentum: 0.9}}\n"), Contains("'momentum' is not a setting of adam"));
    CHECK_THAT(error_of_string(kBase + "train: {optimizer: {lr: 0}}\n"), Contains("train.optimizer.lr must be > 0, got 0"));
    CHECK_THAT(error_of_string(kBase + "data: {synthetic: {signal: 1.5}}\n"), Contains("data.synthetic.signal must be in [0, 1], got 1.5"));
}

TEST_CASE("AdamW and the learning-rate schedule: defaults, --set, and every bad value at its place", "[spec]") {
    const spec::Spec plain = spec::load_spec_string(kBase, "t");
    CHECK(plain.train.schedule.warmup == 0);
    CHECK(plain.train.schedule.decay == "constant");
    CHECK(plain.train.schedule.min_lr == 0.0);
    const spec::Spec adamw = spec::load_spec_string(kBase + "train: {optimizer: {type: adamw}}\n", "t");
    CHECK(adamw.train.optimizer.weight_decay == 0.01);  // torch.optim.AdamW's default
    CHECK(adamw.train.optimizer.lr == 0.001);
    const spec::Spec set = spec::load_spec_string(kBase, "t",
                                                  {"train.schedule.decay=cosine", "train.schedule.warmup=100", "train.schedule.min_lr=1e-5",
                                                   "train.optimizer.type=adamw", "train.optimizer.weight_decay=0.1"});
    CHECK(set.train.schedule.decay == "cosine");
    CHECK(set.train.schedule.warmup == 100);
    CHECK(set.train.schedule.min_lr == 1e-5);
    CHECK(set.train.optimizer.weight_decay == 0.1);
    CHECK_THAT(error_of_string(kBase, {"train.schedule.decai=linear"}), Contains("did you mean 'train.schedule.decay'?"));
    CHECK_THAT(error_of_string(kBase, {"train.schedule.warmup=-1"}),
               StartsWith("--set train.schedule.warmup: train.schedule.warmup (optimizer steps) must be a non-negative integer, got -1"));

    const auto error = [](const std::string& train) { return error_of_string(kBase + train + "\n"); };
    CHECK_THAT(error("train: {schedule: {warmup: -3}}"), StartsWith("<string>:14:28: train.schedule.warmup (optimizer steps) must be a non-negative integer, got -3"));
    CHECK_THAT(error("train: {schedule: {warmup: ten}}"), StartsWith("<string>:14:28: train.schedule.warmup (optimizer steps) must be an integer, got 'ten'"));
    CHECK_THAT(error("train: {schedule: {warmup: \"10\"}}"), StartsWith("<string>:14:28: ") && Contains("must be an integer, got the string \"10\""));
    CHECK_THAT(error("train: {schedule: {warmup: 2.5}}"), StartsWith("<string>:14:28: ") && Contains("must be an integer, got 2.5"));
    CHECK_THAT(error("train: {schedule: {decay: cosin}}"),
               StartsWith("<string>:14:27: train.schedule.decay must be one of constant, linear, cosine, got 'cosin'") && Contains("did you mean 'cosine'?"));
    CHECK_THAT(error("train: {schedule: {min_lr: 0.0001}}"), StartsWith("<string>:14:28: ") && Contains("with decay constant it would be ignored"));
    CHECK_THAT(error("train: {schedule: {decay: linear, min_lr: 0.01}, optimizer: {lr: 0.001}}"),
               StartsWith("<string>:14:43: train.schedule.min_lr must be at most train.optimizer.lr (0.001)") && Contains("got 0.01"));
    CHECK_THAT(error("train: {schedule: {decay: linear, min_lr: -0.1}}"), StartsWith("<string>:14:43: train.schedule.min_lr must be >= 0, got -0.1"));
    CHECK_THAT(error("train: {schedule: {decay: linear, warm_up: 3}}"), StartsWith("<string>:14:35: unknown key 'warm_up' in train.schedule") && Contains("did you mean 'warmup'?"));
    CHECK_THAT(error("train: {schedule: [1]}"), StartsWith("<string>:14:19: train.schedule must be a map, got a list"));
    // torch.optim.Adam's weight_decay is L2 in the gradient: graphrun's adam has none, and says where decoupled decay is.
    CHECK_THAT(error("train: {optimizer: {type: adam, weight_decay: 0.1}}"),
               StartsWith("<string>:14:33: 'weight_decay' is not a setting of adam") && Contains("decoupled weight decay is type adamw"));
    CHECK_THAT(error("train: {optimizer: {type: sgd, weight_decay: 0.1}}"), Contains("'weight_decay' is not a setting of sgd"));
    CHECK_THAT(error("train: {optimizer: {type: adamw, weight_decay: -1}}"), StartsWith("<string>:14:48: train.optimizer.weight_decay must be >= 0, got -1"));
    CHECK_THAT(error("train: {optimizer: {type: adamw, momentum: 0.9}}"), Contains("'momentum' is not a setting of adamw"));
}

TEST_CASE("lint: a cosine similarity fed to contrastive_loss as the distance", "[spec]") {
    CHECK_THAT(error_of_file("tests/specs/cosine_as_distance.yaml"),
               StartsWith(source("tests/specs/cosine_as_distance.yaml") + ":9:49: ") &&
                   Contains("contrastive_loss expects a distance, but 'similarity' is a cosine similarity (1 = identical): "
                            "feed `1 - cosine` (a `sub` node with a constant 1.0) instead"));
    CHECK_THAT(error_of_string(with("inputs: [dist, y]", "inputs: [sim, y]")), StartsWith("<string>:11:49: ") && Contains("'sim' is a cosine similarity"));
}
