// Adam, AdamW and SGD against torch.optim on the same gradients
// (tests/fixtures/optimizer.json), and with learning-rate schedules against
// torch's LambdaLR with HuggingFace's lambdas (tests/fixtures/schedule.json).
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>

#include <catch2/catch.hpp>

#include "engine/train/optimizer.hpp"
#include "engine/train/schedule.hpp"
#include "graphrun/thread_budget.hpp"
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

using Step = std::function<void(Executor&, std::int64_t)>;

// The parameter after each step, from the fixture's p0 and grads: loss =
// sum(p * g), whose gradient with respect to p is the fed g. `step(ex, t)` is step t (from 0).
std::vector<Tensor> trajectory(const std::map<std::string, Tensor>& fx, const Step& step) {
    Graph g(builtin_ops());
    const ValueRef p = g.parameter("p", fx.at("p0").type());
    const ValueRef grad = g.input("g", fx.at("p0").type());
    const ValueRef loss = g.add("loss", "sum", {g.add("pg", "mul", {p, grad})});
    Executor ex(g);
    ex.set("p", fx.at("p0").clone());
    const Tensor& grads = fx.at("grads");
    std::vector<Tensor> out;
    for (std::int64_t t = 0; t < grads.dim(0); ++t) {
        ex.set("g", step_slice(grads, t));
        ex.forward();
        ex.backward(loss);
        step(ex, t);
        out.push_back(ex.value("p").clone());
    }
    return out;
}

void check_trajectory(const std::string& fixture, const std::string& name, const Step& step) {
    const auto fx = testing::load_fixture(fixture);
    const auto steps = trajectory(fx, step);
    for (std::size_t t = 0; t < steps.size(); ++t)
        testing::check_close(name + " after step " + std::to_string(t + 1), steps[t], step_slice(fx.at(name), static_cast<std::int64_t>(t)), 1e-6);
}

spec::ScheduleSpec make_schedule(std::int64_t warmup, const std::string& decay, double min_lr = 0) {
    spec::ScheduleSpec s;
    s.warmup = warmup;
    s.decay = decay;
    s.min_lr = min_lr;
    return s;
}

double max_difference(const Tensor& a, const Tensor& b) {
    double d = 0;
    for (std::int64_t j = 0; j < a.numel(); ++j) d = std::max(d, static_cast<double>(std::abs(a.f32()[j] - b.f32()[j])));
    return d;
}
}  // namespace

TEST_CASE("Adam matches torch.optim.Adam step by step", "[optimizer][fixtures]") {
    Adam adam({.lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8});
    check_trajectory("optimizer", "adam", [&](Executor& ex, std::int64_t) { adam.step(ex); });
    Adam custom({.lr = 0.05, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6});
    check_trajectory("optimizer", "adam_custom", [&](Executor& ex, std::int64_t) { custom.step(ex); });
}

TEST_CASE("Adam cuts its update of many parameters into parts; neither the cut nor the thread count changes a bit", "[optimizer]") {
    // Three parameters whose elements make 3 parts (16k elements or more each) that
    // cross the parameters' bounds; loss = sum(p * g) as above, so each gradient is its fed g.
    const std::vector<std::int64_t> sizes = {20000, 30001, 17};
    const AdamOptions options{.lr = 0.01, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1};
    const auto value = [](std::size_t k, std::int64_t j, int salt) { return std::sin(0.37 * static_cast<double>(j) + 1.3 * static_cast<double>(k) + salt); };
    const auto run = [&](int threads) {
        const ThreadBudget budget(threads);
        Graph g(builtin_ops());
        std::vector<ValueRef> terms;
        for (std::size_t k = 0; k < sizes.size(); ++k) {
            const TensorType type{DType::f32, Shape{sizes[k]}};
            const ValueRef p = g.parameter("p" + std::to_string(k), type);
            const ValueRef grad = g.input("g" + std::to_string(k), type);
            terms.push_back(g.add("loss" + std::to_string(k), "sum", {g.add("pg" + std::to_string(k), "mul", {p, grad})}));
        }
        const ValueRef loss = g.add("loss", "add", {g.add("loss01", "add", {terms[0], terms[1]}), terms[2]});
        Executor ex(g);
        for (std::size_t k = 0; k < sizes.size(); ++k) {
            Tensor p(Shape{sizes[k]}), grad(Shape{sizes[k]});
            for (std::int64_t j = 0; j < sizes[k]; ++j) {
                p.f32()[j] = static_cast<float>(value(k, j, 0));
                grad.f32()[j] = static_cast<float>(value(k, j, 1));
            }
            ex.set("p" + std::to_string(k), p);
            ex.set("g" + std::to_string(k), grad);
        }
        Adam adam(options);
        for (int step = 0; step < 3; ++step) {
            ex.forward();
            ex.backward(loss);
            adam.step(ex);
        }
        std::vector<Tensor> out;
        for (std::size_t k = 0; k < sizes.size(); ++k) out.push_back(ex.value("p" + std::to_string(k)).clone());
        return out;
    };
    const auto one = run(1), two = run(2);
    for (std::size_t k = 0; k < sizes.size(); ++k) {
        REQUIRE(std::memcmp(one[k].raw(), two[k].raw(), one[k].bytes()) == 0);
        // Every element against the update written out one float at a time, torch's order.
        float max_gap = 0;
        for (std::int64_t j = 0; j < sizes[k]; ++j) {
            float w = static_cast<float>(value(k, j, 0)), m = 0, v = 0;
            const float grad = static_cast<float>(value(k, j, 1));
            for (int t = 1; t <= 3; ++t) {
                w *= static_cast<float>(1.0 - options.lr * options.weight_decay);
                m = 0.9f * m + static_cast<float>(1.0 - 0.9) * grad;
                v = 0.99f * v + static_cast<float>(1.0 - 0.99) * grad * grad;
                const float denom = std::sqrt(v) / static_cast<float>(std::sqrt(1.0 - std::pow(0.99, t))) + 1e-6f;
                w += -static_cast<float>(options.lr / (1.0 - std::pow(0.9, t))) * m / denom;
            }
            max_gap = std::max(max_gap, std::abs(w - one[k].f32()[j]));
        }
        CHECK(max_gap == 0.0f);
    }
}

