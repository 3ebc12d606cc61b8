// The floor for graphrun's Siamese benchmark: oneDNN's own LSTM primitives on
// the Siamese shapes (E 32, H 64, T 52 and T 600), called directly with nothing
// around them. Training is lstm_forward (forward_training) + lstm_backward for
// both branches; inference is lstm_forward (forward_inference) for both.
//
// Two arrangements of P threads:
//   single  one call per branch on the whole batch, P OpenMP threads inside it
//   split   the batch cut into P parts, one std::thread each, 1 OpenMP thread each
// Prints one JSON line per arrangement: samples/s median over the timed steps.
//
// usage: bench_lstm_floor --mode train|infer --threads P [--batch N] [--steps S] [--warmup W] [--precision f32|bf16]
#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <dnnl.hpp>
#include <fmt/format.h>
#include <omp.h>

#include "bench/bench_common.hpp"

namespace {

using dnnl::memory;
using tag = memory::format_tag;
constexpr memory::dim kE = 32, kH = 64;

memory::desc desc(const memory::dims& d, tag t) { return {d, memory::data_type::f32, t}; }

// A buffer filled with `value` (f32) or zeros (any other type: the speed does not depend on the values).
memory filled(const memory::desc& d, dnnl::engine& eng, float value) {
    memory m(d, eng);
    if (d.data_type() == memory::data_type::f32) {
        auto* p = static_cast<float*>(m.get_data_handle());
        std::fill(p, p + d.get_size() / sizeof(float), value);
    } else {
        std::memset(m.get_data_handle(), 0, d.get_size());
    }
    return m;
}

// One branch's LSTM on a batch of N: its primitives, buffers and arguments,
// built once; run() executes forward (and backward when training).
struct Branch {
    dnnl::lstm_forward fwd;
    dnnl::lstm_backward bwd;
    std::unordered_map<int, memory> fwd_args, bwd_args;
    bool training;

    // bf16: x, y, h and the weights in bfloat16; the cell state, bias and every gradient in f32 (as graphrun's lstm does).
    Branch(dnnl::engine& eng, memory::dim N, memory::dim T, bool train, bool bf16) : training(train) {
        const auto prop = train ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
        const auto dir = dnnl::rnn_direction::unidirectional_left2right;
        const auto low = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
        const auto x = memory::desc({T, N, kE}, low, tag::ntc), y = memory::desc({T, N, kH}, low, tag::ntc);
        const auto h = memory::desc({1, 1, N, kH}, low, tag::ldnc), s = desc({1, 1, N, kH}, tag::ldnc);
        const auto dx = desc({T, N, kE}, tag::ntc), dy = desc({T, N, kH}, tag::ntc);
        const memory::dims wl{1, 1, kE, 4, kH}, wi{1, 1, kH, 4, kH}, b{1, 1, 4, kH};
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        const auto any = [](const memory::dims& d) { return desc(d, tag::any); };
        const auto any_low = [&](const memory::dims& d) { return memory::desc(d, low, tag::any); };
        dnnl::lstm_forward::primitive_desc fpd({prop, dir, x, h, s, any_low(wl), any_low(wi), any(b), y, h, s}, attr, eng);
        fwd = dnnl::lstm_forward(fpd);
        auto xm = filled(x, eng, 0.1f), h0 = filled(h, eng, 0), c0 = filled(s, eng, 0);
        auto wlm = filled(fpd.weights_layer_desc(), eng, 0.01f), wim = filled(fpd.weights_iter_desc(), eng, 0.01f),
             bm = filled(fpd.bias_desc(), eng, 0);
        auto ym = filled(y, eng, 0), hn = filled(h, eng, 0), cn = filled(s, eng, 0);
        fwd_args = {{DNNL_ARG_SRC_LAYER, xm}, {DNNL_ARG_SRC_ITER, h0}, {DNNL_ARG_SRC_ITER_C, c0}, {DNNL_ARG_WEIGHTS_LAYER, wlm},
                    {DNNL_ARG_WEIGHTS_ITER, wim}, {DNNL_ARG_BIAS, bm},  {DNNL_ARG_DST_LAYER, ym}, {DNNL_ARG_DST_ITER, hn},
                    {DNNL_ARG_DST_ITER_C, cn}, {DNNL_ARG_SCRATCHPAD, filled(fpd.scratchpad_desc(), eng, 0)}};
        if (!train) return;
        auto ws = filled(fpd.workspace_desc(), eng, 0);
        fwd_args[DNNL_ARG_WORKSPACE] = ws;
        dnnl::lstm_backward::primitive_desc bpd({dnnl::prop_kind::backward, dir, x, h, s, any_low(wl), any_low(wi), any(b), y, h, s, dx, s, s,
                                                 any(wl), any(wi), any(b), dy, s, s},
                                                attr, eng, fpd);
        bwd = dnnl::lstm_backward(bpd);
        bwd_args = fwd_args;
        bwd_args[DNNL_ARG_WEIGHTS_LAYER] = filled(bpd.weights_layer_desc(), eng, 0.01f);
        bwd_args[DNNL_ARG_WEIGHTS_ITER] = filled(bpd.weights_iter_desc(), eng, 0.01f);
        bwd_args[DNNL_ARG_SCRATCHPAD] = filled(bpd.scratchpad_desc(), eng, 0);
        bwd_args[DNNL_ARG_DIFF_SRC_LAYER] = filled(dx, eng, 0);
        bwd_args[DNNL_ARG_DIFF_SRC_ITER] = filled(s, eng, 0);
        bwd_args[DNNL_ARG_DIFF_SRC_ITER_C] = filled(s, eng, 0);
        bwd_args[DNNL_ARG_DIFF_WEIGHTS_LAYER] = filled(bpd.diff_weights_layer_desc(), eng, 0);
        bwd_args[DNNL_ARG_DIFF_WEIGHTS_ITER] = filled(bpd.diff_weights_iter_desc(), eng, 0);
        bwd_args[DNNL_ARG_DIFF_BIAS] = filled(bpd.diff_bias_desc(), eng, 0);
        bwd_args[DNNL_ARG_DIFF_DST_LAYER] = filled(dy, eng, 0);
        bwd_args[DNNL_ARG_DIFF_DST_ITER] = filled(s, eng, 1e-3f);
        bwd_args[DNNL_ARG_DIFF_DST_ITER_C] = filled(s, eng, 0);
    }

