// The task-graph executor: independent nodes run at the same time, errors
// from a task reach the caller, results do not depend on timing, and a
// different thread count changes results only by rounding.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include <catch2/catch.hpp>
#include <tbb/task_arena.h>
#include <fmt/format.h>

#include "engine/core/executor.hpp"
#include "engine/train/initializer.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/core/threads.hpp"
#include "ops/builtin.hpp"

using namespace graphrun;
using Catch::Matchers::Contains;

namespace {

// An op that, in forward, announces itself and waits (up to 10 s) until
// `expected` probes have started: it can only finish quickly if the other
// probes run at the same time.
struct Rendezvous {
    std::atomic<int> started{0};
    int expected = 2;
    std::atomic<bool> all_met{true};
};

// Two nodes that also write one plain int with no synchronization (`race`):
// a real race between two of graphrun's tasks, for the ThreadSanitizer pass.
int shared_without_order = 0;

class Probe final : public Op {
public:
    Probe(Rendezvous* r, bool race) : r_(r), race_(race) {}
    std::vector<TensorType> infer(std::span<const TensorType> in) const override { return {in[0]}; }
    void forward(const ForwardArgs& args) const override {
        r_->started.fetch_add(1);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (r_->started.load() < r_->expected) {
            if (std::chrono::steady_clock::now() > deadline) {
                r_->all_met = false;
                break;
            }
            std::this_thread::yield();
        }
        if (race_) shared_without_order = shared_without_order + 1;
        std::memcpy(args.outputs[0].raw(), args.inputs[0].raw(), args.inputs[0].bytes());
    }
    void backward(const BackwardArgs&) const override {}

private:
    Rendezvous* r_;
    bool race_;
};

// Runs two independent probes, a and b, on two threads whatever the cores (a
// budget above the core count raises oneTBB's worker limit; an arena of two
// uses them; on one core they take turns). Returns whether they overlapped.
bool run_two_probes(bool race) {
    const ThreadBudget budget(2);
    tbb::task_arena two(2);
    Rendezvous rendezvous;
    OpRegistry registry = builtin_ops();
    registry.add({.name = "probe", .summary = "waits for the other probes", .min_inputs = 1, .max_inputs = 1, .attrs = {},
                  .make = [&](const Attrs&) { return std::make_unique<Probe>(&rendezvous, race); }});
    Graph g(registry);
    const ValueRef x = g.input("x", {DType::f32, {4}});
    g.add("both", "add", {g.add("a", "probe", {x}), g.add("b", "probe", {x})});
    Executor ex(g);
    ex.set("x", Tensor(Shape{4}));
    two.execute([&] { ex.forward(); });
    return rendezvous.all_met;
}

class Fails final : public Op {
public:
    std::vector<TensorType> infer(std::span<const TensorType> in) const override { return {in[0]}; }
    void forward(const ForwardArgs&) const override { throw Error("this op always fails"); }
    void backward(const BackwardArgs&) const override {}
};

}  // namespace

TEST_CASE("independent nodes run at the same time, within the thread budget", "[scheduler]") {
    CHECK(run_two_probes(false));  // a and b overlapped

    // A budget of one thread: the ops cut their work into one part.
    const ThreadBudget one(1);
    CHECK(parallelism() == 1);
}

// Hidden (not run by default): tests/run runs it under ThreadSanitizer and
// requires a report, which proves the suppressions (tests/tsan.supp) leave a
// race between two tasks visible.
TEST_CASE("a planted race between two tasks", "[.planted_race]") {
    CHECK(run_two_probes(true));
    CHECK(shared_without_order >= 1);
}

TEST_CASE("an error in a task names its node and reaches the caller", "[scheduler]") {
    OpRegistry registry = builtin_ops();
    registry.add({.name = "fails", .summary = "throws", .min_inputs = 1, .max_inputs = 1, .attrs = {}, .make = [](const Attrs&) { return std::make_unique<Fails>(); }});
    Graph g(registry);
    const ValueRef x = g.input("x", {DType::f32, {4}});
    g.add("fine", "add", {g.add("bad", "fails", {x}), g.add("ok", "relu", {x})});
    Executor ex(g);
    ex.set("x", Tensor(Shape{4}));
    CHECK_THROWS_WITH(ex.forward(), Contains("node 'bad' (fails): this op always fails"));
    CHECK_THROWS_WITH(ex.forward(), Contains("node 'bad'"));  // and again: the executor is still usable
}

