// graphrun's own float32 LSTM; see ops/lstm_fused.hpp.
#include "ops/lstm_fused.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <span>

#include <fmt/format.h>

#include "engine/core/accumulate.hpp"
#include "engine/core/dnnl_context.hpp"
#include "graphrun/error.hpp"

namespace graphrun {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

// ---- the gate arithmetic of one row, vectorized (AVX2 + FMA) ----

// tanh for 8 floats: Eigen's rational approximation (a degree-13 odd
// polynomial over a degree-6 even one, on x clamped to +-7.905, where tanh is
// 1 in float32), relative error under 4e-7 everywhere: 14 operations and one
// division, against an exponential, a division and a second polynomial for
// small |x| by way of e^{2x}.
__attribute__((target("avx2,fma"))) inline __m256 tanh8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-7.90531110763549805f)), _mm256_set1_ps(7.90531110763549805f));
    const __m256 z = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(-2.76076847742355e-16f);
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.00018790482477e-13f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-8.60467152213735e-11f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(5.12229709037114e-08f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.48572235717979e-05f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(6.37261928875436e-04f));
    p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(4.89352455891786e-03f));
    __m256 q = _mm256_set1_ps(1.19825839466702e-06f);
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(1.18534705686654e-04f));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(2.26843463243900e-03f));
    q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(4.89352518554385e-03f));
    return _mm256_div_ps(_mm256_mul_ps(p, x), q);
}
// sigmoid(x) = (1 + tanh(x / 2)) / 2: absolute error under 2e-7, which is
// relative accuracy lost in the far negative tail (about 1e-3 at x = -10, and
// 0 below -15.8 where the true value is under 1.4e-7): a gate that shut
// passes nothing and gets no gradient, where float32's logistic passes 1e-7.
// Outputs and gradients stay within 1e-5 of oneDNN's (tests: saturated gates).
__attribute__((target("avx2,fma"))) inline __m256 sigmoid8(__m256 x) {
    const __m256 half = _mm256_set1_ps(0.5f);
    return _mm256_fmadd_ps(half, tanh8(_mm256_mul_ps(half, x)), half);
}

// Forward, one row: a (4H) pre-activations -> activations (in place); c = f c_prev + i g, h = o tanh(c).
__attribute__((target("avx2,fma"))) void gates_forward_avx2(float* a, const float* c_prev, float* c, float* h, std::int64_t H) {
    for (std::int64_t k = 0; k < H; k += 8) {
        const __m256 i = sigmoid8(_mm256_loadu_ps(a + k)), f = sigmoid8(_mm256_loadu_ps(a + H + k));
        const __m256 g = tanh8(_mm256_loadu_ps(a + 2 * H + k)), o = sigmoid8(_mm256_loadu_ps(a + 3 * H + k));
        const __m256 prev = c_prev ? _mm256_loadu_ps(c_prev + k) : _mm256_setzero_ps();
        const __m256 cc = _mm256_fmadd_ps(f, prev, _mm256_mul_ps(i, g));
        _mm256_storeu_ps(a + k, i);
        _mm256_storeu_ps(a + H + k, f);
        _mm256_storeu_ps(a + 2 * H + k, g);
        _mm256_storeu_ps(a + 3 * H + k, o);
        _mm256_storeu_ps(c + k, cc);
        _mm256_storeu_ps(h + k, _mm256_mul_ps(o, tanh8(cc)));
    }
}
void gates_forward_plain(float* a, const float* c_prev, float* c, float* h, std::int64_t H) {
    const auto sigmoid = [](float v) { return 1.0f / (1.0f + std::exp(-v)); };
    for (std::int64_t k = 0; k < H; ++k) {
        const float i = sigmoid(a[k]), f = sigmoid(a[H + k]), g = std::tanh(a[2 * H + k]), o = sigmoid(a[3 * H + k]);
        const float cc = f * (c_prev ? c_prev[k] : 0.0f) + i * g;
        a[k] = i, a[H + k] = f, a[2 * H + k] = g, a[3 * H + k] = o;
        c[k] = cc;
        h[k] = o * std::tanh(cc);
    }
}

