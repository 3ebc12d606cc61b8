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
    const int compared = check_graph_gradients(graph, ex, outputs, parameters, options);
    check_backward_adds(graph.node(y), inputs, options.seed);
    return compared;
}

void check_backward_adds(const Node& node, const std::vector<Tensor>& inputs, unsigned seed) {
    // The op alone, outside any executor, as a second user of a value would
    // call it: every gradient buffer already holds something.
    const Op& op = *node.op;
    auto state = op.make_state();
    std::vector<Tensor> outputs;
    for (const TensorType& t : node.outputs) {
        Shape shape = t.shape;
        if (!shape.empty() && shape[0] == kAnyDim) shape[0] = inputs[0].dim(0);
        outputs.emplace_back(shape, t.dtype);
    }
    op.forward({inputs, outputs, state.get(), true});
    std::vector<Tensor> output_grads;
    for (std::size_t k = 0; k < outputs.size(); ++k) output_grads.push_back(random_tensor(outputs[k].shape(), seed + 31 * static_cast<unsigned>(k) + 3));

    // From zeros: the op's own gradient g. From h: it must give h + g.
    std::vector<Tensor> from_zero, from_h;
    std::vector<Tensor*> zero_ptrs, h_ptrs;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const bool wanted = inputs[i].dtype() == DType::f32;
        from_zero.push_back(wanted ? Tensor(inputs[i].shape()) : Tensor());
        if (wanted) from_zero.back().zero();
        from_h.push_back(wanted ? random_tensor(inputs[i].shape(), seed + 57 * static_cast<unsigned>(i) + 11) : Tensor());
    }
    const std::vector<Tensor> held = [&] {
        std::vector<Tensor> copies;
        for (const Tensor& t : from_h) copies.push_back(t.defined() ? t.clone() : Tensor());
        return copies;
    }();
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        zero_ptrs.push_back(from_zero[i].defined() ? &from_zero[i] : nullptr);
        h_ptrs.push_back(from_h[i].defined() ? &from_h[i] : nullptr);
    }
    op.backward({inputs, outputs, output_grads, zero_ptrs, state.get()});
    // The forward again, so an op that keeps state for one backward has it again.
    op.forward({inputs, outputs, state.get(), true});
    op.backward({inputs, outputs, output_grads, h_ptrs, state.get()});
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        if (!h_ptrs[i]) continue;
        const std::span<const float> g = from_zero[i].floats(), h = held[i].floats(), got = from_h[i].floats();
        for (std::size_t j = 0; j < got.size(); ++j)
            if (std::abs(got[j] - (h[j] + g[j])) > 1e-5f * (1 + std::abs(h[j]) + std::abs(g[j]))) {
                FAIL_CHECK(fmt::format("{}: backward into input {}'s gradient that held {} gave {} at [{}], expected {} + {} (it must add, not assign)",
                                       node.op_name, i, h[j], got[j], j, h[j], g[j]));
                break;
            }
    }
}

}  // namespace graphrun::testing
