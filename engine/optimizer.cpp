#include "engine/optimizer.hpp"

#include <cmath>

namespace graphrun {

void Adam::step(Executor& executor) {
    ++step_;
    const double correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(step_));
    const double correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(step_));
    // PyTorch's arithmetic order: denom = sqrt(v) / sqrt(c2) + eps; p -= (lr / c1) * m / denom.
    const float step_size = static_cast<float>(options_.lr / correction1);
    const float sqrt_c2 = static_cast<float>(std::sqrt(correction2));
    const float b1 = static_cast<float>(options_.beta1), b2 = static_cast<float>(options_.beta2);
    const float eps = static_cast<float>(options_.eps);
    const Graph& graph = executor.graph();
    for (int p : graph.parameters()) {
        const Node& node = graph.node(p);
        Tensor param = executor.value(ValueRef{p, 0});  // shares storage: updated in place
        const Tensor& grad = executor.grad(p);
        auto [it, fresh] = moments_.try_emplace(node.name);
        if (fresh) it->second = {Tensor(param.type()), Tensor(param.type())};
        float* w = param.f32();
        float* m = it->second.m.f32();
        float* v = it->second.v.f32();
        const float* g = grad.f32();
        for (std::int64_t j = 0; j < param.numel(); ++j) {
            m[j] = b1 * m[j] + (1.0f - b1) * g[j];
            v[j] = b2 * v[j] + (1.0f - b2) * g[j] * g[j];
            const float denom = std::sqrt(v[j]) / sqrt_c2 + eps;
            w[j] -= step_size * (m[j] / denom);
        }
    }
}

void Sgd::step(Executor& executor) {
    const Graph& graph = executor.graph();
    const float lr = static_cast<float>(lr_), momentum = static_cast<float>(momentum_);
    for (int p : graph.parameters()) {
        Tensor param = executor.value(ValueRef{p, 0});
        const float* g = executor.grad(p).f32();
        float* w = param.f32();
        if (momentum_ == 0.0) {
            for (std::int64_t j = 0; j < param.numel(); ++j) w[j] -= lr * g[j];
            continue;
        }
        auto [it, fresh] = velocity_.try_emplace(graph.node(p).name);
        if (fresh) it->second = executor.grad(p).clone();
        float* b = it->second.f32();
        for (std::int64_t j = 0; j < param.numel(); ++j) {
            if (!fresh) b[j] = momentum * b[j] + g[j];
            w[j] -= lr * b[j];
        }
    }
}

}  // namespace graphrun