TEST_CASE("same threads: bit-identical gradients; another thread count: equal to 1e-5", "[scheduler]") {
    // The Siamese model with shared weights, so two tasks feed one gradient.
    const char* const spec_text = R"(
inputs:
  - {name: x1, shape: [9], dtype: int32}
  - {name: x2, shape: [23], dtype: int32}
  - {name: y, shape: [], dtype: float32}
nodes:
  - {name: left_embedding, op: embedding, inputs: [x1], vocab: 50, dim: 8}
  - {name: left_lstm, op: lstm, inputs: [left_embedding], units: 16}
  - {name: left_dense, op: dense, inputs: [left_lstm], units: 12}
  - {name: right_embedding, op: embedding, inputs: [x2], vocab: 50, dim: 8, share: left_embedding}
  - {name: right_lstm, op: lstm, inputs: [right_embedding], units: 16}
  - {name: right_dense, op: dense, inputs: [right_lstm], units: 12}
  - {name: similarity, op: cosine, inputs: [left_dense, right_dense]}
  - {name: one, op: constant, value: 1.0}
  - {name: distance, op: sub, inputs: [one, similarity]}
  - {name: loss, op: contrastive_loss, inputs: [distance, y], margin: 1.0}
loss: loss
)";
    const auto built = build_graph(spec::load_spec_string(spec_text, "shared"), builtin_ops());
    const Graph& g = built.graph;
    auto gradients = [&](int threads) {
        const ThreadBudget budget(threads);
        Executor ex(g);
        initialize_parameters(ex, 3);
        std::mt19937 rng(1);
        std::uniform_int_distribution<int> id(0, 49), label(0, 1);
        for (const char* name : {"x1", "x2"}) {
            Tensor t(Shape{7, name[1] == '1' ? 9 : 23}, DType::i32);
            for (std::int64_t j = 0; j < t.numel(); ++j) t.i32()[j] = id(rng);
            ex.set(name, t);
        }
        Tensor y(Shape{7});
        for (std::int64_t j = 0; j < 7; ++j) y.f32()[j] = static_cast<float>(label(rng));
        ex.set("y", y);
        ex.forward();
        ex.backward(built.loss);
        std::vector<Tensor> out;
        for (int p : g.parameters()) out.push_back(ex.grad(p).clone());
        return out;
    };
    const auto two = gradients(2), again = gradients(2), one = gradients(1);
    REQUIRE(two.size() == again.size());
    for (std::size_t k = 0; k < two.size(); ++k) {
        CHECK(std::memcmp(two[k].raw(), again[k].raw(), two[k].bytes()) == 0);
        float scale = 0, worst = 0;
        for (std::int64_t j = 0; j < one[k].numel(); ++j) {
            scale = std::max(scale, std::abs(one[k].f32()[j]));
            worst = std::max(worst, std::abs(one[k].f32()[j] - two[k].f32()[j]));
        }
        CHECK(scale > 0);  // the loss reaches every parameter
        CHECK(worst <= 1e-5f * scale);
    }
}

namespace {
// Counts its forward calls.
class Counted final : public Op {
public:
    explicit Counted(std::atomic<int>* calls) : calls_(calls) {}
    std::vector<TensorType> infer(std::span<const TensorType> in) const override { return {in[0]}; }
    void forward(const ForwardArgs& args) const override {
        calls_->fetch_add(1);
        std::memcpy(args.outputs[0].raw(), args.inputs[0].raw(), args.inputs[0].bytes());
    }
    void backward(const BackwardArgs&) const override {}

private:
    std::atomic<int>* calls_;
};
}  // namespace

