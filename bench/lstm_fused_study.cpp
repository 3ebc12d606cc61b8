// A study for issue 18, item 2: how fast a float32 LSTM forward of our own
// runs on the Siamese shapes against oneDNN's LSTM primitive (forward
// inference), before the engine gets one. Not used by graphrun.
//
// The fused forward, for x (N, T, E) batch-major as graphrun holds it:
//   1. the input projection of every step at once, one oneDNN matmul reading x
//      as (T, N, E) through strides: G (T, N, 4H) = x W_ih^T + b;
//   2. per step t, one small oneDNN matmul with a sum post-op adds
//      h_{t-1} W_hh^T into G_t in place, then one vectorized pass over the 4H
//      columns applies the gates and updates c and h (AVX2: exp by Cephes'
//      polynomial, as oneDNN's own kernels do).
// It checks the final h against oneDNN's primitive (relative 1e-5) and prints
// one JSON line per case: both programs' samples/s (medians).
//
// usage: bench_lstm_fused_study [--threads P] [--steps S] [--warmup W] [--batch N]
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
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
using dt = memory::data_type;
constexpr memory::dim kE = 32, kH = 64, kG = 4 * kH;

// e^x for 8 floats: x = k ln2 + r, e^r by Cephes' degree-5 polynomial, 2^k by
// the exponent bits. Relative error about 2e-7 on [-87, 88].
__attribute__((target("avx2,fma"))) inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
__attribute__((target("avx2,fma"))) inline __m256 sigmoid8(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}
// tanh x = 2 sigmoid(2x) - 1 loses relative accuracy near 0; 1 - 2 / (e^{2x} + 1) likewise:
// below |x| < 0.625 a short odd polynomial is used instead (Cephes' tanhf).
__attribute__((target("avx2,fma"))) inline __m256 tanh8(__m256 x) {
    const __m256 sign = _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u))));
    const __m256 a = _mm256_andnot_ps(sign, x);
    const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
    const __m256 big = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(exp8(_mm256_mul_ps(two, a)), one)));
    const __m256 z = _mm256_mul_ps(a, a);
    __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.06390887954e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531e-2f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036e-1f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422e-1f));
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), a, a);
    const __m256 r = _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
    return _mm256_or_ps(r, sign);
}

// One step's gates for the rows [0, N): G (N, 4H) in PyTorch's order i, f, g, o.
__attribute__((target("avx2,fma"))) void gates(const float* G, float* c, float* h, memory::dim N) {
    for (memory::dim n = 0; n < N; ++n) {
        const float* g = G + n * kG;
        float* cn = c + n * kH;
        float* hn = h + n * kH;
        for (memory::dim k = 0; k < kH; k += 8) {
            const __m256 i = sigmoid8(_mm256_loadu_ps(g + k)), f = sigmoid8(_mm256_loadu_ps(g + kH + k));
            const __m256 u = tanh8(_mm256_loadu_ps(g + 2 * kH + k)), o = sigmoid8(_mm256_loadu_ps(g + 3 * kH + k));
            const __m256 cc = _mm256_fmadd_ps(f, _mm256_loadu_ps(cn + k), _mm256_mul_ps(i, u));
            _mm256_storeu_ps(cn + k, cc);
            _mm256_storeu_ps(hn + k, _mm256_mul_ps(o, tanh8(cc)));
        }
    }
}

memory make(const memory::desc& d, dnnl::engine& eng, const float* from = nullptr) {
    memory m(d, eng);
    auto* p = static_cast<float*>(m.get_data_handle());
    if (from) std::copy(from, from + d.get_size() / sizeof(float), p);
    else std::fill(p, p + d.get_size() / sizeof(float), 0.0f);
    return m;
}

struct Weights {
    std::vector<float> w_ih, w_hh, b;  // PyTorch's (4H, E), (4H, H), (4H)
};

// The fused forward: returns h after T steps (N, H).
struct Fused {
    memory::dim N, T;
    dnnl::matmul project, recur;
    memory x, w_ih, b, G, h, w_hh;
    std::vector<float> c;
    dnnl::stream stream;