// Backward, one row: a (4H) activations -> their pre-activations' gradients
// (in place), from dh (dy_t + the recurrence) and dc (running; becomes dc_{t-1}).
__attribute__((target("avx2,fma"))) void gates_backward_avx2(float* a, const float* c, const float* c_prev, const float* dh_in, const float* dy,
                                                             float* dc, std::int64_t H) {
    const __m256 one = _mm256_set1_ps(1.0f);
    for (std::int64_t k = 0; k < H; k += 8) {
        const __m256 i = _mm256_loadu_ps(a + k), f = _mm256_loadu_ps(a + H + k), g = _mm256_loadu_ps(a + 2 * H + k), o = _mm256_loadu_ps(a + 3 * H + k);
        __m256 dh = _mm256_loadu_ps(dh_in + k);
        if (dy) dh = _mm256_add_ps(dh, _mm256_loadu_ps(dy + k));
        const __m256 tc = tanh8(_mm256_loadu_ps(c + k));
        const __m256 prev = c_prev ? _mm256_loadu_ps(c_prev + k) : _mm256_setzero_ps();
        // dc_t = dc + dh o (1 - tanh^2 c)
        const __m256 dct = _mm256_fmadd_ps(_mm256_mul_ps(dh, o), _mm256_fnmadd_ps(tc, tc, one), _mm256_loadu_ps(dc + k));
        _mm256_storeu_ps(a + k, _mm256_mul_ps(_mm256_mul_ps(dct, g), _mm256_mul_ps(i, _mm256_sub_ps(one, i))));
        _mm256_storeu_ps(a + H + k, _mm256_mul_ps(_mm256_mul_ps(dct, prev), _mm256_mul_ps(f, _mm256_sub_ps(one, f))));
        _mm256_storeu_ps(a + 2 * H + k, _mm256_mul_ps(_mm256_mul_ps(dct, i), _mm256_fnmadd_ps(g, g, one)));
        _mm256_storeu_ps(a + 3 * H + k, _mm256_mul_ps(_mm256_mul_ps(dh, tc), _mm256_mul_ps(o, _mm256_sub_ps(one, o))));
        _mm256_storeu_ps(dc + k, _mm256_mul_ps(dct, f));
    }
}
void gates_backward_plain(float* a, const float* c, const float* c_prev, const float* dh_in, const float* dy, float* dc, std::int64_t H) {
    for (std::int64_t k = 0; k < H; ++k) {
        const float i = a[k], f = a[H + k], g = a[2 * H + k], o = a[3 * H + k];
        const float dh = dh_in[k] + (dy ? dy[k] : 0.0f);
        const float tc = std::tanh(c[k]), prev = c_prev ? c_prev[k] : 0.0f;
        const float dct = dc[k] + dh * o * (1.0f - tc * tc);
        a[k] = dct * g * (i * (1.0f - i));
        a[H + k] = dct * prev * (f * (1.0f - f));
        a[2 * H + k] = dct * i * (1.0f - g * g);
        a[3 * H + k] = dh * tc * (o * (1.0f - o));
        dc[k] = dct * f;
    }
}

// The CPU decides the path, never the thread count: the same bits on every run here.
bool use_avx2(std::int64_t H) {
    static const bool cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return cpu && H % 8 == 0;
}

// ---- the per-step product, C (M, cols) (+)= A (M, K) B (K, cols) ----
//
// Why not oneDNN's matmul here: a step's product is small (32 x 64 x 256),
// and a call of the primitive costs a sizeable share of it; B (W_hh or its
// transpose, 64 KB) is the same every step, so it is packed once per pass:
// columns in blocks of 16 (two AVX registers), each block's K rows
// contiguous, so a block (at most 16 KB) stays in L1 while every row of A goes
// by, four rows at a time: eight accumulators, two loads of B and four
// broadcasts per k. (Unpacked, a block's rows lie 1 KB apart and fall into a
// few cache sets.) Sums run over k in order, from C's old value when
// accumulating: the same bits for any thread count.

// B (K, cols) row-major, or its transpose (cols, K) row-major, packed in blocks of 16 columns.
void pack_columns(const float* b, bool transposed, std::int64_t K, std::int64_t cols, float* packed) {
    for (std::int64_t jb = 0; jb < cols; jb += 16)
        for (std::int64_t k = 0; k < K; ++k)
            for (std::int64_t jj = 0; jj < 16; ++jj) {
                const std::int64_t j = jb + jj;
                packed[jb * K + k * 16 + jj] = transposed ? b[j * K + k] : b[k * cols + j];
            }
}

// Four rows of C, 16 columns: named accumulators (an array of them was kept
// in memory by GCC, stored every k).
__attribute__((target("avx2,fma"))) void product_4_rows(const float* a, std::int64_t lda, const float* block, std::int64_t K, float* const* c,
                                                        std::int64_t j, bool accumulate) {
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda;
    float *c0 = c[0] + j, *c1 = c[1] + j, *c2 = c[2] + j, *c3 = c[3] + j;
    const __m256 zero = _mm256_setzero_ps();
    __m256 s00 = accumulate ? _mm256_loadu_ps(c0) : zero, s01 = accumulate ? _mm256_loadu_ps(c0 + 8) : zero;
    __m256 s10 = accumulate ? _mm256_loadu_ps(c1) : zero, s11 = accumulate ? _mm256_loadu_ps(c1 + 8) : zero;
    __m256 s20 = accumulate ? _mm256_loadu_ps(c2) : zero, s21 = accumulate ? _mm256_loadu_ps(c2 + 8) : zero;
    __m256 s30 = accumulate ? _mm256_loadu_ps(c3) : zero, s31 = accumulate ? _mm256_loadu_ps(c3 + 8) : zero;
    for (std::int64_t k = 0; k < K; ++k) {
        const __m256 b0 = _mm256_loadu_ps(block + k * 16), b1 = _mm256_loadu_ps(block + k * 16 + 8);
        __m256 x = _mm256_broadcast_ss(a0 + k);
        s00 = _mm256_fmadd_ps(x, b0, s00);
        s01 = _mm256_fmadd_ps(x, b1, s01);
        x = _mm256_broadcast_ss(a1 + k);
        s10 = _mm256_fmadd_ps(x, b0, s10);
        s11 = _mm256_fmadd_ps(x, b1, s11);
        x = _mm256_broadcast_ss(a2 + k);
        s20 = _mm256_fmadd_ps(x, b0, s20);
        s21 = _mm256_fmadd_ps(x, b1, s21);
        x = _mm256_broadcast_ss(a3 + k);
        s30 = _mm256_fmadd_ps(x, b0, s30);
        s31 = _mm256_fmadd_ps(x, b1, s31);
    }
    _mm256_storeu_ps(c0, s00);
    _mm256_storeu_ps(c0 + 8, s01);
    _mm256_storeu_ps(c1, s10);
    _mm256_storeu_ps(c1 + 8, s11);
    _mm256_storeu_ps(c2, s20);
    _mm256_storeu_ps(c2 + 8, s21);
    _mm256_storeu_ps(c3, s30);
    _mm256_storeu_ps(c3 + 8, s31);
}

