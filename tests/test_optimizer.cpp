// Adam and SGD against torch.optim on the same gradients (tests/fixtures/optimizer.json).
#include <cstring>
#include <functional>

#include <catch2/catch.hpp>

#include "engine/train/optimizer.hpp"
#include "ops/builtin.hpp"
#include "tests/fixtures.hpp"

using namespace graphrun;

namespace {
// Slice t of a (steps, ...) tensor.
Tensor step_slice(const Tensor& all, std::int64_t t) {
    Shape shape(all.shape().begin() + 1, all.shape().end());
    Tensor out(shape);
    std::memcpy(out.raw(), all.f32() + t * out.numel(), out.bytes());
    return out;
}

// loss = sum(p * g): its gradient with respect to p is the fed g.
void check_trajectory(const std::string& name, const std::function<void(Executor&)>& step) {
    auto fx = testing::load_fixture("optimizer");
    Graph g(builtin_ops());
    const ValueRef p = g.parameter("p", fx.at("p0").type());
    const ValueRef grad = g.input("g", fx.at("p0").type());
    const ValueRef loss = g.add("loss", "sum", {g.add("pg", "mul", {p, grad})});
    Executor ex(g);
    ex.set("p", fx.at("p0").clone());
    const Tensor& grads = fx.at("grads");
    for (std::int64_t t = 0; t < grads.dim(0); ++t) {
        ex.set("g", step_slice(grads, t));
        ex.forward();
        ex.backward(loss);
        step(ex);
        testing::check_close(name + " after step " + std::to_string(t + 1), ex.value("p"), step_slice(fx.at(name), t), 1e-6);
    }
}
}  // namespace

TEST_CASE("Adam matches torch.optim.Adam step by step", "[optimizer][fixtures]") {
    Adam adam({.lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8});
    check_trajectory("adam", [&](Executor& ex) { adam.step(ex); });
    Adam custom({.lr = 0.05, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6});
    check_trajectory("adam_custom", [&](Executor& ex) { custom.step(ex); });
}

TEST_CASE("SGD matches torch.optim.SGD, with and without momentum", "[optimizer][fixtures]") {
    Sgd momentum(0.1, 0.9);
    check_trajectory("sgd_momentum", [&](Executor& ex) { momentum.step(ex); });
    Sgd plain(0.1);
    check_trajectory("sgd", [&](Executor& ex) { plain.step(ex); });
}
