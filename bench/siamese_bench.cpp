// graphrun's side of the Siamese benchmark: graphs/siamese.yaml as it stands,
// trained (batch 32: forward, backward, Adam) and run for inference (batch 256,
// forward to the similarity only), on random full-length token sequences that
// are fed again every step: this measures compute, not data loading.
//
// usage: bench_siamese SPEC --mode train|infer --threads P [--batch N] [--steps S] [--warmup W] [--precision f32|bf16]
// Prints one JSON line: samples/s median over the timed steps, peak RSS, and
// the most threads the process had at once.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cstdlib>
#include <random>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/core/executor.hpp"
#include "engine/io/npy.hpp"
#include "engine/train/data.hpp"
#include "engine/train/task.hpp"
#include "engine/train/initializer.hpp"
#include "engine/train/optimizer.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/core/threads.hpp"
#include "graphrun/error.hpp"
#include "ops/builtin.hpp"
#include "ops/rnn_dnnl.hpp"
#include "bench/bench_common.hpp"

using namespace graphrun;

namespace {

// Random ids in [1, vocab) for an integer input, labels 0/1 for a float one.
Tensor random_input(const TensorType& type, std::int64_t batch, std::mt19937& rng) {
    Shape shape = type.shape;
    shape[0] = batch;
    Tensor t(shape, type.dtype);
    std::uniform_int_distribution<int> id(1, 999), label(0, 1);
    for (std::int64_t j = 0; j < t.numel(); ++j) {
        if (type.dtype == DType::f32) t.f32()[j] = static_cast<float>(label(rng));
        else if (type.dtype == DType::i32) t.i32()[j] = id(rng);
        else t.i64()[j] = id(rng);
    }
    return t;
}

// The real (non-padding) ids of a (rows, T) id tensor, as the trainer counts them (train::row_lengths).
std::int64_t real_length_sum(const Tensor& ids) {
    std::vector<std::int32_t> values(static_cast<std::size_t>(ids.numel()));
    for (std::size_t j = 0; j < values.size(); ++j)
        values[j] = static_cast<std::int32_t>(ids.dtype() == DType::i32 ? ids.i32()[j] : ids.i64()[j]);
    std::int64_t sum = 0;
    for (const std::int32_t length : train::row_lengths(values, ids.dim(1))) sum += length;
    return sum;
}

// The timed batches' ids at the declared lengths (int32, padded with 0) and labels.
void save_batches(const Graph& g, const std::vector<int>& token_inputs, const std::vector<train::Batch>& batches, const std::string& prefix) {
    if (token_inputs.size() != 2) throw Error("--save-batches: expected two token inputs (left and right)");
    const char* sides[2] = {".left.npy", ".right.npy"};
    std::int64_t rows = 0;
    for (const auto& b : batches) rows += b.rows;
    for (std::size_t k = 0; k < 2; ++k) {
        const std::int64_t length = g.node(token_inputs[k]).outputs[0].shape.at(1);
        Tensor out({rows, length}, DType::i32);
        std::int64_t at = 0;
        for (const auto& b : batches) {
            const Tensor& ids = b.of(token_inputs[k]);
            const std::int64_t width = ids.dim(1);
            for (std::int64_t r = 0; r < b.rows; ++r, ++at)
                for (std::int64_t t = 0; t < width; ++t)
                    out.i32()[at * length + t] = static_cast<std::int32_t>(ids.dtype() == DType::i32 ? ids.i32()[r * width + t] : ids.i64()[r * width + t]);
        }
        io::write_npy(prefix + sides[k], out);
    }
    int label = -1;
    for (int input : g.inputs())
        if (g.node(input).outputs[0].dtype == DType::f32) label = input;
    if (label < 0) throw Error("--save-batches: the graph has no float label input");
    Tensor labels({rows});
    std::int64_t at = 0;
    for (const auto& b : batches) {
        std::copy_n(b.of(label).f32(), b.rows, labels.f32() + at);
        at += b.rows;
    }
    io::write_npy(prefix + ".label.npy", labels);
}

}  // namespace

