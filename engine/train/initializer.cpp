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
            // `draws` > 1: each value the sum of that many draws (an LSTM's one
            // bias drawn as PyTorch's bias_ih + bias_hh).
            const float bound = static_cast<float>(node.attrs.number("bound"));
            const std::int64_t draws = node.attrs.has("draws") ? node.attrs.integer("draws") : 1;
            std::uniform_real_distribution<float> dist(-bound, bound);
            for (float& v : value.floats()) {
                float sum = 0;
                for (std::int64_t k = 0; k < draws; ++k) sum += dist(rng);
                v = sum;
            }
        } else if (rule == "ones") {
            value.fill(1.0f);
        } else if (rule != "zeros") {
            throw Error(fmt::format("parameter '{}': unknown init rule '{}' (known: normal, uniform, ones, zeros)", node.name, rule));
        }
        executor.set(p, std::move(value));
    }
}

}  // namespace graphrun