__attribute__((target("avx2,fma"))) void product_1_row(const float* a, const float* block, std::int64_t K, float* c, bool accumulate) {
    __m256 s0 = accumulate ? _mm256_loadu_ps(c) : _mm256_setzero_ps(), s1 = accumulate ? _mm256_loadu_ps(c + 8) : _mm256_setzero_ps();
    for (std::int64_t k = 0; k < K; ++k) {
        const __m256 x = _mm256_broadcast_ss(a + k);
        s0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(block + k * 16), s0);
        s1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(block + k * 16 + 8), s1);
    }
    _mm256_storeu_ps(c, s0);
    _mm256_storeu_ps(c + 8, s1);
}

// Eight rows of C, 16 columns, in AVX-512 registers (one per row): where the
// CPU has AVX-512, the same blocks go by eight rows at a time, one load of B
// and eight broadcasts per k, with twice the accumulators in flight that the
// FMA's latency needs (on AVX2 the eight of product_4_rows are just enough,
// and a late load stalls them). Each element's sums are the same FMAs in the
// same order as product_4_rows': the same bits on either path.
__attribute__((target("avx512f"))) void product_8_rows(const float* a, std::int64_t lda, const float* block, std::int64_t K, float* const* c,
                                                       std::int64_t j, bool accumulate) {
    __m512 s[8];
    for (int r = 0; r < 8; ++r) s[r] = accumulate ? _mm512_loadu_ps(c[r] + j) : _mm512_setzero_ps();
    for (std::int64_t k = 0; k < K; ++k) {
        const __m512 b = _mm512_loadu_ps(block + k * 16);
        for (int r = 0; r < 8; ++r) s[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * lda + k]), b, s[r]);
    }
    for (int r = 0; r < 8; ++r) _mm512_storeu_ps(c[r] + j, s[r]);
}

bool cpu_has_avx512() {
    static const bool cpu = __builtin_cpu_supports("avx512f");
    return cpu;
}

// `packed` from pack_columns (`cols` a multiple of 16); rows of A strided, C's rows where c_rows
// points (the caller's dx rows lie T steps apart, and in an order of their own).
void step_product_avx2(const float* a, std::int64_t lda, const float* packed, std::int64_t M, std::int64_t K, std::int64_t cols, float* const* c_rows,
                       bool accumulate) {
    const bool avx512 = cpu_has_avx512();
    for (std::int64_t j = 0; j < cols; j += 16) {
        const float* block = packed + j * K;
        std::int64_t m = 0;
        if (avx512)
            for (; m + 8 <= M; m += 8) product_8_rows(a + m * lda, lda, block, K, c_rows + m, j, accumulate);
        for (; m + 4 <= M; m += 4) product_4_rows(a + m * lda, lda, block, K, c_rows + m, j, accumulate);
        for (; m < M; ++m) product_1_row(a + m * lda, block, K, c_rows[m] + j, accumulate);
    }
}

dnnl::matmul make_matmul(const memory::desc& src, const memory::desc& weights, const memory::desc* bias, const memory::desc& dst, bool add) {
    const dnnl::engine& engine = cpu_engine();
    dnnl::primitive_attr attr;
    if (add) {
        dnnl::post_ops sum;
        sum.append_sum(1.0f);
        attr.set_post_ops(sum);
    }
    const auto d = bias ? dnnl::matmul::desc(src, weights, *bias, dst) : dnnl::matmul::desc(src, weights, dst);
    return make_primitive<dnnl::matmul>(dnnl::matmul::primitive_desc(d, attr, engine));
}

void* writable(const float* p) { return const_cast<float*>(p); }

// The caller's y, dy and dx are (N, T, .): a step's rows lie T rows apart,
// too many streams for the hardware's prefetcher; so each row asks for the
// cache lines it will need a step later while this step's arithmetic runs.
void prefetch(const float* p, std::int64_t floats) {
    for (std::int64_t k = 0; k < floats; k += 16) _mm_prefetch(reinterpret_cast<const char*>(p + k), _MM_HINT_T0);
}

}  // namespace

