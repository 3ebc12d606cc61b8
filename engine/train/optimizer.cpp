#include "engine/train/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "engine/core/threads.hpp"

namespace graphrun {

namespace {
// The saved state must name every parameter with the right shape.
Tensor state_for(const std::map<std::string, Tensor>& state, const std::string& key, const TensorType& type) {
    auto it = state.find(key);
    if (it == state.end()) throw Error(fmt::format("optimizer state has no '{}'", key));
    if (it->second.type() != type)
        throw Error(fmt::format("optimizer state '{}' is {}, the parameter is {}", key, to_string(it->second.type()), to_string(type)));
    return it->second.clone();
}
}  // namespace

void Adam::step(Executor& executor) {
    ++steps_;
    const double correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
    const double correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
    // PyTorch's arithmetic order: denom = sqrt(v) / sqrt(c2) + eps; p -= (lr / c1) * m / denom.
    const float step_size = static_cast<float>(lr_ / correction1);
    const float decay = static_cast<float>(1.0 - lr_ * options_.weight_decay);  // torch: param.mul_(1 - lr * weight_decay)
    const float sqrt_c2 = static_cast<float>(std::sqrt(correction2));
    const float b1 = static_cast<float>(options_.beta1), b2 = static_cast<float>(options_.beta2);
    // torch takes 1 - beta in double, then rounds it: 1.0f - b2 would be another
    // beta2 (1 - 0.999f is 0.00099998713, 1.3e-5 from 0.001), which shows after a few steps.
    const float one_minus_b1 = static_cast<float>(1.0 - options_.beta1), one_minus_b2 = static_cast<float>(1.0 - options_.beta2);
    const float eps = static_cast<float>(options_.eps);
    // Every parameter's arrays first (the moments made here, in this thread), then the
    // update over all their elements as one range cut into parts that run on idle
    // threads: each element's update is independent, so the cut changes no result.
    struct Arrays {
        float *w, *m, *v;
        const float* g;
        std::int64_t size;
    };
    std::vector<Arrays> arrays;
    std::int64_t total = 0;
    const Graph& graph = executor.graph();
    for (int p : graph.parameters()) {
        const Node& node = graph.node(p);
        Tensor param = executor.value(ValueRef{p, 0});  // shares storage: updated in place
        const Tensor& grad = executor.grad(p);
        auto [it, fresh] = moments_.try_emplace(node.name);
        if (fresh) it->second = {Tensor(param.type()), Tensor(param.type())};
        if (it->second.m.type() != param.type() || it->second.v.type() != param.type())
            throw Error(fmt::format("Adam state for '{}' is {}, the parameter is {}", node.name, to_string(it->second.m.type()), to_string(param.type())));
        arrays.push_back({param.f32(), it->second.m.f32(), it->second.v.f32(), grad.f32(), param.numel()});
        total += param.numel();
    }
    const bool decoupled = options_.weight_decay != 0;
    // Constants and arrays copied into the loop's own names (restrict: the four do not
    // overlap), so GCC keeps them in registers and vectorizes the update.
    const auto update = [=](const Arrays& a, std::int64_t begin, std::int64_t end) {
        float* __restrict const w = a.w;
        float* __restrict const m = a.m;
        float* __restrict const v = a.v;
        const float* __restrict const g = a.g;
        if (decoupled)
            for (std::int64_t j = begin; j < end; ++j) w[j] *= decay;
        for (std::int64_t j = begin; j < end; ++j) {
            m[j] = b1 * m[j] + one_minus_b1 * g[j];
            v[j] = b2 * v[j] + one_minus_b2 * g[j] * g[j];
            const float denom = std::sqrt(v[j]) / sqrt_c2 + eps;
            w[j] += -step_size * m[j] / denom;  // torch's addcdiv_: p + value * m / denom, left to right
        }
    };
    // Parts of at least 16k elements (smaller ones cost more to hand over than they save).
    const int parts = static_cast<int>(std::clamp<std::int64_t>(total / 16384, 1, 8));
    run_parts(parts, static_cast<double>(total) / parts, [&](int part) {
        const auto [first, count] = split_rows(total, parts, part);
        std::int64_t start = 0;  // of the current parameter in the whole range
        for (const Arrays& a : arrays) {
            const std::int64_t begin = std::max<std::int64_t>(first - start, 0), end = std::min(first + count - start, a.size);
            if (begin < end) update(a, begin, end);
            start += a.size;
        }
    });
}

std::map<std::string, Tensor> Adam::state() const {
    std::map<std::string, Tensor> out;
    for (const auto& [name, moments] : moments_) {
        out[name + ".adam_m"] = moments.m;
        out[name + ".adam_v"] = moments.v;
    }
    return out;
}

void Adam::load_state(const std::map<std::string, Tensor>& state, std::int64_t steps) {
    moments_.clear();
    steps_ = steps;
    for (const auto& [key, tensor] : state) {
        const auto dot = key.rfind(".adam_m");
        if (dot == std::string::npos || dot + 7 != key.size()) continue;
        const std::string name = key.substr(0, dot);
        moments_[name] = {tensor.clone(), state_for(state, name + ".adam_v", tensor.type())};
    }
}

void Sgd::step(Executor& executor) {
    ++steps_;
    const Graph& graph = executor.graph();
    const float lr = static_cast<float>(lr_), momentum = static_cast<float>(momentum_);  // lr_: this step's, set by a schedule
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
        if (it->second.type() != param.type())
            throw Error(fmt::format("SGD state for '{}' is {}, the parameter is {}", graph.node(p).name, to_string(it->second.type()), to_string(param.type())));
        float* b = it->second.f32();
        for (std::int64_t j = 0; j < param.numel(); ++j) {
            if (!fresh) b[j] = momentum * b[j] + g[j];
            w[j] -= lr * b[j];
        }
    }
}

std::map<std::string, Tensor> Sgd::state() const {
    std::map<std::string, Tensor> out;
    for (const auto& [name, velocity] : velocity_) out[name + ".sgd_momentum"] = velocity;
    return out;
}

void Sgd::load_state(const std::map<std::string, Tensor>& state, std::int64_t steps) {
    velocity_.clear();
    steps_ = steps;
    const std::string suffix = ".sgd_momentum";
    for (const auto& [key, tensor] : state)
        if (key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0)
            velocity_[key.substr(0, key.size() - suffix.size())] = tensor.clone();
}

double clip_grad_norm(Executor& executor, double max_norm) {
    const Graph& graph = executor.graph();
    double total = 0;
    for (int p : graph.parameters())
        for (float g : executor.grad(p).floats()) total += static_cast<double>(g) * g;
    total = std::sqrt(total);
    // torch: clip_coef = max_norm / (total_norm + 1e-6), applied when below 1.
    const double coefficient = max_norm / (total + 1e-6);
    if (coefficient < 1.0)
        for (int p : graph.parameters()) {
            Tensor g = executor.grad(p);  // shares storage
            for (float& v : g.floats()) v = static_cast<float>(v * coefficient);
        }
    return total;
}

}  // namespace graphrun