    Fused(dnnl::engine& eng, memory::dim n, memory::dim t, const Weights& w, const std::vector<float>& xs) : N(n), T(t), stream(eng) {
        // x (N, T, E) read as (T, N, E): strides (E, T E, 1).
        const memory::desc xd({T, N, kE}, dt::f32, memory::dims{kE, T * kE, 1});
        const memory::desc wd({1, kE, kG}, dt::f32, memory::dims{kE * kG, 1, kE});  // W_ih^T over PyTorch's (4H, E)
        const memory::desc bd({1, 1, kG}, dt::f32, tag::abc), gd({T, N, kG}, dt::f32, tag::abc);
        project = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(xd, wd, bd, gd), eng));
        x = make(xd, eng, xs.data());
        w_ih = make(wd, eng, w.w_ih.data());
        b = make(bd, eng, w.b.data());
        G = make(gd, eng);
        const memory::desc hd({N, kH}, dt::f32, tag::ab), whd({kH, kG}, dt::f32, tag::ba), gtd({N, kG}, dt::f32, tag::ab);
        dnnl::post_ops sum;
        sum.append_sum(1.0f);
        dnnl::primitive_attr attr;
        attr.set_post_ops(sum);
        recur = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(hd, whd, gtd), attr, eng));
        h = make(hd, eng);
        w_hh = make(whd, eng, w.w_hh.data());
        c.assign(static_cast<std::size_t>(N * kH), 0.0f);
    }

    void run(dnnl::engine& eng) {
        project.execute(stream, {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w_ih}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, G}});
        auto* hp = static_cast<float*>(h.get_data_handle());
        auto* gp = static_cast<float*>(G.get_data_handle());
        std::fill(hp, hp + N * kH, 0.0f);
        std::fill(c.begin(), c.end(), 0.0f);
        const memory::desc gtd({N, kG}, dt::f32, tag::ab);
        for (memory::dim t = 0; t < T; ++t) {
            memory gt(gtd, eng, gp + t * N * kG);
            if (t > 0) recur.execute(stream, {{DNNL_ARG_SRC, h}, {DNNL_ARG_WEIGHTS, w_hh}, {DNNL_ARG_DST, gt}});
            stream.wait();
            gates(gp + t * N * kG, c.data(), hp, N);
        }
    }
};

// oneDNN's LSTM primitive, forward inference, the same weights.
struct Primitive {
    dnnl::lstm_forward fwd;
    std::unordered_map<int, memory> args;
    dnnl::stream stream;
    memory hn;

    Primitive(dnnl::engine& eng, memory::dim N, memory::dim T, const Weights& w, const std::vector<float>& xs) : stream(eng) {
        const memory::desc x({T, N, kE}, dt::f32, tag::ntc), y({T, N, kH}, dt::f32, tag::ntc), s({1, 1, N, kH}, dt::f32, tag::ldnc);
        const memory::desc wl({1, 1, kE, 4, kH}, dt::f32, tag::ldigo), wi({1, 1, kH, 4, kH}, dt::f32, tag::ldigo), bd({1, 1, 4, kH}, dt::f32, tag::ldgo);
        dnnl::lstm_forward::primitive_desc pd({dnnl::prop_kind::forward_inference, dnnl::rnn_direction::unidirectional_left2right, x, s, s, wl, wi, bd, y, s, s},
                                              eng);
        fwd = dnnl::lstm_forward(pd);
        // ldigo: (E, 4, H) = W_ih^T; PyTorch's gate order i, f, g, o is oneDNN's.
        std::vector<float> wlt(static_cast<std::size_t>(kE * kG)), wit(static_cast<std::size_t>(kH * kG));
        for (memory::dim r = 0; r < kG; ++r) {
            for (memory::dim e = 0; e < kE; ++e) wlt[e * kG + r] = w.w_ih[r * kE + e];
            for (memory::dim e = 0; e < kH; ++e) wit[e * kG + r] = w.w_hh[r * kH + e];
        }
        hn = make(s, eng);
        args = {{DNNL_ARG_SRC_LAYER, make(x, eng, xs.data())}, {DNNL_ARG_WEIGHTS_LAYER, make(wl, eng, wlt.data())},
                {DNNL_ARG_WEIGHTS_ITER, make(wi, eng, wit.data())}, {DNNL_ARG_BIAS, make(bd, eng, w.b.data())},
                {DNNL_ARG_SRC_ITER, make(s, eng)}, {DNNL_ARG_SRC_ITER_C, make(s, eng)}, {DNNL_ARG_DST_LAYER, make(y, eng)}, {DNNL_ARG_DST_ITER, hn}, {DNNL_ARG_DST_ITER_C, make(s, eng)},
                {DNNL_ARG_SCRATCHPAD, make(pd.scratchpad_desc(), eng)}};
    }
    void run() {
        fwd.execute(stream, args);
        stream.wait();
    }
};

