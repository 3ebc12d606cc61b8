// `graphrun check` (the summary table, in the manner of Keras's
// model.summary, the data's lengths, and with train.length_buckets the padding
// check train runs first) and `graphrun gradcheck`.
#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/train/initializer.hpp"
#include "engine/train/length_buckets.hpp"
#include "tools/graph_json.hpp"
#include "engine/io/atomic_file.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/siamese_task.hpp"
#include "engine/train/task.hpp"
#include "engine/train/trainer.hpp"
#include "ops/builtin.hpp"
#include "tools/cli.hpp"

namespace graphrun::cli {

namespace {
std::string thousands(std::int64_t n) {
    std::string digits = std::to_string(n), out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string shapes_of(const Node& n) {
    std::vector<std::string> shapes;
    for (const auto& t : n.outputs) shapes.push_back(to_string(t.shape));
    return fmt::format("{}", fmt::join(shapes, " "));
}
}  // namespace

namespace {

std::string megabytes(std::int64_t bytes) { return fmt::format("{:.1f} MB", static_cast<double>(bytes) / 1e6); }

// The compiled plans of one batch of train.batch_size rows: a training step
// and an inference pass for the outputs, run once on zeros so the ops' states
// (workspaces, scratchpads) exist and count.
void print_plan_memory(const spec::Spec& spec, const BuiltGraph& built) {
    const Graph& g = built.graph;
    const std::int64_t rows = spec.train.batch_size;
    const train::Batch batch = train::Batch::for_inputs(g, rows);
    Executor training(g), inference(g);
    initialize_parameters(training, spec.train.seed);
    std::int64_t parameter_bytes = 0;
    for (int p : g.parameters()) {
        inference.set(p, training.value(ValueRef{p, 0}));
        parameter_bytes += static_cast<std::int64_t>(training.value(ValueRef{p, 0}).bytes());
    }
    batch.feed(training);
    batch.feed(inference);
    training.forward();
    training.backward(built.loss);
    std::vector<ValueRef> outputs;
    for (const auto& [name, ref] : built.outputs) outputs.push_back(ref);
    if (outputs.empty()) outputs.push_back(built.loss);
    inference.forward(outputs, Executor::Mode::inference);
    for (const auto& [what, ex] : {std::pair<const char*, const Executor*>{"training", &training}, {"inference", &inference}}) {
        const Plan& plan = ex->plan();
        const std::int64_t state = ex->state_bytes();
        const std::int64_t peak = plan.value_bytes() + plan.gradient_bytes() + state;
        std::size_t value_buffers = 0;
        for (const auto& b : plan.buffers) value_buffers += b.gradient ? 0 : 1;
        fmt::print("plan, {} (batch {}): peak {}: values {} ({} buffers in {} slots{}), gradients {}, op state {}; parameters {} besides\n", what, rows,
                   megabytes(peak), megabytes(plan.value_bytes()), value_buffers, value_buffers - (plan.buffers.size() - plan.slot_bytes.size()),
                   plan.value_bytes() < plan.unshared_bytes() - plan.gradient_bytes() ? fmt::format(", {} unshared", megabytes(plan.unshared_bytes() - plan.gradient_bytes())) : "",
                   megabytes(plan.gradient_bytes()), megabytes(state), megabytes(parameter_bytes));
    }
}

}  // namespace

int run_check(const Args& args) {
    const spec::Spec spec = spec::load_spec_file(args.spec, args.overrides);
    const BuiltGraph built = build_graph(spec, builtin_ops());
    const Graph& g = built.graph;

    // The rows first, so the columns fit the longest name, op and shape.
    struct Row {
        std::string node, op, shape, params;
    };
    std::vector<Row> rows{{"node", "op", "output shape", "params"}};
    std::set<int> counted;  // a shared parameter counts once, at its first user
    for (std::size_t i = 0; i < g.nodes().size(); ++i) {
        const Node& n = g.nodes()[i];
        if (n.kind == NodeKind::parameter) continue;
        std::int64_t params = 0;
        for (const auto& in : n.inputs)
            if (g.node(in).kind == NodeKind::parameter && counted.insert(in.node).second) params += element_count(g.type(in).shape);
        const std::string op = n.composite_kind.empty() || n.composite_kind == n.op_name ? n.op_name : n.composite_kind + "/" + n.op_name;
        rows.push_back({n.name, op, shapes_of(n), thousands(params)});
    }
    std::size_t w_node = 0, w_op = 0, w_shape = 0, w_params = 0;
    for (const Row& r : rows) {
        w_node = std::max(w_node, r.node.size());
        w_op = std::max(w_op, r.op.size());
        w_shape = std::max(w_shape, r.shape.size());
        w_params = std::max(w_params, r.params.size());
    }
    const std::string rule(w_node + w_op + w_shape + w_params + 6, '-');
    fmt::print("{}: {} nodes\n", spec.path, g.nodes().size());
    for (std::size_t k = 0; k < rows.size(); ++k) {
        fmt::print("{:<{}}  {:<{}}  {:<{}}  {:>{}}\n", rows[k].node, w_node, rows[k].op, w_op, rows[k].shape, w_shape, rows[k].params, w_params);
        if (k == 0) fmt::print("{}\n", rule);
    }
    fmt::print("{}\n", rule);
    fmt::print("Total params: {}\nTrainable params: {}\nNon-trainable params: 0\n", thousands(g.parameter_count()), thousands(g.parameter_count()));

    print_plan_memory(spec, built);

    // The data as the task reads it: counts, lengths, texts cut short.
    train::TrainOptions options;
    options.allow_positive_only = true;  // check warns of it below, and trains nothing
    std::unique_ptr<train::Task> task;
    try {
        if (spec.task == "siamese") train::find_roles(g);  // a graph that is no pair model: say so, not fail
    } catch (const Error& e) {
        fmt::print("data: not checked ({})\n", e.what());
        return 0;
    }
    task = train::make_task(spec, built, options, std::nullopt);
    for (const auto& line : task->data_report()) fmt::print("{}\n", line);
    for (const auto& warning : task->data_warnings()) fmt::print(stderr, "warning: {}\n", warning);
    if (spec.train.length_buckets.window > 0) {  // the check train runs before its first step, from the same start
        Executor ex(g);
        initialize_parameters(ex, spec.train.seed);
        const int checked = train::start_length_buckets(ex, *task, built, spec.train, task->plan_epoch(0));
        if (checked > 0)
            fmt::print("length buckets: a batch cut to its longest text gives the padded batch's outputs ({} token input{} checked, each "
                       "on the first epoch's batch that cuts it the most)\n",
                       checked, checked == 1 ? "" : "s");
        else
            fmt::print("length buckets: no batch of the first epoch is cut (every text fills its input): nothing to check\n");
    }
    return 0;
}

GraphDumpInfo dump_info(const spec::Spec& spec, const BuiltGraph& built) {
    GraphDumpInfo info;
    info.name = spec.name;
    info.spec = spec.path;
    for (const auto& [name, ref] : built.outputs) info.outputs.push_back(name);
    if (!spec.loss.empty()) info.loss = spec.loss;
    return info;
}

int run_dump(const Args& args) {
    const spec::Spec spec = spec::load_spec_file(args.spec, args.overrides);
    const BuiltGraph built = build_graph(spec, builtin_ops());
    const std::string text = graph_to_json(built.graph, dump_info(spec, built));
    if (args.out.empty()) fmt::print("{}", text);
    else io::write_file_atomically(args.out, std::as_bytes(std::span(text)));
    return 0;
}

int run_gradcheck(const Args& args) {
    const spec::Spec spec = spec::load_spec_file(args.spec, args.overrides);
    const BuiltGraph built = build_graph(spec, builtin_ops());
    const Graph& g = built.graph;
    // A small batch: the first samples of the task's first epoch (for task
    // siamese, pairs and their sampled negatives).
    train::TrainOptions options;
    options.allow_positive_only = true;  // a gradient check trains nothing
    const auto task = train::make_task(spec, built, options, std::nullopt);
    const std::int64_t n = std::min<std::int64_t>(4, task->plan_epoch(1));
    train::Batch batch = train::Batch::for_inputs(g, n);
    task->fill_training(0, batch);
    std::mt19937_64 rng(spec.train.seed);

    Executor ex(g);
    initialize_parameters(ex, spec.train.seed);
    batch.feed(ex);
    ex.forward();
    ex.backward(built.loss);

    // Central differences in float32: h large enough that rounding stays small.
    const double h = 1e-2, tolerance = 2e-2;
    fmt::print("gradcheck on {} samples: central differences, h = {}, error = max|analytic - numeric| / max|analytic| over sampled elements\n", n, h);
    fmt::print("{:<28} {:>10} {:>14} {:>12}\n", "parameter", "sampled", "max|grad|", "error");
    bool ok = true;
    for (int p : g.parameters()) {
        const Tensor analytic = ex.grad(p).clone();
        Tensor x = ex.value(ValueRef{p, 0});
        std::vector<std::int64_t> positions;
        std::uniform_int_distribution<std::int64_t> pick(0, x.numel() - 1);
        // Elements with the largest gradients say the most; add a few random ones.
        std::vector<std::int64_t> order(static_cast<std::size_t>(x.numel()));
        for (std::int64_t j = 0; j < x.numel(); ++j) order[static_cast<std::size_t>(j)] = j;
        std::partial_sort(order.begin(), order.begin() + std::min<std::int64_t>(4, x.numel()), order.end(),
                          [&](auto a, auto b) { return std::abs(analytic.f32()[a]) > std::abs(analytic.f32()[b]); });
        for (std::int64_t k = 0; k < std::min<std::int64_t>(4, x.numel()); ++k) positions.push_back(order[static_cast<std::size_t>(k)]);
        for (int k = 0; k < 4; ++k) positions.push_back(pick(rng));
        double worst = 0, scale = 0;
        for (float v : analytic.floats()) scale = std::max(scale, static_cast<double>(std::abs(v)));
        for (auto j : positions) {
            float* w = x.f32() + j;
            const float saved = *w;
            *w = static_cast<float>(saved + h);
            ex.forward();
            const double plus = ex.value(built.loss).f32()[0];
            *w = static_cast<float>(saved - h);
            ex.forward();
            const double minus = ex.value(built.loss).f32()[0];
            *w = saved;
            worst = std::max(worst, std::abs((plus - minus) / (2 * h) - analytic.f32()[j]));
        }
        const double error = scale > 0 ? worst / scale : worst;
        ok = ok && error <= tolerance;
        fmt::print("{:<28} {:>10} {:>14.4g} {:>12.2e}{}\n", g.node(p).name, positions.size(), scale, error, error <= tolerance ? "" : "  FAIL");
    }
    fmt::print("{}\n", ok ? "gradcheck: every parameter within tolerance" : fmt::format("gradcheck: FAILED (tolerance {})", tolerance));
    return ok ? 0 : 1;
}

}  // namespace graphrun::cli
