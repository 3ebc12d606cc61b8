// Inspection: the graph dump (JSON) and the executor's per-node profile.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "engine/train/initializer.hpp"
#include "tools/graph_json.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "ops/builtin.hpp"

using namespace graphrun;

namespace {
const nlohmann::json* find_node(const nlohmann::json& doc, const std::string& name) {
    for (const auto& n : doc["nodes"])
        if (n["name"] == name) return &n;
    return nullptr;
}
}  // namespace

TEST_CASE("the dump of graphs/siamese.yaml has every node with its shapes, counts and composite", "[inspect]") {
    const auto spec = spec::load_spec_file(GRAPHRUN_SOURCE_DIR "/graphs/siamese.yaml");
    const auto built = build_graph(spec, builtin_ops());
    GraphDumpInfo info;
    info.name = spec.name;
    info.spec = spec.path;
    info.outputs = {"left_dense", "right_dense", "similarity"};
    info.loss = "loss";
    const auto doc = nlohmann::json::parse(graph_to_json(built.graph, info));
    CHECK(doc["format"] == "graphrun-graph");
    CHECK(doc["version"] == kGraphDumpVersion);
    CHECK(doc["name"] == "siamese");
    CHECK(doc["loss"] == "loss");
    CHECK(doc["inputs"] == nlohmann::json({"x1", "x2", "y"}));
    CHECK(doc["parameters"]["trainable"] == 146944);
    REQUIRE(doc["nodes"].size() == built.graph.nodes().size());
    for (std::size_t i = 0; i < built.graph.nodes().size(); ++i) CHECK(doc["nodes"][i]["name"] == built.graph.nodes()[i].name);

    const auto* lstm = find_node(doc, "right_lstm");
    REQUIRE(lstm);
    CHECK((*lstm)["op"] == "lstm");
    CHECK((*lstm)["outputs"][0]["shape"] == nlohmann::json({"N", 64}));
    CHECK((*lstm)["parameters"] == 4 * 64 * (32 + 64) + 4 * 64);
    CHECK((*lstm)["attributes"]["units"] == 64);
    CHECK((*lstm)["inputs"][0]["node"] == "right_embedding");
    const auto* emb = find_node(doc, "right_embedding");
    REQUIRE(emb);
    CHECK((*emb)["outputs"][0]["shape"] == nlohmann::json({"N", 600, 32}));
    CHECK((*emb)["outputs"][0]["dtype"] == "float32");
    CHECK((*find_node(doc, "x2"))["outputs"][0]["dtype"] == "int32");
    const auto* weight = find_node(doc, "right_embedding.weight");
    REQUIRE(weight);
    CHECK((*weight)["kind"] == "parameter");
    CHECK((*weight)["parameters"] == 32000);
    const auto* dense = find_node(doc, "left_dense");
    REQUIRE(dense);
    CHECK((*dense)["composite"]["kind"] == "dense");
    CHECK((*dense)["parameters"] == 64 * 256 + 256);
    CHECK((*find_node(doc, "loss"))["composite"]["kind"] == "contrastive_loss");
    CHECK((*find_node(doc, "loss"))["outputs"][0]["shape"] == nlohmann::json::array());
    CHECK((*find_node(doc, "similarity"))["composite"].is_null());
    CHECK_FALSE(doc.contains("profile"));
}

TEST_CASE("the profile times every node that ran and counts the lstm's and matmul's FLOPs", "[inspect]") {
    const auto spec = spec::load_spec_file(GRAPHRUN_SOURCE_DIR "/tests/specs/small_siamese.yaml");
    const auto built = build_graph(spec, builtin_ops());
    const Graph& g = built.graph;
    Executor ex(g);
    initialize_parameters(ex, 1);
    ex.set("x1", Tensor({4, 6}, DType::i32));
    ex.set("x2", Tensor({4, 8}, DType::i64));
    ex.set("y", Tensor(Shape{4}));
    ex.forward();  // not profiled
    ex.set_profiling(true);
    for (int step = 0; step < 3; ++step) {
        ex.forward();
        ex.backward(built.loss);
    }
    ex.set_profiling(false);
    ex.forward();  // not profiled either
    const auto& lstm = ex.profile()[static_cast<std::size_t>(g.index_of("right_lstm"))];
    CHECK(lstm.forward_calls == 3);
    CHECK(lstm.backward_calls == 3);
    CHECK(lstm.forward_s > 0);
    CHECK(lstm.forward_flops == Approx(3 * 2.0 * 4 * 8 * 4 * 12 * (8 + 12)));  // 2 N T 4H (E + H), 3 calls
    CHECK(lstm.backward_flops == Approx(2 * lstm.forward_flops));
    const auto& dense = ex.profile()[static_cast<std::size_t>(g.index_of("left_dense"))];
    CHECK(dense.forward_flops == Approx(3 * 2.0 * 4 * 12 * 16));
    CHECK(ex.profile()[static_cast<std::size_t>(g.index_of("x1"))].forward_calls == 0);  // leaves do not run

    GraphDumpInfo info;
    info.name = spec.name;
    info.profile = &ex.profile();
    info.steps = 3;
    const auto doc = nlohmann::json::parse(graph_to_json(g, info));
    CHECK(doc["profile"]["steps"] == 3);
    CHECK((*find_node(doc, "right_lstm"))["profile"]["forward_calls"] == 3);
    CHECK_FALSE(find_node(doc, "x1")->contains("profile"));
    ex.reset_profile();
    CHECK(ex.profile()[static_cast<std::size_t>(g.index_of("right_lstm"))].forward_calls == 0);
}
