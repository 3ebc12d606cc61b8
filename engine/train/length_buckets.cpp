// train.length_buckets at the start of a run; see engine/train/length_buckets.hpp.
#include "engine/train/length_buckets.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/spec/spec.hpp"

namespace graphrun::train {

namespace {

// Runs the batch of samples [first, ...) cut and at the declared lengths; the
// first node whose output differs over the steps both have is an error.
void check_batch(Executor& ex, const Task& task, const BuiltGraph& built, const spec::TrainSpec& cfg, const std::vector<int>& inputs,
                 std::int64_t first, std::int64_t count) {
    const Graph& graph = built.graph;
    Batch cut = Batch::for_inputs(graph, std::min(cfg.batch_size, count - first));
    task.fill_training(first, cut);
    Batch full = Batch::for_inputs(graph, cut.rows);
    for (std::size_t k = 0; k < cut.nodes.size(); ++k) {
        const Tensor& from = cut.tensors[k];
        Tensor& to = full.tensors[k];
        if (from.shape() == to.shape()) {
            std::memcpy(to.raw(), from.raw(), from.bytes());
            continue;
        }
        // The cut rows, then the padding (the tensor starts zero-filled).
        const auto width = static_cast<std::size_t>(from.shape()[1]), length = static_cast<std::size_t>(to.shape()[1]);
        const std::size_t size = dtype_size(from.dtype());
        for (std::size_t r = 0; r < static_cast<std::size_t>(cut.rows); ++r)
            std::memcpy(static_cast<char*>(to.raw()) + r * length * size, static_cast<const char*>(from.raw()) + r * width * size, width * size);
    }
    const auto cut_widths = [&] {
        std::vector<std::string> widths;
        for (int node : inputs)
            if (cut.of(node).shape()[1] != graph.node(node).outputs[0].shape.at(1))
                widths.push_back(fmt::format("'{}' from {} to {}", graph.node(node).name, graph.node(node).outputs[0].shape.at(1), cut.of(node).shape()[1]));
        return fmt::format("{}", fmt::join(widths, ", "));
    };
    const auto refuse = [&](const std::string& message) {
        const std::string text = "train.length_buckets: " + message + ". Remove train.length_buckets";
        if (cfg.locs.count("length_buckets")) throw spec::SpecError(cfg.locs.at("length_buckets"), text);
        throw Error(text);
    };
    // A training forward keeps every value: the first node whose output
    // changes is the one that reads padding.
    full.feed(ex);
    ex.forward(Executor::Mode::training);
    std::vector<std::vector<Tensor>> at_full(graph.nodes().size());
    for (std::size_t i = 0; i < graph.nodes().size(); ++i)
        if (graph.nodes()[i].kind == NodeKind::op)
            for (std::size_t k = 0; k < graph.nodes()[i].outputs.size(); ++k)
                at_full[i].push_back(ex.value(ValueRef{static_cast<int>(i), static_cast<int>(k)}).clone());
    try {
        cut.feed(ex);
        ex.forward(Executor::Mode::training);
    } catch (const Error& e) {
        refuse(fmt::format("the model cannot take a batch cut to its longest texts ({}): {}", cut_widths(), e.what()));
    }
    for (std::size_t i = 0; i < graph.nodes().size(); ++i)
        for (std::size_t k = 0; k < at_full[i].size(); ++k) {
            const Tensor& a = at_full[i][k];
            const Tensor& b = ex.value(ValueRef{static_cast<int>(i), static_cast<int>(k)});
            if (a.dtype() != DType::f32 || b.dtype() != DType::f32 || a.rank() != b.rank()) continue;
            // Where only the time axis (1) differs, the steps both have.
            bool comparable = true;
            for (std::size_t d = 0; d < a.rank(); ++d)
                if (d != 1 && a.dim(d) != b.dim(d)) comparable = false;
            if (!comparable || (a.rank() >= 2 && b.dim(1) > a.dim(1))) continue;
            const std::int64_t rows = a.rank() >= 2 ? a.dim(0) : 1, steps = a.rank() >= 2 ? b.dim(1) : 1;
            const std::int64_t rest = b.numel() / std::max<std::int64_t>(rows * steps, 1), a_steps = a.rank() >= 2 ? a.dim(1) : 1;
            double scale = 1, diff = 0;
            for (std::int64_t n = 0; n < rows; ++n)
                for (std::int64_t j = 0; j < steps * rest; ++j) {
                    const double x = a.f32()[n * a_steps * rest + j], y = b.f32()[n * steps * rest + j];
                    if (std::isnan(x) != std::isnan(y)) diff = HUGE_VAL;  // NaN on one side only is a difference
                    if (std::isnan(x) || std::isnan(y)) continue;
                    scale = std::max(scale, std::abs(x));
                    diff = std::max(diff, std::abs(x - y));
                }
            if (!(diff <= 1e-4 * scale))
                refuse(fmt::format("cutting a batch's padding ({}) changes the output of node '{}' ({}) by {:.3g}: it reads padding steps (an op "
                                   "over time that does not get the texts' lengths), so the model's results would depend on how its batch is cut",
                                   cut_widths(), graph.nodes()[i].name, graph.nodes()[i].op_name, diff));
        }
}

}  // namespace

int start_length_buckets(Executor& ex, const Task& task, const BuiltGraph& built, const spec::TrainSpec& cfg, std::int64_t count) {
    if (cfg.length_buckets.window == 0) return 0;
    const std::vector<int> inputs = task.length_bucketed_inputs();
    if (inputs.empty()) {  // refused, not ignored
        const std::string text = "train.length_buckets: this task does not batch by length (task siamese does); remove train.length_buckets";
        if (cfg.locs.count("length_buckets")) throw spec::SpecError(cfg.locs.at("length_buckets"), text);
        throw Error(text);
    }
    if (count == 0) return 0;
    const Graph& graph = built.graph;
    std::size_t lengths = 1;
    for (int node : inputs) {
        ex.allow_shorter(node, 1);
        lengths *= static_cast<std::size_t>(graph.node(node).outputs[0].shape.at(1) / cfg.length_buckets.multiple + 1);
    }
    // Every length pair keeps its plan, with the validation and inference
    // plans; past kMaxPlans (a small train.length_buckets.multiple) the least
    // recently used plan goes, and its lengths' primitives are made again.
    constexpr std::size_t kMaxPlans = 256;
    ex.set_plan_capacity(std::min(lengths + 8, kMaxPlans));

    // Each input is checked on the batch that cuts it the most (ties: the
    // fewest ids in all): a check on one batch could leave an input uncut.
    // One pass over the epoch's batches finds them all.
    struct Choice {
        std::int64_t first = -1, width = 0, ids = 0;
    };
    std::vector<Choice> most_cut(inputs.size());
    Batch batch = Batch::for_inputs(graph, cfg.batch_size);
    for (std::int64_t first = 0; first < count; first += cfg.batch_size) {
        if (count - first < batch.rows) batch = Batch::for_inputs(graph, count - first);
        task.fill_training(first, batch);
        std::int64_t ids = 0;
        for (int node : inputs) ids += batch.of(node).shape().at(1);
        for (std::size_t k = 0; k < inputs.size(); ++k) {
            const std::int64_t width = batch.of(inputs[k]).shape().at(1);
            Choice& c = most_cut[k];
            if (c.first < 0 || width < c.width || (width == c.width && ids < c.ids)) c = {first, width, ids};
        }
    }
    std::vector<std::int64_t> checked;
    int inputs_cut = 0;
    for (std::size_t k = 0; k < inputs.size(); ++k) {
        const Choice& c = most_cut[k];
        if (c.width == graph.node(inputs[k]).outputs[0].shape.at(1)) continue;  // never cut this epoch
        ++inputs_cut;
        if (std::find(checked.begin(), checked.end(), c.first) != checked.end()) continue;
        checked.push_back(c.first);
        check_batch(ex, task, built, cfg, inputs, c.first, count);
    }
    return inputs_cut;
}

}  // namespace graphrun::train
