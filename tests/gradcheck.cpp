#include "tests/gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "ops/builtin.hpp"

namespace graphrun::testing {

Tensor random_tensor(const Shape& shape, unsigned seed, float lo, float hi) {
    Tensor t(shape);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    for (float& x : t.floats()) x = dist(rng);
    return t;
}

namespace {
double weighted_sum(const Executor& ex, const std::vector<ValueRef>& outputs, const std::vector<Tensor>& weights) {
    double total = 0;
    for (std::size_t k = 0; k < outputs.size(); ++k) {
        auto y = ex.value(outputs[k]).floats();
        auto w = weights[k].floats();
        for (std::size_t j = 0; j < y.size(); ++j) total += static_cast<double>(w[j]) * y[j];
    }
    return total;
}
}  // namespace

int check_graph_gradients(const Graph& graph, Executor& ex, const std::vector<ValueRef>& outputs,
                          const std::vector<std::string>& parameters, const GradcheckOptions& options) {
    ex.forward();
    std::vector<Tensor> weights;
    std::vector<std::pair<ValueRef, Tensor>> seeds;
    for (std::size_t k = 0; k < outputs.size(); ++k) {
        weights.push_back(random_tensor(ex.value(outputs[k]).shape(), options.seed + 101 * static_cast<unsigned>(k) + 7));
        seeds.emplace_back(outputs[k], weights.back());
    }
    ex.backward(seeds);

    int compared = 0;
    std::mt19937 rng(options.seed);
    for (const auto& name : parameters) {
        const int node = graph.index_of(name);
        Tensor analytic = ex.grad(node).clone();
        Tensor x = ex.value(ValueRef{node, 0});
        std::vector<std::int64_t> positions(static_cast<std::size_t>(x.numel()));
        for (std::int64_t j = 0; j < x.numel(); ++j) positions[static_cast<std::size_t>(j)] = j;
        if (static_cast<int>(positions.size()) > options.max_elements) {
            std::shuffle(positions.begin(), positions.end(), rng);
            positions.resize(static_cast<std::size_t>(options.max_elements));
        }
        for (auto j : positions) {
            float* p = x.f32() + j;
            const float saved = *p;
            *p = static_cast<float>(saved + options.step);
            ex.forward();
            const double plus = weighted_sum(ex, outputs, weights);
            *p = static_cast<float>(saved - options.step);
            ex.forward();
            const double minus = weighted_sum(ex, outputs, weights);
            *p = saved;
            const double numeric = (plus - minus) / (2 * options.step);
            const double a = analytic.f32()[j];
            const double tolerance = options.atol + options.rtol * std::max(std::abs(a), std::abs(numeric));
            if (std::abs(a - numeric) > tolerance)
                FAIL_CHECK(fmt::format("d/d{}[{}]: analytic {:.6g}, finite difference {:.6g}", name, j, a, numeric));
            ++compared;
        }
    }
    ex.forward();
    return compared;
}

int check_op_gradients(const std::string& op_name, const std::vector<Tensor>& inputs, const Attrs& attrs,
                       const GradcheckOptions& options) {
    Graph graph(builtin_ops());
    std::vector<ValueRef> refs;
    std::vector<std::string> parameters;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const std::string name = fmt::format("in{}", i);
        if (inputs[i].dtype() == DType::f32) {
            refs.push_back(graph.parameter(name, inputs[i].type()));
            parameters.push_back(name);
        } else {
            refs.push_back(graph.input(name, inputs[i].type()));
        }
    }
    const ValueRef y = graph.add("op", op_name, refs, attrs);
    Executor ex(graph);
    for (std::size_t i = 0; i < inputs.size(); ++i) ex.set(refs[i].node, inputs[i].clone());
    std::vector<ValueRef> outputs;
    for (std::size_t k = 0; k < graph.node(y).outputs.size(); ++k) outputs.push_back(ValueRef{y.node, static_cast<int>(k)});
    return check_graph_gradients(graph, ex, outputs, parameters, options);
}

}  // namespace graphrun::testing
