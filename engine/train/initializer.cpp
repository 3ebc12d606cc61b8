#include "engine/train/initializer.hpp"

#include <random>

#include <fmt/format.h>

namespace graphrun {

void initialize_parameters(Executor& executor, std::uint64_t seed) {
    const Graph& graph = executor.graph();
    std::mt19937_64 rng(seed);
    for (int p : graph.parameters()) {
        const Node& node = graph.node(p);
        Tensor value(node.outputs[0]);
        const std::string rule = node.attrs.has("init") ? node.attrs.string("init") : "zeros";
        if (rule == "normal") {
            std::normal_distribution<float> dist(0.0f, static_cast<float>(node.attrs.number("std")));
            for (float& v : value.floats()) v = dist(rng);
        } else if (rule == "uniform") {
            const float bound = static_cast<float>(node.attrs.number("bound"));
            std::uniform_real_distribution<float> dist(-bound, bound);
            for (float& v : value.floats()) v = dist(rng);
        } else if (rule == "ones") {
            value.fill(1.0f);
        } else if (rule != "zeros") {
            throw Error(fmt::format("parameter '{}': unknown init rule '{}' (known: normal, uniform, ones, zeros)", node.name, rule));
        }
        executor.set(p, std::move(value));
    }
}

}  // namespace graphrun