constexpr const char* kUsage =
    "usage: bench_siamese SPEC --mode train|infer --threads P [--batch N] [--steps S] [--warmup W] [--precision f32|bf16]\n"
    "                     [--impl graphrun|dnnl] [--data [--set KEY=VALUE]... [--save-batches PREFIX]]\n"
    "\n"
    "graphrun's side of bench/run: SPEC (graphs/siamese.yaml) trained (batch 32: forward, backward, Adam)\n"
    "or run for inference (batch 256) on random full-length ids; prints one JSON line (samples/s\n"
    "median over --steps (20) timed steps after --warmup (3), peak RSS, threads). --precision bf16\n"
    "runs the lstms in bfloat16 (on oneDNN's primitive); where oneDNN has no bf16 LSTM for the CPU the\n"
    "line says so. --impl dnnl runs them on oneDNN's float32 primitive instead of graphrun's own\n"
    "LSTM, the default (framework graphrun-impl-dnnl).\n"
    "--data trains on SPEC's own training data instead, batched as `graphrun train` batches it (its\n"
    "task's first epoch, in order, each batch run once untimed first so every length's plan is\n"
    "compiled; --set changes the spec as graphrun train's does, e.g.\n"
    "train.length_buckets.window=50); batches differ in length, so the figure is the timed steps'\n"
    "samples over their total time, and the line adds the ids fed and the real (non-padding) ids;\n"
    "--save-batches writes the timed batches' ids (at the declared lengths) and labels as\n"
    "PREFIX.left.npy, PREFIX.right.npy, PREFIX.label.npy, for bench/torch_siamese.py --pairs.\n"
    "GRAPHRUN_BENCH_PROFILE=1 prints each node's time on stderr.\n"
    "Exit status: 0 success, 2 a bad argument or spec, 1 any other failure.\n";

int run(const std::string& spec_path, const bench::Args& args);

int main(int argc, char** argv) {
    bench::Args args;
    try {
        if (argc < 2 || std::string(argv[1]).rfind("-", 0) == 0) {
            bench::parse_args(argc, argv, 1, true);  // --help anywhere still prints the usage
            throw std::invalid_argument("expected the spec first, then the options");
        }
        args = bench::parse_args(argc, argv, 2, true);
    } catch (const bench::HelpRequested&) {
        fmt::print("{}", kUsage);
        return 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "bench_siamese: {}\n{}", e.what(), kUsage);
        return 2;
    }
    try {
        return run(argv[1], args);
    } catch (const Error& e) {
        fmt::print(stderr, "bench_siamese: {}\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        fmt::print(stderr, "bench_siamese: internal error: {}\n", e.what());
        return 1;
    }
}