TEST_CASE("every node runs exactly once a pass, however the tasks interleave", "[scheduler]") {
    // Many roots (constants) and nodes that wait on only one of them: a node
    // made ready by an early root must not also be started as a root itself.
    constexpr int kRoots = 1000;  // enough that early roots finish while later ones are still being started
    std::vector<std::atomic<int>> calls(2 * kRoots);
    OpRegistry registry = builtin_ops();
    int next = 0;
    registry.add({.name = "counted", .summary = "counts its calls", .min_inputs = 1, .max_inputs = 1, .attrs = {},
                  .make = [&](const Attrs&) { return std::make_unique<Counted>(&calls[static_cast<std::size_t>(next++)]); }});
    Graph g(registry);
    // The roots first in graph order, so the early ones finish while the later ones are still being started.
    std::vector<ValueRef> roots;
    for (int k = 0; k < kRoots; ++k) roots.push_back(g.add(fmt::format("c{}", k), "constant", {}, Attrs{{"value", 1.0 * k}}));
    for (int k = 0; k < kRoots; ++k) g.add(fmt::format("a{}", k), "counted", {g.add(fmt::format("b{}", k), "counted", {roots[static_cast<std::size_t>(k)]})});
    Executor ex(g);
    for (int pass = 1; pass <= 20; ++pass) {
        ex.forward();
        int wrong = 0;
        for (const auto& n : calls) wrong += n.load() != pass;
        REQUIRE(wrong == 0);
    }
}

TEST_CASE("run_parts: the costliest call's parts first, every part once, a part's error to its caller", "[scheduler]") {
    SECTION("one thread: a call made inside a part runs the outer call's costlier parts before its own") {
        const ThreadBudget one(1);
        std::vector<std::string> order;
        run_parts(3, 10.0, [&](int a) {
            order.push_back(fmt::format("a{}", a));
            if (a == 0) run_parts(2, 1.0, [&](int b) { order.push_back(fmt::format("b{}", b)); });
        });
        CHECK(order == std::vector<std::string>{"a0", "a1", "a2", "b0", "b1"});
    }
    SECTION("two calls at once on two threads: each of their parts runs exactly once, each call returns after its own") {
        // The two callers are std::threads (their start orders them after
        // what this thread wrote, for ThreadSanitizer too); idle oneTBB
        // threads join through run_parts' own tasks.
        const ThreadBudget budget(2);
        for (int round = 0; round < 20; ++round) {
            std::vector<std::atomic<int>> long_runs(4), short_runs(4);
            bool long_complete = false, short_complete = false;
            std::thread long_call([&] {
                run_parts(4, 100.0, [&](int p) {
                    std::this_thread::sleep_for(std::chrono::microseconds(300));
                    long_runs[static_cast<std::size_t>(p)].fetch_add(1);
                });
                long_complete = std::all_of(long_runs.begin(), long_runs.end(), [](const auto& n) { return n.load() == 1; });
            });
            std::thread short_call([&] {
                run_parts(4, 1.0, [&](int p) { short_runs[static_cast<std::size_t>(p)].fetch_add(1); });
                short_complete = std::all_of(short_runs.begin(), short_runs.end(), [](const auto& n) { return n.load() == 1; });
            });
            long_call.join();
            short_call.join();
            REQUIRE(long_complete);
            REQUIRE(short_complete);
        }
    }
    SECTION("one call of more parts than threads keeps both threads on it to the end") {
        // Parts meet in pairs (2k and 2k + 1 each wait, up to 10 s, until the
        // other has started): only two threads running parts together all
        // along get through quickly.
        const ThreadBudget budget(2);
        tbb::task_arena two(2);
        std::vector<std::atomic<int>> started(8);
        std::atomic<bool> all_met{true};
        two.execute([&] {
            run_parts(8, 1.0, [&](int p) {
                started[static_cast<std::size_t>(p)] = 1;
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
                while (started[static_cast<std::size_t>(p ^ 1)].load() == 0) {
                    if (std::chrono::steady_clock::now() > deadline) {
                        all_met = false;
                        return;
                    }
                    std::this_thread::yield();
                }
            });
        });
        CHECK(all_met);
    }
    SECTION("a part that throws: the caller gets its error once every part has ended") {
        const ThreadBudget budget(2);
        std::atomic<int> ended{0};
        CHECK_THROWS_WITH(run_parts(4, 1.0,
                                    [&](int p) {
                                        ended.fetch_add(1);
                                        if (p == 2) throw Error("part 2 failed");
                                    }),
                          Contains("part 2 failed"));
        CHECK(ended.load() == 4);
    }
}