// The final h of rows [0, rows) in double precision, straight from the definition.
std::vector<double> reference(const Weights& w, const std::vector<float>& xs, memory::dim T, memory::dim rows) {
    std::vector<double> out(static_cast<std::size_t>(rows * kH));
    const auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
    for (memory::dim n = 0; n < rows; ++n) {
        std::vector<double> h(kH, 0.0), c(kH, 0.0), g(kG);
        for (memory::dim t = 0; t < T; ++t) {
            const float* x = xs.data() + (n * T + t) * kE;
            for (memory::dim r = 0; r < kG; ++r) {
                double a = w.b[r];
                for (memory::dim e = 0; e < kE; ++e) a += static_cast<double>(w.w_ih[r * kE + e]) * x[e];
                for (memory::dim e = 0; e < kH; ++e) a += static_cast<double>(w.w_hh[r * kH + e]) * h[e];
                g[r] = a;
            }
            for (memory::dim k = 0; k < kH; ++k) {
                c[k] = sig(g[kH + k]) * c[k] + sig(g[k]) * std::tanh(g[2 * kH + k]);
                h[k] = sig(g[3 * kH + k]) * std::tanh(c[k]);
            }
        }
        std::copy(h.begin(), h.end(), out.begin() + n * kH);
    }
    return out;
}

template <class Run>
double median_seconds(int warmup, int steps, Run&& run) {
    std::vector<double> times;
    for (int s = 0; s < warmup + steps; ++s) {
        const auto start = std::chrono::steady_clock::now();
        run();
        if (s >= warmup) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return bench::median(times);
}

}  // namespace

int main(int argc, char** argv) {
    bench::Args args;
    try {
        args = bench::parse_args(argc, argv, 1);
    } catch (const bench::HelpRequested&) {
        fmt::print("usage: bench_lstm_fused_study [--threads P] [--steps S] [--warmup W] [--batch N]\n"
                   "A study: a fused float32 LSTM forward against oneDNN's primitive (inference) on T 52 and 600.\n");
        return 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "bench_lstm_fused_study: {}\n", e.what());
        return 2;
    }
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        fmt::print(stderr, "bench_lstm_fused_study: the study's kernels need AVX2 and FMA\n");
        return 2;
    }
    omp_set_num_threads(args.threads);
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    const memory::dim N = args.mode == "train" && args.batch == 32 ? 256 : args.batch;  // inference batch unless --batch
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-0.125f, 0.125f), ux(-1.0f, 1.0f);
    Weights w;
    for (auto* v : {&w.w_ih, &w.w_hh, &w.b}) v->resize(static_cast<std::size_t>(kG * (v == &w.w_ih ? kE : v == &w.w_hh ? kH : 1)));
    for (auto* v : {&w.w_ih, &w.w_hh, &w.b})
        for (float& f : *v) f = u(rng);
    int failed = 0;
    for (const memory::dim T : {memory::dim{52}, memory::dim{600}}) {
        std::vector<float> xs(static_cast<std::size_t>(N * T * kE));
        for (float& f : xs) f = ux(rng);
        Fused fused(eng, N, T, w, xs);
        Primitive prim(eng, N, T, w, xs);
        fused.run(eng);
        prim.run();
        const auto* a = static_cast<const float*>(fused.h.get_data_handle());
        const auto* b = static_cast<const float*>(prim.hn.get_data_handle());
        double worst = 0;
        for (memory::dim k = 0; k < N * kH; ++k) worst = std::max(worst, std::abs(static_cast<double>(a[k]) - b[k]) / (1e-3 + std::abs(b[k])));
        // Both against double precision on the first rows: which is nearer the definition.
        const memory::dim rows = std::min<memory::dim>(N, 8);
        const std::vector<double> exact = reference(w, xs, T, rows);
        double fused_error = 0, onednn_error = 0;
        for (memory::dim k = 0; k < rows * kH; ++k) {
            fused_error = std::max(fused_error, std::abs(a[k] - exact[k]) / (1e-3 + std::abs(exact[k])));
            onednn_error = std::max(onednn_error, std::abs(b[k] - exact[k]) / (1e-3 + std::abs(exact[k])));
        }
        failed += worst > 1e-4;
        const double tf = median_seconds(args.warmup, args.steps, [&] { fused.run(eng); });
        const double tp = median_seconds(args.warmup, args.steps, [&] { prim.run(); });
        fmt::print("{{\"study\": \"lstm_fused_forward\", \"threads\": {}, \"batch\": {}, \"T\": {}, \"max_rel_difference\": {:.2e}, \"fused_error_vs_double\": {:.2e}, \"onednn_error_vs_double\": {:.2e}, "
                   "\"fused_samples_per_s\": {:.1f}, \"onednn_samples_per_s\": {:.1f}, \"fused_over_onednn\": {:.3f}}}\n",
                   args.threads, N, T, worst, fused_error, onednn_error, N / tf, N / tp, tp / tf);
    }
    return failed ? 1 : 0;
}