void FusedLstm::build(const RnnSizes& s) {
    if (s.cell != RnnCell::lstm || s.bf16) throw Error("lstm impl graphrun: float32 LSTM only (not bf16, not the GRU)");
    const memory::dim N = s.N, T = s.T, E = s.E, H = s.H, G = 4 * s.H, W = E + H + 1;
    // Chunks of about 256 rows (256 KB of gates: in L2 between the GEMM and the steps).
    chunk_steps_ = std::max<std::int64_t>(1, std::min<std::int64_t>(T, 256 / N));
    chunk_rows_ = chunk_steps_ * N;
    // Training keeps every step's rows for backward (as many as T N, rounded up to whole
    // chunks); inference a chunk of gates and x (a ring), two steps of c.
    const std::int64_t kept_rows = s.training ? (T * N + chunk_rows_ - 1) / chunk_rows_ * chunk_rows_ : chunk_rows_;
    gates_ = Tensor(Shape{kept_rows, G});
    cells_ = Tensor(Shape{s.training ? T * N : 2 * N, H});
    xh_ = Tensor(Shape{kept_rows, W});
    float* const xh = xh_.f32();
    for (std::int64_t r = 0; r < kept_rows; ++r) xh[r * W + E] = 1.0f;  // the ones column: the bias in A = [x 1] [W_ih b]^T, db = dA^T 1
    y_own_ = Tensor();
    // What only backward reads, in training plans only.
    dh_ = s.training ? Tensor(Shape{N, H}) : Tensor();
    dc_ = s.training ? Tensor(Shape{N, H}) : Tensor();
    dw_all_ = s.training ? Tensor(Shape{W, G}) : Tensor();
    weights_packed_ = Tensor(Shape{G, s.training ? H + E : H});  // [W_hh | W_ih] in backward, W_hh^T (H, 4H) in forward
    w_ih_bias_ = Tensor(Shape{G, E + 1});
    // dx where the step product cannot take it: in the rows' order inside, added into the caller's after the loop.
    const bool dx_after_loop = !(use_avx2(H) && H % 16 == 0 && E % 16 == 0);
    dx_rows_ = s.training && dx_after_loop ? Tensor(Shape{kept_rows, E}) : Tensor();
    c_rows_.assign(static_cast<std::size_t>(N), nullptr);

    // Forward: A (rows, 4H) = [x 1] [W_ih b]^T (the bias in the GEMM, not in a pass of its own over A),
    // one GEMM per chunk of rows, just before the steps that need it; then per step A_t += h_{t-1} W_hh^T.
    const memory::desc w_ih_t({E + 1, G}, dt::f32, tag::ba), dw_all({W, G}, dt::f32, tag::ab);
    // oneDNN's per-step products (where graphrun's own cannot run) take a step's rows, as many as
    // run that step: M is given at each call.
    const memory::dim some = DNNL_RUNTIME_DIM_VAL;
    const memory::desc step_gates({some, G}, dt::f32, memory::dims{G, 1}), step_h({some, H}, dt::f32, memory::dims{W, 1});
    const memory::desc w_hh_t({H, G}, dt::f32, tag::ba);
    recur_ = make_matmul(step_h, w_hh_t, nullptr, step_gates, true);
    for (StepViews* views : {&recur_views_, &recur_back_views_}) *views = {std::vector<memory>(static_cast<std::size_t>(N) + 1), std::vector<memory>(static_cast<std::size_t>(N) + 1)};
    // Backward: dh_{t-1} = dA_t W_hh per step; per chunk of rows, once its dA is done (while it is
    // in cache), [dW_ih | db | dW_hh]^T += [x | 1 | H_prev]^T dA (one pass over dA for the three;
    // transposed, so the GEMM's columns are the 4H gates, whole vectors, and the operand oneDNN
    // copies across is [x 1 h], not the wider dA);
    // where the step product cannot take it, dx = dA W_ih after the loop.
    const memory::desc w_hh({G, H}, dt::f32, tag::ab), dh({some, H}, dt::f32, memory::dims{H, 1});
    const memory::desc w_ih({G, E}, dt::f32, tag::ab), dx({some, E}, dt::f32, memory::dims{E, 1});
    if (s.training) {
        recur_back_ = make_matmul(step_gates, w_hh, nullptr, dh, false);
        dx_ = make_matmul(step_gates, w_ih, nullptr, dx, false);  // over the rows that ran
    }

    const auto view = [&](const memory::desc& d, void* p = nullptr) { return memory(d, cpu_engine(), p ? p : DNNL_MEMORY_NONE); };
    const auto chunk_gemms = [&](std::int64_t steps) {
        ChunkGemms c;
        const memory::dim chunk_rows = steps * N;
        const memory::desc x({chunk_rows, E + 1}, dt::f32, memory::dims{W, 1}), gates({chunk_rows, G}, dt::f32, tag::ab);
        const memory::desc xh_t({W, chunk_rows}, dt::f32, tag::ba);
        c.project = make_matmul(x, w_ih_t, nullptr, gates, false);
        if (s.training) c.dw = make_matmul(xh_t, gates, nullptr, dw_all, true);
        c.x = view(x);
        c.gates = view(gates);
        c.xh_t = view(xh_t);
        return c;
    };
    full_chunk_ = chunk_gemms(chunk_steps_);
    // Inference's last chunk of steps where T is no multiple of it (training's rows are whole chunks).
    if (!s.training && T % chunk_steps_) last_chunk_ = chunk_gemms(T % chunk_steps_);
    w_ih_t_ = view(w_ih_t, w_ih_bias_.raw());
    w_hh_t_ = view(w_hh_t);
    if (s.training) {  // backward's
        w_hh_ = view(w_hh);
        dw_all_out_ = view(dw_all, dw_all_.raw());
        w_ih_ = view(w_ih);
    }
    sizes_ = s;
    built_ = true;
}