    void run(dnnl::stream& stream) {
        fwd.execute(stream, fwd_args);
        if (training) bwd.execute(stream, bwd_args);
        stream.wait();
    }
};

}  // namespace

constexpr const char* kUsage =
    "usage: bench_lstm_floor --mode train|infer --threads P [--batch N] [--steps S] [--warmup W] [--precision f32|bf16]\n"
    "\n"
    "The floor of bench/run: oneDNN's LSTM primitives alone on the Siamese shapes (E 32, H 64,\n"
    "T 52 and 600), as one call per branch (single) and with the batch split among P threads\n"
    "(split); one JSON line per arrangement (samples/s median). Where oneDNN has no bf16 LSTM\n"
    "for the CPU, --precision bf16 prints a line that says so.\n"
    "Exit status: 0 success, 2 a bad argument, 1 any other failure.\n";

int run(const bench::Args& args);

int main(int argc, char** argv) {
    bench::Args args;
    try {
        args = bench::parse_args(argc, argv, 1);
    } catch (const bench::HelpRequested&) {
        fmt::print("{}", kUsage);
        return 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "bench_lstm_floor: {}\n{}", e.what(), kUsage);
        return 2;
    }
    try {
        return run(args);
    } catch (const std::exception& e) {
        fmt::print(stderr, "bench_lstm_floor: internal error: {}\n", e.what());
        return 1;
    }
}

int run(const bench::Args& args) {
    const bool training = args.training();
    const int threads = args.threads, steps = args.steps, warmup = args.warmup;
    const memory::dim batch = args.batch;
    const bool bf16 = args.precision == "bf16";
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    // Primitives are built inside the worker threads, where a failure cannot be
    // reported: one small branch first tells whether this CPU has them at all.
    try {
        Branch probe(eng, 1, 1, training, bf16);
    } catch (const dnnl::error& e) {
        if (!bf16) throw;
        fmt::print("{}", bench::unsupported_line("onednn-floor-bf16", args, "oneDNN 2.6 has no bfloat16 LSTM for this CPU (it needs AVX-512)"));
        return 0;
    }

    for (const std::string arrangement : {"single", "split"}) {
        const int parts = arrangement == "single" ? 1 : threads;
        if (arrangement == "split" && threads == 1) continue;  // the same as single
        std::vector<double> times;
        std::barrier sync(parts + 1);
        std::vector<std::thread> workers;
        bool stop = false;
        for (int p = 0; p < parts; ++p)
            workers.emplace_back([&, p] {
                omp_set_num_threads(parts == 1 ? threads : 1);
                const memory::dim n = batch / parts + (p < batch % parts ? 1 : 0);
                Branch left(eng, n, 52, training, bf16), right(eng, n, 600, training, bf16);
                dnnl::stream stream(eng);
                sync.arrive_and_wait();  // built
                for (;;) {
                    sync.arrive_and_wait();  // go
                    if (stop) return;
                    left.run(stream);
                    right.run(stream);
                    sync.arrive_and_wait();  // done
                }
            });
        sync.arrive_and_wait();
        for (int s = 0; s < warmup + steps; ++s) {
            const auto start = std::chrono::steady_clock::now();
            sync.arrive_and_wait();
            sync.arrive_and_wait();
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            if (s >= warmup) times.push_back(seconds);
        }
        stop = true;
        sync.arrive_and_wait();
        for (auto& w : workers) w.join();
        const double med = bench::median(times);
        fmt::print("{{\"framework\": \"onednn-floor{}\", \"arrangement\": \"{}\", \"mode\": \"{}\", \"threads\": {}, \"batch\": {}, \"steps\": {}, "
                   "\"step_ms_median\": {:.3f}, \"samples_per_s_median\": {:.1f}, \"peak_rss_mb\": {:.1f}}}\n",
                   bf16 ? "-bf16" : "", arrangement, args.mode, threads, batch, steps, med * 1e3, static_cast<double>(batch) / med, bench::peak_rss_mb());
    }
    return 0;
}