int run(const std::string& spec_path, const bench::Args& args) {
    if (args.precision == "bf16" && !lstm_bf16_supported()) {
        fmt::print("{}", bench::unsupported_line("graphrun-bf16", args, "oneDNN 2.6 has no bfloat16 LSTM for this CPU (it needs AVX-512)"));
        return 0;
    }
    const bool training = args.training();
    const std::int64_t batch = args.batch;
    const int threads = args.threads, steps = args.steps, warmup = args.warmup;
    const ThreadBudget budget(threads);

    const std::string impl = args.precision == "bf16" ? "dnnl" : args.impl;
    std::vector<std::string> overrides{"nodes.left_lstm.precision=" + args.precision, "nodes.right_lstm.precision=" + args.precision,
                                       // bf16 runs on oneDNN's primitive only
                                       "nodes.left_lstm.impl=" + impl, "nodes.right_lstm.impl=" + impl};
    overrides.insert(overrides.end(), args.sets.begin(), args.sets.end());
    const spec::Spec spec = spec::load_spec_file(spec_path, overrides);
    const BuiltGraph built = build_graph(spec, builtin_ops());
    const Graph& g = built.graph;
    Executor ex(g);
    initialize_parameters(ex, 0);
    std::mt19937 rng(0);
    for (int input : g.inputs()) ex.set(input, random_input(g.node(input).outputs[0], batch, rng));
    Adam adam({.lr = 1e-3});
    const ValueRef similarity{g.index_of("similarity"), 0};

    // --data: the task's first epoch, batch after batch, as the trainer feeds it.
    std::unique_ptr<train::Task> task;
    std::vector<int> token_inputs;
    if (args.data) {
        if (batch != spec.train.batch_size)
            throw Error(fmt::format("--data batches as the spec's trainer does: --batch {} is not its train.batch_size {} (set either)", batch,
                                    spec.train.batch_size));
        task = train::make_task(spec, built, train::TrainOptions{}, std::nullopt);
        const std::int64_t count = task->plan_epoch(1);
        if (count < batch * (warmup + steps))
            throw Error(fmt::format("--data: the first epoch has {} samples, fewer than --batch {} x (--warmup {} + --steps {})", count, batch, warmup, steps));
        for (int input : task->length_bucketed_inputs()) ex.allow_shorter(input, 1);
        ex.set_plan_capacity(1000);
        for (int input : g.inputs())
            if (g.node(input).outputs[0].dtype != DType::f32) token_inputs.push_back(input);
    }
    std::int64_t fed_ids = 0, real_ids = 0;

    // --data: the batches, filled before the clock runs; each runs once
    // untimed first, so every length's plan is compiled, as after a run's
    // first epoch (a run meets each length once, then thousands of steps).
    std::vector<train::Batch> batches;
    if (task) {
        for (int s = 0; s < warmup + steps; ++s) {
            train::Batch b = train::Batch::for_inputs(g, batch);
            task->fill_training(static_cast<std::int64_t>(s) * batch, b);
            if (s >= warmup)
                for (int input : token_inputs) {
                    const Tensor& ids = b.of(input);
                    fed_ids += ids.numel();
                    real_ids += real_length_sum(ids);
                }
            batches.push_back(std::move(b));
        }
        for (const auto& b : batches) {
            b.feed(ex);
            ex.forward();
            ex.backward(built.loss);
        }
    }
    std::vector<double> times;
    int most_threads = bench::thread_count();
    for (int s = 0; s < warmup + steps; ++s) {
        ex.set_profiling(s >= warmup);
        if (task) batches[static_cast<std::size_t>(s)].feed(ex);
        const auto start = std::chrono::steady_clock::now();
        if (training) {
            ex.forward();
            ex.backward(built.loss);
            adam.step(ex);
        } else {
            ex.forward({similarity}, Executor::Mode::inference);
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (s >= warmup) times.push_back(seconds);
        most_threads = std::max(most_threads, bench::thread_count());
    }
    double med = bench::median(times);
    if (task) {  // batches of different lengths: the mean step, so samples/s is samples over time
        double sum = 0;
        for (double t : times) sum += t;
        med = sum / static_cast<double>(times.size());
        if (!args.save_batches.empty())
            save_batches(g, token_inputs, std::vector<train::Batch>(batches.begin() + warmup, batches.end()), args.save_batches);
    }
    // The LSTM nodes' share of the timed steps; the rest (embedding, dense,
    // cosine, loss, Adam, scheduling) is 1 minus it. Exact with one thread,
    // where node times do not overlap.
    double lstm_s = 0, total_s = 0;
    for (std::size_t i = 0; i < g.nodes().size(); ++i)
        if (g.nodes()[i].op_name == "lstm") lstm_s += ex.profile()[i].forward_s + ex.profile()[i].backward_s;
    for (double t : times) total_s += t;
    // The work of a step as the ops count it (Op::forward_flops, backward_flops): for the roofline.
    double flops = 0;
    for (const auto& t : ex.profile()) flops += t.forward_flops + t.backward_flops;
    const double flops_per_step = flops / static_cast<double>(steps);
    // GRAPHRUN_BENCH_PROFILE=1: each node's time per step, on stderr.
    if (const char* env = std::getenv("GRAPHRUN_BENCH_PROFILE"); env && std::string(env) == "1")
        for (std::size_t i = 0; i < g.nodes().size(); ++i) {
            const auto& t = ex.profile()[i];
            if (t.forward_calls)
                fmt::print(stderr, "{:<24} {:<18} forward {:8.3f} ms  backward {:8.3f} ms\n", g.nodes()[i].name, g.nodes()[i].op_name,
                           1e3 * t.forward_s / static_cast<double>(t.forward_calls),
                           t.backward_calls ? 1e3 * t.backward_s / static_cast<double>(t.backward_calls) : 0.0);
        }
    std::string data_fields;
    if (task)
        // The data's name: the folder its file is in (data/packages/train.tsv.xz: packages).
        data_fields = fmt::format("\"data\": \"{}\", \"sets\": \"{}\", \"fed_ids\": {}, \"real_ids\": {}, ",
                                  std::filesystem::path(spec.data.text.path).parent_path().filename().string(), fmt::join(args.sets, " "), fed_ids, real_ids);
    fmt::print("{{\"framework\": \"graphrun{}\", {}\"mode\": \"{}\", \"threads\": {}, \"batch\": {}, \"steps\": {}, \"step_ms_median\": {:.3f}, "
               "\"samples_per_s_median\": {:.1f}, \"samples_per_s_min\": {:.1f}, \"samples_per_s_max\": {:.1f}, \"peak_rss_mb\": {:.1f}, "
               "\"process_threads\": {}, \"lstm_share\": {:.4f}, \"mflop_per_pair\": {:.3f}, \"gflops\": {:.2f}}}\n",
               (args.precision == "f32" ? "" : "-" + args.precision) + (impl == "graphrun" || args.precision == "bf16" ? "" : "-impl-" + impl), data_fields, args.mode, threads, batch, steps, med * 1e3, static_cast<double>(batch) / med,
               static_cast<double>(batch) / *std::max_element(times.begin(), times.end()),
               static_cast<double>(batch) / *std::min_element(times.begin(), times.end()), bench::peak_rss_mb(),
               most_threads, lstm_s / total_s, flops_per_step / static_cast<double>(batch) / 1e6, flops_per_step / med / 1e9);
    return 0;
}