float* const* FusedLstm::strided_rows(float* c, std::int64_t ldc, std::int64_t rows) {
    for (std::int64_t j = 0; j < rows; ++j) c_rows_[static_cast<std::size_t>(j)] = c + j * ldc;
    return c_rows_.data();
}

void FusedLstm::step_product_dnnl(dnnl::matmul& product, StepViews* views, const float* a, std::int64_t lda, std::int64_t K, const dnnl::memory& b,
                                  float* c, std::int64_t ldc, std::int64_t cols, std::int64_t rows) {
    const auto make = [&](std::int64_t width, std::int64_t stride) {
        return memory(memory::desc({rows, width}, dt::f32, memory::dims{stride, 1}), cpu_engine(), DNNL_MEMORY_NONE);
    };
    memory src, dst;
    if (views) {  // this row count's views, made at its first step
        const auto r = static_cast<std::size_t>(rows);
        if (!views->a[r]) views->a[r] = make(K, lda), views->c[r] = make(cols, ldc);
        src = views->a[r];
        dst = views->c[r];
    } else {
        src = make(K, lda);
        dst = make(cols, ldc);
    }
    src.set_data_handle(writable(a));
    dst.set_data_handle(c);
    product.execute(cpu_stream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, dst}});
}

void FusedLstm::forward(const RnnSizes& s, const RnnForwardData& d) {
    if (d.h0 || d.c0) throw Error("lstm impl graphrun: a whole sequence from a zero state only");
    if (!d.lengths.empty() && static_cast<std::int64_t>(d.lengths.size()) != s.N) throw Error("lstm impl graphrun: one length per row");
    if (!built_ || !(s == sizes_)) build(s);
    sizes_ = s;
    const std::int64_t E = s.E, H = s.H, G = 4 * H;
    float* const w_ih_bias = w_ih_bias_.f32();
    for (std::int64_t k = 0; k < G; ++k) {
        std::memcpy(w_ih_bias + k * (E + 1), d.w_ih + k * E, static_cast<std::size_t>(E) * sizeof(float));
        w_ih_bias[k * (E + 1) + E] = d.bias[k];
    }
    w_hh_t_.set_data_handle(writable(d.w_hh));
    if (use_avx2(H) && H % 16 == 0) pack_columns(d.w_hh, true, H, G, weights_packed_.f32());  // B = W_hh^T (H, 4H)
    if (!d.y && !y_own_.defined()) y_own_ = Tensor(Shape{2, s.N, H});
    if (s.training) forward_training(d);
    else forward_inference(d);
    cpu_stream().wait();
    forward_done_ = true;
}

void FusedLstm::plan_rows(std::span<const std::int64_t> lengths) {
    const std::int64_t N = sizes_.N, T = sizes_.T;
    order_.resize(static_cast<std::size_t>(N));
    steps_of_.resize(static_cast<std::size_t>(N));
    for (std::int64_t j = 0; j < N; ++j) order_[static_cast<std::size_t>(j)] = j;
    // Longest first, ties in the caller's order: a step's running rows are the first ones.
    if (!lengths.empty())
        std::stable_sort(order_.begin(), order_.end(), [&](std::int64_t a, std::int64_t b) {
            return lengths[static_cast<std::size_t>(a)] > lengths[static_cast<std::size_t>(b)];
        });
    for (std::size_t j = 0; j < order_.size(); ++j) steps_of_[j] = lengths.empty() ? T : lengths[static_cast<std::size_t>(order_[j])];
    steps_run_ = N > 0 ? steps_of_[0] : 0;
    step_rows_.assign(static_cast<std::size_t>(steps_run_), 0);
    step_first_.assign(static_cast<std::size_t>(steps_run_) + 1, 0);
    std::int64_t running = N;
    for (std::int64_t t = 0; t < steps_run_; ++t) {
        while (running > 0 && steps_of_[static_cast<std::size_t>(running - 1)] <= t) --running;
        step_rows_[static_cast<std::size_t>(t)] = running;
        step_first_[static_cast<std::size_t>(t) + 1] = step_first_[static_cast<std::size_t>(t)] + running;
    }
    rows_run_ = step_first_.back();
    rows_padded_ = (rows_run_ + chunk_rows_ - 1) / chunk_rows_ * chunk_rows_;
}

