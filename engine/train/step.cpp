#include "engine/train/step.hpp"

#include <cmath>

#include <fmt/format.h>

namespace graphrun::train {

namespace {
bool finite(const Tensor& t) {
    if (t.dtype() != DType::f32) return true;
    for (float v : t.floats())
        if (!std::isfinite(v)) return false;
    return true;
}
}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const spec::OptimizerSpec& o) {
    if (o.type == "sgd") return std::make_unique<Sgd>(o.lr, o.momentum);
    // adamw is Adam with decoupled weight decay; the spec's weight_decay is adamw's alone.
    return std::make_unique<Adam>(
        AdamOptions{.lr = o.lr, .beta1 = o.beta1, .beta2 = o.beta2, .eps = o.eps, .weight_decay = o.type == "adamw" ? o.weight_decay : 0.0});
}

float forward_backward(Executor& ex, ValueRef loss) {
    ex.forward();
    const float value = ex.value(loss).f32()[0];
    if (std::isfinite(value)) ex.backward(loss);
    return value;
}

std::string non_finite_loss(float loss, const Executor& ex) {
    return fmt::format("the loss is {}; the first non-finite value comes from node {}", std::isnan(loss) ? "NaN" : "infinite", first_non_finite_node(ex));
}

void apply_gradients(Executor& ex, Optimizer& optimizer, double clip_norm, const std::string& where, const std::string& after) {
    const double norm = clip_grad_norm(ex, clip_norm > 0 ? clip_norm : INFINITY);
    if (!std::isfinite(norm))
        throw TrainingFailure(fmt::format("{}: a gradient is not finite (global norm {}); the first one, going backward from the loss, is the gradient "
                                          "of node {}.{}{}",
                                          where, norm, first_non_finite_gradient(ex), after.empty() ? "" : " ", after));
    optimizer.step(ex);
}

std::string first_non_finite_gradient(const Executor& ex) {
    const auto& nodes = ex.graph().nodes();
    for (std::size_t i = nodes.size(); i-- > 0;)
        for (std::size_t k = 0; k < nodes[i].outputs.size(); ++k) {
            const Tensor* g = ex.gradient(ValueRef{static_cast<int>(i), static_cast<int>(k)});
            if (g && g->dtype() == DType::f32 && !finite(*g)) return fmt::format("'{}' ({})", nodes[i].name, nodes[i].op_name);
        }
    return "";
}

std::string first_non_finite_node(const Executor& ex) {
    const auto& nodes = ex.graph().nodes();
    for (std::size_t i = 0; i < nodes.size(); ++i)
        for (std::size_t k = 0; k < nodes[i].outputs.size(); ++k) {
            const Tensor& t = ex.value(ValueRef{static_cast<int>(i), static_cast<int>(k)});
            if (t.defined() && !finite(t)) return fmt::format("'{}' ({})", nodes[i].name, nodes[i].op_name);
        }
    return "";
}

}  // namespace graphrun::train