TEST_CASE("SGD matches torch.optim.SGD, with and without momentum", "[optimizer][fixtures]") {
    Sgd momentum(0.1, 0.9);
    check_trajectory("optimizer", "sgd_momentum", [&](Executor& ex, std::int64_t) { momentum.step(ex); });
    Sgd plain(0.1);
    check_trajectory("optimizer", "sgd", [&](Executor& ex, std::int64_t) { plain.step(ex); });
}

TEST_CASE("AdamW matches torch.optim.AdamW step by step", "[optimizer][fixtures]") {
    Adam adamw({.lr = 0.05, .weight_decay = 0.5});
    check_trajectory("schedule", "adamw", [&](Executor& ex, std::int64_t) { adamw.step(ex); });
    Adam custom({.lr = 0.01, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-6, .weight_decay = 0.01});  // torch's default weight_decay
    check_trajectory("schedule", "adamw_custom", [&](Executor& ex, std::int64_t) { custom.step(ex); });
    // The decay shows: plain Adam's steps end far from AdamW's, beyond the tolerance above.
    Adam plain({.lr = 0.05});
    const auto fx = testing::load_fixture("schedule");
    const auto without = trajectory(fx, [&](Executor& ex, std::int64_t) { plain.step(ex); });
    CHECK(max_difference(without.back(), step_slice(fx.at("adamw"), fx.at("grads").dim(0) - 1)) > 0.01);
}

TEST_CASE("schedules: warm-up, then constant, linear or cosine decay, as HF's lambdas under torch's LambdaLR", "[optimizer][fixtures]") {
    const auto fx = testing::load_fixture("schedule");
    const std::int64_t steps = fx.at("grads").dim(0);
    struct Case {
        std::string name;
        spec::ScheduleSpec schedule;
        std::function<std::unique_ptr<Optimizer>()> make;
    };
    const std::vector<Case> cases{
        {"adamw_linear", make_schedule(3, "linear"), [] { return std::make_unique<Adam>(AdamOptions{.lr = 0.05, .weight_decay = 0.1}); }},
        {"adamw_cosine", make_schedule(3, "cosine"), [] { return std::make_unique<Adam>(AdamOptions{.lr = 0.05, .weight_decay = 0.1}); }},
        {"adam_cosine_min_lr", make_schedule(2, "cosine", 0.005), [] { return std::make_unique<Adam>(AdamOptions{.lr = 0.05}); }},
        {"sgd_linear_min_lr", make_schedule(2, "linear", 0.01), [] { return std::make_unique<Sgd>(0.1, 0.9); }},
        {"sgd_constant_warmup", make_schedule(4, "constant"), [] { return std::make_unique<Sgd>(0.1); }},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        const std::unique_ptr<Optimizer> optimizer = c.make();
        const train::LrSchedule schedule(c.schedule, optimizer->lr(), steps);
        const Tensor& rates = fx.at("lr/" + c.name);
        check_trajectory("schedule", c.name, [&](Executor& ex, std::int64_t t) {
            // The optimizer's own count is the step: as the trainer does it.
            REQUIRE(optimizer->steps() == t);
            optimizer->set_lr(schedule.lr(optimizer->steps()));
            // The same doubles as Python's, so their float32 roundings are equal.
            CHECK(static_cast<float>(optimizer->lr()) == rates.f32()[t]);
            optimizer->step(ex);
        });
    }
}

TEST_CASE("schedules at their edges: no warm-up, a warm-up longer than the run, and the run's length", "[optimizer]") {
    const train::LrSchedule none(make_schedule(0, "constant"), 0.1, 10);
    CHECK(none.lr(0) == 0.1);
    CHECK(none.lr(9) == 0.1);
    // Without a warm-up the first step runs at the full rate; as in HF, the rate
    // would reach 0 at s = S, one past the run's last step.
    const train::LrSchedule linear(make_schedule(0, "linear"), 0.1, 10);
    CHECK(linear.lr(0) == 0.1);
    CHECK(linear.lr(9) == Approx(0.01).epsilon(1e-12));
    const train::LrSchedule cosine(make_schedule(4, "cosine"), 0.1, 10);
    CHECK(cosine.lr(0) == 0.0);
    CHECK(cosine.lr(2) == Approx(0.05).epsilon(1e-12));
    CHECK(cosine.lr(4) == 0.1);
    CHECK(cosine.lr(7) == Approx(0.05).epsilon(1e-12));  // halfway down: cos(pi / 2)
    // A warm-up longer than the run never ends.
    const train::LrSchedule long_warmup(make_schedule(20, "cosine"), 0.1, 10);
    CHECK(long_warmup.lr(9) == Approx(0.045).epsilon(1e-12));
    spec::TrainSpec t;
    t.epochs = 3;
    CHECK(train::run_steps(t, 100) == 300);
    t.max_steps = 150;
    CHECK(train::run_steps(t, 100) == 150);
    t.max_steps = 500;
    CHECK(train::run_steps(t, 100) == 300);
}