// Training: the rows inside are in order of length, longest first, and packed
// by step, as PyTorch's PackedSequence: step t's rows are the first
// step_rows_[t] (those whose length exceeds t), from row step_first_[t] of the
// buffers, so a row's padding steps cost nothing. The projection runs per
// chunk of chunk_rows_ rows, whatever steps they hold, before the first step
// that reads them (the rows past the last step's, up to a whole chunk, are
// zeros: finite, and their gradients are set to 0 in backward).
void FusedLstm::forward_training(const RnnForwardData& d) {
    const std::int64_t T = sizes_.T, E = sizes_.E, H = sizes_.H, G = 4 * H, W = E + H + 1;
    const auto row_bytes = [](std::int64_t floats) { return static_cast<std::size_t>(floats) * sizeof(float); };
    plan_rows(d.lengths);
    float* const xh = xh_.f32();
    float* const gates = gates_.f32();
    float* const cells = cells_.f32();
    float* const h_prev = xh + E + 1;  // h_{t-1} of a row at xh_ (row, E + 1..)
    // x of rows [r0, r1) into xh_, chunk by chunk just before its projection (so they are in cache).
    std::int64_t copy_step = 0;  // the step of row r0
    const auto copy_x = [&](std::int64_t r0, std::int64_t r1) {
        r1 = std::min(r1, rows_run_);
        while (copy_step < steps_run_ && step_first_[static_cast<std::size_t>(copy_step) + 1] <= r0) ++copy_step;
        for (std::int64_t t = copy_step; t < steps_run_ && step_first_[static_cast<std::size_t>(t)] < r1; ++t) {
            const std::int64_t first = step_first_[static_cast<std::size_t>(t)], rows = step_rows_[static_cast<std::size_t>(t)];
            for (std::int64_t j = std::max(r0, first) - first; j < std::min(r1, first + rows) - first; ++j)
                std::memcpy(xh + (first + j) * W, d.x + (order_[static_cast<std::size_t>(j)] * T + t) * E, row_bytes(E));
        }
    };
    for (std::int64_t r = rows_run_; r < rows_padded_; ++r) {
        std::memset(xh + r * W, 0, row_bytes(E));
        std::memset(h_prev + r * W, 0, row_bytes(H));
    }
    if (steps_run_ > 0)
        for (std::int64_t j = 0; j < step_rows_[0]; ++j) std::memset(h_prev + j * W, 0, row_bytes(H));
    const bool own_product = use_avx2(H) && H % 16 == 0;
    dnnl::stream& stream = cpu_stream();  // this thread's
    std::int64_t projected = 0;  // rows whose projection is done
    for (std::int64_t t = 0; t < steps_run_; ++t) {
        const std::int64_t rows = step_rows_[static_cast<std::size_t>(t)], first = step_first_[static_cast<std::size_t>(t)];
        for (; projected < first + rows; projected += chunk_rows_) {
            copy_x(projected, projected + chunk_rows_);
            full_chunk_.x.set_data_handle(xh + projected * W);
            full_chunk_.gates.set_data_handle(gates + projected * G);
            full_chunk_.project.execute(stream, {{DNNL_ARG_SRC, full_chunk_.x}, {DNNL_ARG_WEIGHTS, w_ih_t_}, {DNNL_ARG_DST, full_chunk_.gates}});
        }
        float* const step_gates = gates + first * G;
        if (t > 0 && own_product) step_product_avx2(h_prev + first * W, W, weights_packed_.f32(), rows, H, G, strided_rows(step_gates, G, rows), true);
        else if (t > 0) step_product_dnnl(recur_, &recur_views_, h_prev + first * W, W, H, w_hh_t_, step_gates, G, G, rows);
        const std::int64_t next_first = t + 1 < steps_run_ ? step_first_[static_cast<std::size_t>(t) + 1] : 0;
        for (std::int64_t j = 0; j < rows; ++j) {
            const bool last = t + 1 == steps_of_[static_cast<std::size_t>(j)];
            const float* c_prev = t > 0 ? cells + (step_first_[static_cast<std::size_t>(t) - 1] + j) * H : nullptr;
            gate_row(d, j, t, step_gates + j * G, c_prev, cells + (first + j) * H, last ? nullptr : h_prev + (next_first + j) * W);
        }
    }
    zero_empty_rows(d);
}

// Inference: the rows in order of length as in training, in a ring of one
// chunk of steps (gates, x and h_{t-1}, N rows a step) and two steps (c; h
// where the caller keeps no y). Step t computes its first step_rows_[t] rows
// (those longer than t), and no step past the longest row runs; a chunk's
// projection runs over all N rows of its steps.
void FusedLstm::forward_inference(const RnnForwardData& d) {
    const std::int64_t N = sizes_.N, T = sizes_.T, E = sizes_.E, H = sizes_.H, G = 4 * H, W = E + H + 1;
    plan_rows(d.lengths);
    const auto row = [&](std::int64_t t) { return t % chunk_steps_; };
    const auto cell_row = [&](std::int64_t t) { return t % 2; };
    const auto row_bytes = [](std::int64_t floats) { return static_cast<std::size_t>(floats) * sizeof(float); };
    dnnl::stream& stream = cpu_stream();  // this thread's
    float* const xh = xh_.f32();
    float* const gates = gates_.f32();
    float* const cells = cells_.f32();
    float* const h_prev = xh + E + 1;  // h_{t-1} of row j at step t at xh_ (row(t) N + j, E + 1..)
    const bool own_product = use_avx2(H) && H % 16 == 0;
    for (std::int64_t j = 0; j < N; ++j) std::memset(h_prev + j * W, 0, row_bytes(H));
    for (std::int64_t t = 0; t < steps_run_; ++t) {
        const std::int64_t rows = step_rows_[static_cast<std::size_t>(t)];
        float* const step_gates = gates + row(t) * N * G;
        if (t % chunk_steps_ == 0) {  // the chunk's x (N, T, E) into xh_ (time-major), then its projection
            ChunkGemms& c = chunk_at(t);
            const std::int64_t steps = std::min(chunk_steps_, T - t);
            for (std::int64_t j = 0; j < N; ++j) {
                const std::int64_t n = order_[static_cast<std::size_t>(j)];
                for (std::int64_t u = t; u < t + steps; ++u) std::memcpy(xh + (row(u) * N + j) * W, d.x + (n * T + u) * E, row_bytes(E));
            }
            c.x.set_data_handle(xh + row(t) * N * W);
            c.gates.set_data_handle(step_gates);
            c.project.execute(stream, {{DNNL_ARG_SRC, c.x}, {DNNL_ARG_WEIGHTS, w_ih_t_}, {DNNL_ARG_DST, c.gates}});
        }
        float* const step_h_prev = h_prev + row(t) * N * W;
        if (t > 0 && own_product) step_product_avx2(step_h_prev, W, weights_packed_.f32(), rows, H, G, strided_rows(step_gates, G, rows), true);
        else if (t > 0) step_product_dnnl(recur_, &recur_views_, step_h_prev, W, H, w_hh_t_, step_gates, G, G, rows);
        for (std::int64_t j = 0; j < rows; ++j) {
            const bool last = t + 1 == steps_of_[static_cast<std::size_t>(j)];
            const float* c_prev = t > 0 ? cells + (cell_row(t - 1) * N + j) * H : nullptr;
            gate_row(d, j, t, step_gates + j * G, c_prev, cells + (cell_row(t) * N + j) * H, last ? nullptr : h_prev + (row(t + 1) * N + j) * W);
        }
    }
    zero_empty_rows(d);
}

