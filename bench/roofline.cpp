// The roofline of bench/run (issue 18, item 1): what this machine's float32
// GEMMs reach, and what the LSTM of the Siamese benchmark would cost if it
// were its GEMMs alone, run by oneDNN's matmul primitive with P OpenMP threads.
//
//   peak      a large square GEMM (2048^3): the machine's float32 peak as
//             oneDNN reaches it
//   the LSTM's GEMMs on the seed's training shapes (batch N 32, E 32, H 64,
//   T 52 and 600, both branches), each part alone:
//     large   one GEMM over all steps each: the input projection
//             [N*T, E] x [E, 4H]; in backward dx = dG W_ih [N*T, 4H] x [4H, E],
//             dW_ih = X^T dG and dW_hh = H^T dG ([E or H, N*T] x [N*T, 4H])
//     per step  T small GEMMs that wait on the step before: forward
//             h_{t-1} W_hh^T [N, H] x [H, 4H], backward dG_t W_hh [N, 4H] x [4H, H]
//   and on its inference shapes (batch 256): the input projection over all
//   steps [256*T, E] x [E, 4H] (infer_large) and T products h_{t-1} W_hh^T
//   [256, H] x [H, 4H] (infer_per_step)
// Each part's time is the median of --steps runs after --warmup; the sum of
// the parts is the LSTM training step with free gate arithmetic, a bound no
// LSTM on these GEMMs can beat; per-step GEMMs bound even a perfectly fused
// kernel, since they cannot be batched across steps.
//
// usage: bench_roofline --threads P [--steps S] [--warmup W]
// Prints one JSON line per part: MFLOP, milliseconds, GFLOP/s.
#include <algorithm>
#include <chrono>
#include <string>
#include <unordered_map>
#include <vector>

#include <dnnl.hpp>
#include <fmt/format.h>
#include <omp.h>

#include "bench/bench_common.hpp"

namespace {

using dnnl::memory;
using tag = memory::format_tag;
constexpr memory::dim kN = 32, kE = 32, kH = 64, kGates = 4 * kH, kInferN = 256;
constexpr memory::dim kSteps[] = {52, 600};  // the two branches' lengths

// C (M, N) = A (M, K) x B (K, N), A stored as (K, M) when `a_transposed`
// (X^T and H^T of the weight gradients: the activations as they are, read across).
struct Gemm {
    dnnl::matmul prim;
    std::unordered_map<int, memory> args;
    double flops;

    Gemm(dnnl::engine& eng, memory::dim M, memory::dim K, memory::dim N, bool a_transposed) : flops(2.0 * M * K * N) {
        const memory::desc a({M, K}, memory::data_type::f32, a_transposed ? tag::ba : tag::ab);
        const memory::desc b({K, N}, memory::data_type::f32, tag::ab), c({M, N}, memory::data_type::f32, tag::ab);
        prim = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), eng));
        args = {{DNNL_ARG_SRC, filled(a, eng)}, {DNNL_ARG_WEIGHTS, filled(b, eng)}, {DNNL_ARG_DST, filled(c, eng)}};
    }
    static memory filled(const memory::desc& d, dnnl::engine& eng) {
        memory m(d, eng);
        auto* p = static_cast<float*>(m.get_data_handle());
        std::fill(p, p + d.get_size() / sizeof(float), 0.01f);
        return m;
    }
};

// A part: `repeat` calls of one GEMM in a row (T for a per-step part).
struct Part {
    std::string name, kind;
    Gemm gemm;
    memory::dim repeat;
};

}  // namespace

constexpr const char* kUsage =
    "usage: bench_roofline --threads P [--steps S] [--warmup W]\n"
    "\n"
    "The float32 GEMM roofline of bench/run: a 2048^3 matmul (the peak), then the Siamese\n"
    "LSTM's GEMMs on its training shapes (batch 32), each part alone: the large GEMMs over\n"
    "all steps and the per-step recurrent ones; and on its inference shapes (batch 256).\n"
    "One JSON line per part.\n"
    "Exit status: 0 success, 2 a bad argument, 1 any other failure.\n";

int main(int argc, char** argv) {
    bench::Args args;
    try {
        args = bench::parse_args(argc, argv, 1);
    } catch (const bench::HelpRequested&) {
        fmt::print("{}", kUsage);
        return 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "bench_roofline: {}\n{}", e.what(), kUsage);
        return 2;
    }
    try {
        omp_set_num_threads(args.threads);
        dnnl::engine eng(dnnl::engine::kind::cpu, 0);
        dnnl::stream stream(eng);
        std::vector<Part> parts;
        parts.push_back({"peak 2048x2048x2048", "peak", Gemm(eng, 2048, 2048, 2048, false), 1});
        for (const memory::dim T : kSteps) {
            const std::string t = fmt::format("T={}", T);
            parts.push_back({"input projection " + t, "large", Gemm(eng, kN * T, kE, kGates, false), 1});
            parts.push_back({"dx " + t, "large", Gemm(eng, kN * T, kGates, kE, false), 1});
            parts.push_back({"dW_ih " + t, "large", Gemm(eng, kE, kN * T, kGates, true), 1});
            parts.push_back({"dW_hh " + t, "large", Gemm(eng, kH, kN * T, kGates, true), 1});
            parts.push_back({"h W_hh per step " + t, "per_step", Gemm(eng, kN, kH, kGates, false), T});
            parts.push_back({"dG W_hh per step " + t, "per_step", Gemm(eng, kN, kGates, kH, false), T});
            parts.push_back({"inference input projection " + t, "infer_large", Gemm(eng, kInferN * T, kE, kGates, false), 1});
            parts.push_back({"inference h W_hh per step " + t, "infer_per_step", Gemm(eng, kInferN, kH, kGates, false), T});
        }
        for (Part& part : parts) {
            std::vector<double> times;
            for (int s = 0; s < args.warmup + args.steps; ++s) {
                const auto start = std::chrono::steady_clock::now();
                for (memory::dim r = 0; r < part.repeat; ++r) part.gemm.prim.execute(stream, part.gemm.args);
                stream.wait();
                if (s >= args.warmup) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
            }
            const double seconds = bench::median(times), flops = part.gemm.flops * static_cast<double>(part.repeat);
            fmt::print("{{\"framework\": \"roofline\", \"threads\": {}, \"part\": \"{}\", \"kind\": \"{}\", \"mflop\": {:.3f}, \"ms_median\": {:.4f}, "
                       "\"gflops\": {:.2f}}}\n",
                       args.threads, part.name, part.kind, flops / 1e6, seconds * 1e3, flops / seconds / 1e9);
            std::fflush(stdout);
        }
    } catch (const std::exception& e) {
        fmt::print(stderr, "bench_roofline: internal error: {}\n", e.what());
        return 1;
    }
    return 0;
}
