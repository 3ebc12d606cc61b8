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
#include <cstdlib>
#include <random>
#include <string>

#include <fmt/format.h>

#include "engine/core/executor.hpp"
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

}  // namespace

constexpr const char* kUsage =
    "usage: bench_siamese SPEC --mode train|infer --threads P [--batch N] [--steps S] [--warmup W] [--precision f32|bf16]\n"
    "                     [--impl graphrun|dnnl]\n"
    "\n"
    "graphrun's side of bench/run: SPEC (graphs/siamese.yaml) trained (batch 32: forward, backward, Adam)\n"
    "or run for inference (batch 256) on random full-length ids; prints one JSON line (samples/s\n"
    "median over --steps (20) timed steps after --warmup (3), peak RSS, threads). --precision bf16\n"
    "runs the lstms in bfloat16 (on oneDNN's primitive); where oneDNN has no bf16 LSTM for the CPU the\n"
    "line says so. --impl dnnl runs them on oneDNN's float32 primitive instead of graphrun's own\n"
    "LSTM, the default (framework graphrun-impl-dnnl).\n"
    "GRAPHRUN_BENCH_PROFILE=1 prints each node's time on stderr.\n"
    "Exit status: 0 success, 2 a bad argument or spec, 1 any other failure.\n";

int run(const std::string& spec_path, const bench::Args& args);

int main(int argc, char** argv) {
    bench::Args args;
    try {
        if (argc < 2 || std::string(argv[1]).rfind("-", 0) == 0) {
            bench::parse_args(argc, argv, 1);  // --help anywhere still prints the usage
            throw std::invalid_argument("expected the spec first, then the options");
        }
        args = bench::parse_args(argc, argv, 2);
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
    const spec::Spec spec = spec::load_spec_file(
        spec_path, {"nodes.left_lstm.precision=" + args.precision, "nodes.right_lstm.precision=" + args.precision,
                    // bf16 runs on oneDNN's primitive only
                    "nodes.left_lstm.impl=" + impl, "nodes.right_lstm.impl=" + impl});
    const BuiltGraph built = build_graph(spec, builtin_ops());
    const Graph& g = built.graph;
    Executor ex(g);
    initialize_parameters(ex, 0);
    std::mt19937 rng(0);
    for (int input : g.inputs()) ex.set(input, random_input(g.node(input).outputs[0], batch, rng));
    Adam adam({.lr = 1e-3});
    const ValueRef similarity{g.index_of("similarity"), 0};

    std::vector<double> times;
    int most_threads = bench::thread_count();
    for (int s = 0; s < warmup + steps; ++s) {
        ex.set_profiling(s >= warmup);
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
    const double med = bench::median(times);
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
    fmt::print("{{\"framework\": \"graphrun{}\", \"mode\": \"{}\", \"threads\": {}, \"batch\": {}, \"steps\": {}, \"step_ms_median\": {:.3f}, "
               "\"samples_per_s_median\": {:.1f}, \"samples_per_s_min\": {:.1f}, \"samples_per_s_max\": {:.1f}, \"peak_rss_mb\": {:.1f}, "
               "\"process_threads\": {}, \"lstm_share\": {:.4f}, \"mflop_per_pair\": {:.3f}, \"gflops\": {:.2f}}}\n",
               (args.precision == "f32" ? "" : "-" + args.precision) + (impl == "graphrun" || args.precision == "bf16" ? "" : "-impl-" + impl), args.mode, threads, batch, steps, med * 1e3, static_cast<double>(batch) / med,
               static_cast<double>(batch) / *std::max_element(times.begin(), times.end()),
               static_cast<double>(batch) / *std::min_element(times.begin(), times.end()), bench::peak_rss_mb(),
               most_threads, lstm_s / total_s, flops_per_step / static_cast<double>(batch) / 1e6, flops_per_step / med / 1e9);
    return 0;
}