void FusedLstm::gate_row(const RnnForwardData& d, std::int64_t j, std::int64_t t, float* a, const float* c_prev, float* c, float* next_h_prev) {
    const std::int64_t N = sizes_.N, T = sizes_.T, H = sizes_.H;
    const std::int64_t n = order_[static_cast<std::size_t>(j)];
    float* h = d.y ? d.y + (n * T + t) * H : y_own_.f32() + ((t % 2) * N + j) * H;
    if (d.y && next_h_prev) prefetch(h + H, H);
    if (use_avx2(H)) gates_forward_avx2(a, c_prev, c, h, H);
    else gates_forward_plain(a, c_prev, c, h, H);
    const std::size_t bytes = static_cast<std::size_t>(H) * sizeof(float);
    if (next_h_prev) {
        std::memcpy(next_h_prev, h, bytes);
    } else {  // the row's last step: its final state
        if (d.h_last) std::memcpy(d.h_last + n * H, h, bytes);
        if (d.c_last) std::memcpy(d.c_last + n * H, c, bytes);
    }
}

void FusedLstm::zero_empty_rows(const RnnForwardData& d) {
    const std::int64_t H = sizes_.H;
    for (std::size_t j = 0; j < order_.size(); ++j) {
        if (steps_of_[j] > 0) continue;
        if (d.h_last) std::memset(d.h_last + order_[j] * H, 0, static_cast<std::size_t>(H) * sizeof(float));
        if (d.c_last) std::memset(d.c_last + order_[j] * H, 0, static_cast<std::size_t>(H) * sizeof(float));
    }
}

void FusedLstm::backward(const RnnForwardData& d, const RnnBackwardData& g) {
    if (!forward_done_ || !sizes_.training) throw Error("lstm impl graphrun: backward needs a training forward of the same step first");
    forward_done_ = false;  // the gates become their gradients: one backward per forward
    const std::int64_t N = sizes_.N, T = sizes_.T, E = sizes_.E, H = sizes_.H, G = 4 * H, W = E + H + 1;
    const auto row_bytes = [](std::int64_t floats) { return static_cast<std::size_t>(floats) * sizeof(float); };
    float* const gates = gates_.f32();
    const float* const cells = cells_.f32();
    float* const dh = dh_.f32();
    float* const dc = dc_.f32();
    // The running gradients in the rows' order inside. A row's final state is its last real
    // step's, and the row does not run before it (backward goes down from the last step):
    // so its dh_last and dc_last can wait here from the start.
    for (std::int64_t j = 0; j < N; ++j) {
        const std::int64_t n = order_[static_cast<std::size_t>(j)];
        if (g.dh_last) std::memcpy(dh + j * H, g.dh_last + n * H, row_bytes(H));
        else std::memset(dh + j * H, 0, row_bytes(H));
        if (g.dc_last) std::memcpy(dc + j * H, g.dc_last + n * H, row_bytes(H));
        else std::memset(dc + j * H, 0, row_bytes(H));
    }
    const bool avx2 = use_avx2(H), own_product = avx2 && H % 16 == 0;
    // dx_t = dA_t W_ih in the same step product as dh_{t-1}, while dA_t is in cache
    // (one pass less over dA), where its columns fill whole blocks.
    const bool dx_in_steps = own_product && g.dx && E % 16 == 0;
    dnnl::stream& stream = cpu_stream();  // this thread's
    w_hh_.set_data_handle(writable(d.w_hh));
    float* const packed = weights_packed_.f32();
    if (own_product) pack_columns(d.w_hh, false, G, H, packed);         // B = [W_hh | W_ih] (4H, H + E)
    if (dx_in_steps) pack_columns(d.w_ih, false, G, E, packed + H * G);  // the blocks after W_hh's
    const bool weight_grads = g.dw_ih || g.dw_hh || g.dbias;
    if (weight_grads) dw_all_.zero();  // the chunks' GEMMs add into it
    // The rows past the last step's add nothing to the last chunk's weight gradients.
    std::memset(gates + rows_run_ * G, 0, row_bytes((rows_padded_ - rows_run_) * G));
    std::int64_t chunk = rows_padded_ / chunk_rows_ - 1;  // the next chunk whose dA is to be done, from the last
    for (std::int64_t t = steps_run_ - 1; t >= 0; --t) {
        const std::int64_t rows = step_rows_[static_cast<std::size_t>(t)], first = step_first_[static_cast<std::size_t>(t)];
        float* const step_gates = gates + first * G;
        for (std::int64_t j = 0; j < rows; ++j) {
            const std::int64_t at = first + j;
            const float* c_prev = t > 0 ? cells + (step_first_[static_cast<std::size_t>(t) - 1] + j) * H : nullptr;
            const float* dy = g.dy ? g.dy + (order_[static_cast<std::size_t>(j)] * T + t) * H : nullptr;
            if (t > 0 && dy) prefetch(dy - H, H);
            if (avx2) gates_backward_avx2(gates + at * G, cells + at * H, c_prev, dh + j * H, dy, dc + j * H, H);
            else gates_backward_plain(gates + at * G, cells + at * H, c_prev, dh + j * H, dy, dc + j * H, H);
        }
        if (dx_in_steps) {  // into the caller's dx rows (N, T, E) at step t, asking for step t - 1's meanwhile
            for (std::int64_t j = 0; j < rows; ++j) {
                c_rows_[static_cast<std::size_t>(j)] = g.dx + (order_[static_cast<std::size_t>(j)] * T + t) * E;
                if (t > 0) prefetch(c_rows_[static_cast<std::size_t>(j)] - E, E);
            }
            step_product_avx2(step_gates, G, packed + H * G, rows, G, E, c_rows_.data(), true);
        }
        // dh_{t-1} = dA_t W_hh for this step's rows (no dh0: the state starts at zero); the
        // rows that do not run at t keep theirs (zero, or their dh_last) until they run.
        if (t > 0 && own_product) step_product_avx2(step_gates, G, packed, rows, G, H, strided_rows(dh, H, rows), false);
        else if (t > 0) step_product_dnnl(recur_back_, &recur_back_views_, step_gates, G, G, w_hh_, dh, H, H, rows);
        // Every chunk whose rows all belong to steps t.. is done: its share of the weight gradients.
        for (; weight_grads && chunk >= 0 && chunk * chunk_rows_ >= first; --chunk) {
            full_chunk_.gates.set_data_handle(gates + chunk * chunk_rows_ * G);
            full_chunk_.xh_t.set_data_handle(xh_.f32() + chunk * chunk_rows_ * W);
            full_chunk_.dw.execute(stream, {{DNNL_ARG_SRC, full_chunk_.xh_t}, {DNNL_ARG_WEIGHTS, full_chunk_.gates}, {DNNL_ARG_DST, dw_all_out_}});
        }
    }
    if (weight_grads) {
        stream.wait();
        const float* dw = dw_all_.f32();  // [dW_ih | db | dW_hh]^T: row e of it, column k of the gates
        for (std::int64_t e = 0; e < W; ++e) {
            const float* row = dw + e * G;
            float* into = e < E ? g.dw_ih : e == E ? g.dbias : g.dw_hh;
            if (!into) continue;
            const std::int64_t column = e < E ? e : e == E ? 0 : e - E - 1, stride = e < E ? E : e == E ? 1 : H;
            for (std::int64_t k = 0; k < G; ++k) into[k * stride + column] += row[k];
        }
    }
    if (g.dx && !dx_in_steps) {  // dx = dA W_ih in the rows' order inside, added into the caller's (N, T, E)
        w_ih_.set_data_handle(writable(d.w_ih));
        if (rows_run_ > 0) step_product_dnnl(dx_, nullptr, gates, G, G, w_ih_, dx_rows_.f32(), E, E, rows_run_);
        stream.wait();
        for (std::int64_t j = 0; j < N; ++j) {
            const std::int64_t n = order_[static_cast<std::size_t>(j)];
            for (std::int64_t t = 0; t < steps_of_[static_cast<std::size_t>(j)]; ++t)
                add_into(g.dx + (n * T + t) * E, dx_rows_.f32() + (step_first_[static_cast<std::size_t>(t)] + j) * E, E);
        }
    }
    stream.wait();
}

FusedLstm::ChunkGemms& FusedLstm::chunk_at(std::int64_t t) {
    return t + chunk_steps_ <= sizes_.T ? full_chunk_ : last_chunk_;
}

std::int64_t FusedLstm::bytes() const {
    std::int64_t total = 0;
    for (const Tensor* t : {&gates_, &cells_, &xh_, &y_own_, &dh_, &dc_, &weights_packed_, &dw_all_, &dx_rows_}) total += static_cast<std::int64_t>(t->bytes());
    return total;
}

}  // namespace graphrun
