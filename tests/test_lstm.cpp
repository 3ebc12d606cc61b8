// lstm and lstm_cell: finite-difference gradient checks, `lstm` against
// `lstm_cell` unrolled in a graph, and both against a double-precision loop
// (forward, and backward by BPTT) written here.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "engine/core/executor.hpp"
#include "ops/builtin.hpp"
#include "ops/composites.hpp"
#include "ops/rnn_dnnl.hpp"
#include "tests/fixtures.hpp"
#include "tests/gradcheck.hpp"

using namespace graphrun;
using graphrun::testing::check_close;
using graphrun::testing::random_tensor;

namespace {

struct Sizes {
    std::int64_t N, T, E, H;
};

// The weights (4H, E), (4H, H), (4H) in [-0.5, 0.5): small, so the gates stay
// away from saturation and finite differences behave.
struct Weights {
    Tensor w_ih, w_hh, bias;
    Weights(const Sizes& s, unsigned seed)
        : w_ih(random_tensor({4 * s.H, s.E}, seed, -0.5f, 0.5f)),
          w_hh(random_tensor({4 * s.H, s.H}, seed + 1, -0.5f, 0.5f)),
          bias(random_tensor({4 * s.H}, seed + 2, -0.5f, 0.5f)) {}
};

Attrs lstm_attrs(std::int64_t units, bool return_sequences) {
    return {{"units", units}, {"return_sequences", return_sequences}};
}

// ---- The reference: a plain LSTM in double, forward and BPTT. ----

double sigmoid(double a) { return 1.0 / (1.0 + std::exp(-a)); }

struct Reference {
    std::int64_t N, T, E, H;
    std::vector<double> x, w_ih, w_hh, b, h0, c0;  // x (N, T, E); h0, c0 (N, H)
    // Saved by forward, per (n, t): gates i f g o (4H) after activation, c_t and h_t (H).
    std::vector<double> gates, c, h;

    static std::vector<double> doubles(const Tensor& t) { return {t.floats().begin(), t.floats().end()}; }

    Reference(const Sizes& s, const Tensor& x_, const Weights& w, const Tensor* h0_ = nullptr, const Tensor* c0_ = nullptr)
        : N(s.N), T(s.T), E(s.E), H(s.H), x(doubles(x_)), w_ih(doubles(w.w_ih)), w_hh(doubles(w.w_hh)), b(doubles(w.bias)),
          h0(h0_ ? doubles(*h0_) : std::vector<double>(N * H)), c0(c0_ ? doubles(*c0_) : std::vector<double>(N * H)) {
        forward();
    }

    const double* h_prev(std::int64_t n, std::int64_t t) const { return t ? &h[(n * T + t - 1) * H] : &h0[n * H]; }
    const double* c_prev(std::int64_t n, std::int64_t t) const { return t ? &c[(n * T + t - 1) * H] : &c0[n * H]; }

    void forward() {
        gates.assign(N * T * 4 * H, 0);
        c.assign(N * T * H, 0);
        h.assign(N * T * H, 0);
        for (std::int64_t n = 0; n < N; ++n)
            for (std::int64_t t = 0; t < T; ++t) {
                const double* xt = &x[(n * T + t) * E];
                const double *hp = h_prev(n, t), *cp = c_prev(n, t);
                double* g = &gates[(n * T + t) * 4 * H];
                for (std::int64_t r = 0; r < 4 * H; ++r) {
                    double a = b[r];
                    for (std::int64_t e = 0; e < E; ++e) a += w_ih[r * E + e] * xt[e];
                    for (std::int64_t k = 0; k < H; ++k) a += w_hh[r * H + k] * hp[k];
                    g[r] = r / H == 2 ? std::tanh(a) : sigmoid(a);
                }
                for (std::int64_t k = 0; k < H; ++k) {
                    const double ct = g[H + k] * cp[k] + g[k] * g[2 * H + k];
                    c[(n * T + t) * H + k] = ct;
                    h[(n * T + t) * H + k] = g[3 * H + k] * std::tanh(ct);
                }
            }
    }

    struct Grads {
        std::vector<double> dx, dh0, dc0, dw_ih, dw_hh, db;
    };

    // dy (N, T, H) on every h_t, dh_last and dc_last (N, H) on h_{T-1}, c_{T-1}; each may be empty.
    Grads backward(const std::vector<double>& dy, const std::vector<double>& dh_last, const std::vector<double>& dc_last) const {
        Grads gr{std::vector<double>(N * T * E), {}, {}, std::vector<double>(4 * H * E), std::vector<double>(4 * H * H),
                 std::vector<double>(4 * H)};
        gr.dh0.assign(N * H, 0);
        gr.dc0.assign(N * H, 0);
        std::vector<double> dh_next(H), dc_next(H), da(4 * H);
        for (std::int64_t n = 0; n < N; ++n) {
            for (std::int64_t k = 0; k < H; ++k) {
                dh_next[k] = dh_last.empty() ? 0 : dh_last[n * H + k];
                dc_next[k] = dc_last.empty() ? 0 : dc_last[n * H + k];
            }
            for (std::int64_t t = T - 1; t >= 0; --t) {
                const double* g = &gates[(n * T + t) * 4 * H];
                const double *hp = h_prev(n, t), *cp = c_prev(n, t), *xt = &x[(n * T + t) * E];
                for (std::int64_t k = 0; k < H; ++k) {
                    const double dh = dh_next[k] + (dy.empty() ? 0 : dy[(n * T + t) * H + k]);
                    const double tc = std::tanh(c[(n * T + t) * H + k]);
                    const double i = g[k], f = g[H + k], gg = g[2 * H + k], o = g[3 * H + k];
                    // h = o tanh(c); c = f c_prev + i g
                    const double dc = dc_next[k] + dh * o * (1 - tc * tc);
                    da[k] = dc * gg * i * (1 - i);
                    da[H + k] = dc * cp[k] * f * (1 - f);
                    da[2 * H + k] = dc * i * (1 - gg * gg);
                    da[3 * H + k] = dh * tc * o * (1 - o);
                    dc_next[k] = dc * f;
                }
                // a = W_ih x + W_hh h_prev + b
                std::fill(dh_next.begin(), dh_next.end(), 0.0);
                for (std::int64_t r = 0; r < 4 * H; ++r) {
                    gr.db[r] += da[r];
                    for (std::int64_t e = 0; e < E; ++e) {
                        gr.dw_ih[r * E + e] += da[r] * xt[e];
                        gr.dx[(n * T + t) * E + e] += w_ih[r * E + e] * da[r];
                    }
                    for (std::int64_t k = 0; k < H; ++k) {
                        gr.dw_hh[r * H + k] += da[r] * hp[k];
                        dh_next[k] += w_hh[r * H + k] * da[r];
                    }
                }
            }
            for (std::int64_t k = 0; k < H; ++k) {
                gr.dh0[n * H + k] = dh_next[k];
                gr.dc0[n * H + k] = dc_next[k];
            }
        }
        return gr;
    }

    // All hidden states (N, T, H), or the last (N, H); likewise the last cell state.
    Tensor hidden(bool all) const {
        Tensor out(all ? Shape{N, T, H} : Shape{N, H});
        for (std::int64_t n = 0; n < N; ++n)
            for (std::int64_t t = all ? 0 : T - 1; t < T; ++t)
                for (std::int64_t k = 0; k < H; ++k)
                    out.f32()[((all ? n * T + t : n)) * H + k] = static_cast<float>(h[(n * T + t) * H + k]);
        return out;
    }
    Tensor last_cell() const {
        Tensor out(Shape{N, H});
        for (std::int64_t n = 0; n < N; ++n)
            for (std::int64_t k = 0; k < H; ++k) out.f32()[n * H + k] = static_cast<float>(c[(n * T + T - 1) * H + k]);
        return out;
    }
};

Tensor to_tensor(const std::vector<double>& v, const Shape& shape) {
    Tensor t(shape);
    for (std::int64_t j = 0; j < t.numel(); ++j) t.f32()[j] = static_cast<float>(v[static_cast<std::size_t>(j)]);
    return t;
}
std::vector<double> doubles(const Tensor& t) { return Reference::doubles(t); }

const Sizes kShapes[] = {{1, 1, 2, 3}, {3, 5, 4, 6}, {2, 7, 3, 5}, {1, 4, 1, 1}};

}  // namespace

TEST_CASE("lstm gradients match finite differences", "[lstm]") {
    for (const Sizes& s : kShapes)
        for (bool seq : {false, true}) {
            INFO(fmt::format("N={} T={} E={} H={} return_sequences={}", s.N, s.T, s.E, s.H, seq));
            const Weights w(s, 10);
            const Tensor x = random_tensor({s.N, s.T, s.E}, 3);
            REQUIRE(testing::check_op_gradients("lstm", {x, w.w_ih, w.w_hh, w.bias}, lstm_attrs(s.H, seq)) > 0);
        }
}

TEST_CASE("lstm_cell gradients match finite differences", "[lstm]") {
    for (const Sizes& s : kShapes) {
        INFO(fmt::format("N={} E={} H={}", s.N, s.E, s.H));
        const Weights w(s, 20);
        const Tensor x = random_tensor({s.N, s.E}, 4), h = random_tensor({s.N, s.H}, 5), c = random_tensor({s.N, s.H}, 6);
        REQUIRE(testing::check_op_gradients("lstm_cell", {x, h, c, w.w_ih, w.w_hh, w.bias}, {{"units", s.H}}) > 0);
    }
}

TEST_CASE("lstm equals lstm_cell unrolled over the sequence", "[lstm]") {
    for (const Sizes& s : kShapes)
        for (bool seq : {false, true}) {
            INFO(fmt::format("N={} T={} E={} H={} return_sequences={}", s.N, s.T, s.E, s.H, seq));
            const Weights w(s, 30);
            const Tensor x = random_tensor({s.N, s.T, s.E}, 7);

            // The layer: x is a parameter so that it gets a gradient too.
            Graph layer(builtin_ops());
            const ValueRef lx = layer.parameter("x", x.type());
            const ValueRef lw[] = {layer.parameter("w_ih", w.w_ih.type()), layer.parameter("w_hh", w.w_hh.type()),
                                   layer.parameter("bias", w.bias.type())};
            const ValueRef ly = layer.add("lstm", "lstm", {lx, lw[0], lw[1], lw[2]}, lstm_attrs(s.H, seq));

            // The unrolled cells: one x_t parameter per step, shared weights, zero h and c as inputs.
            Graph cells(builtin_ops());
            std::vector<ValueRef> xs;
            for (std::int64_t t = 0; t < s.T; ++t) xs.push_back(cells.parameter(fmt::format("x{}", t), {DType::f32, {s.N, s.E}}));
            const ValueRef cw[] = {cells.parameter("w_ih", w.w_ih.type()), cells.parameter("w_hh", w.w_hh.type()),
                                   cells.parameter("bias", w.bias.type())};
            ValueRef h = cells.input("h0", {DType::f32, {s.N, s.H}});
            ValueRef c = cells.input("c0", {DType::f32, {s.N, s.H}});
            std::vector<ValueRef> hs;
            for (std::int64_t t = 0; t < s.T; ++t) {
                h = cells.add(fmt::format("cell{}", t), "lstm_cell", {xs[t], h, c, cw[0], cw[1], cw[2]}, {{"units", s.H}});
                c = ValueRef{h.node, 1};
                hs.push_back(h);
            }

            Executor le(layer), ce(cells);
            le.set("x", x);
            for (const char* name : {"w_ih", "w_hh", "bias"}) {
                const Tensor& v = std::string(name) == "w_ih" ? w.w_ih : std::string(name) == "w_hh" ? w.w_hh : w.bias;
                le.set(name, v);
                ce.set(name, v);
            }
            for (std::int64_t t = 0; t < s.T; ++t) {
                Tensor xt(Shape{s.N, s.E});
                for (std::int64_t n = 0; n < s.N; ++n)
                    for (std::int64_t e = 0; e < s.E; ++e) xt.f32()[n * s.E + e] = x.f32()[(n * s.T + t) * s.E + e];
                ce.set(fmt::format("x{}", t), xt);
            }
            ce.set("h0", Tensor(Shape{s.N, s.H}));
            ce.set("c0", Tensor(Shape{s.N, s.H}));
            le.forward();
            ce.forward();

            // Gather the cells' outputs the way the layer lays them out, and seed both alike.
            const Tensor seed = random_tensor(le.value(ly).shape(), 8);
            Tensor from_cells(le.value(ly).shape());
            std::vector<std::pair<ValueRef, Tensor>> cell_seeds;
            for (std::int64_t t = seq ? 0 : s.T - 1; t < s.T; ++t) {
                Tensor st(Shape{s.N, s.H});
                for (std::int64_t n = 0; n < s.N; ++n)
                    for (std::int64_t k = 0; k < s.H; ++k) {
                        const std::int64_t at = (seq ? n * s.T + t : n) * s.H + k;
                        from_cells.f32()[at] = ce.value(hs[t]).f32()[n * s.H + k];
                        st.f32()[n * s.H + k] = seed.f32()[at];
                    }
                cell_seeds.emplace_back(hs[t], st);
            }
            check_close("h", le.value(ly), from_cells, 1e-5);

            le.backward({{ly, seed}});
            ce.backward(cell_seeds);
            for (const char* name : {"w_ih", "w_hh", "bias"}) check_close(std::string("d") + name, le.grad(name), ce.grad(name), 1e-5);
            Tensor dx_cells(x.shape());
            for (std::int64_t t = 0; t < s.T; ++t)
                for (std::int64_t n = 0; n < s.N; ++n)
                    for (std::int64_t e = 0; e < s.E; ++e)
                        dx_cells.f32()[(n * s.T + t) * s.E + e] = ce.grad(fmt::format("x{}", t)).f32()[n * s.E + e];
            check_close("dx", le.grad("x"), dx_cells, 1e-5);
        }
}

TEST_CASE("lstm matches a double-precision reference, forward and backward", "[lstm]") {
    for (bool seq : {false, true}) {
        // One graph with an open batch, run at several batch sizes: the
        // primitives are re-created when N changes, and reused when it does not.
        const std::int64_t T = 6, E = 4, H = 5;
        Graph g(builtin_ops());
        const ValueRef x = g.parameter("x", {DType::f32, {kAnyDim, T, E}});
        const ValueRef w_ih = g.parameter("w_ih", {DType::f32, {4 * H, E}});
        const ValueRef w_hh = g.parameter("w_hh", {DType::f32, {4 * H, H}});
        const ValueRef bias = g.parameter("bias", {DType::f32, {4 * H}});
        const ValueRef y = g.add("lstm", "lstm", {x, w_ih, w_hh, bias}, lstm_attrs(H, seq));
        Executor ex(g);
        for (std::int64_t N : {3, 1, 4, 4}) {
            INFO(fmt::format("N={} return_sequences={}", N, seq));
            const Sizes s{N, T, E, H};
            const Weights w(s, 40);
            const Tensor xv = random_tensor({N, T, E}, 9 + static_cast<unsigned>(N));
            ex.set("x", xv);
            ex.set("w_ih", w.w_ih);
            ex.set("w_hh", w.w_hh);
            ex.set("bias", w.bias);
            ex.forward();
            const Reference ref(s, xv, w);
            check_close("y", ex.value(y), ref.hidden(seq), 1e-5);

            const Tensor seed = random_tensor(ex.value(y).shape(), 11);
            ex.backward({{y, seed}});
            const auto gr = seq ? ref.backward(doubles(seed), {}, {}) : ref.backward({}, doubles(seed), {});
            check_close("dx", ex.grad("x"), to_tensor(gr.dx, {N, T, E}), 1e-5);
            check_close("dw_ih", ex.grad("w_ih"), to_tensor(gr.dw_ih, {4 * H, E}), 1e-5);
            check_close("dw_hh", ex.grad("w_hh"), to_tensor(gr.dw_hh, {4 * H, H}), 1e-5);
            check_close("dbias", ex.grad("bias"), to_tensor(gr.db, {4 * H}), 1e-5);
        }
    }
}

TEST_CASE("lstm_cell matches a double-precision reference, forward and backward", "[lstm]") {
    const Sizes s{3, 1, 4, 6};
    const Weights w(s, 50);
    const Tensor x = random_tensor({s.N, s.E}, 12), h = random_tensor({s.N, s.H}, 13), c = random_tensor({s.N, s.H}, 14);
    Graph g(builtin_ops());
    std::vector<ValueRef> in;
    const char* names[] = {"x", "h", "c", "w_ih", "w_hh", "bias"};
    const Tensor* values[] = {&x, &h, &c, &w.w_ih, &w.w_hh, &w.bias};
    for (int k = 0; k < 6; ++k) in.push_back(g.parameter(names[k], values[k]->type()));
    const ValueRef h1 = g.add("cell", "lstm_cell", in, {{"units", s.H}});
    const ValueRef c1{h1.node, 1};
    Executor ex(g);
    for (int k = 0; k < 6; ++k) ex.set(names[k], *values[k]);
    // Twice: oneDNN accumulates into its diff weights, which must start from zero each step.
    for (int step = 0; step < 2; ++step) {
        ex.forward();
        const Reference ref(s, x, w, &h, &c);
        check_close("h'", ex.value(h1), ref.hidden(false), 1e-5);
        check_close("c'", ex.value(c1), ref.last_cell(), 1e-5);

        const Tensor dh1 = random_tensor({s.N, s.H}, 15), dc1 = random_tensor({s.N, s.H}, 16);
        ex.backward({{h1, dh1}, {c1, dc1}});
        const auto gr = ref.backward({}, doubles(dh1), doubles(dc1));
        check_close("dx", ex.grad("x"), to_tensor(gr.dx, {s.N, s.E}), 1e-5);
        check_close("dh", ex.grad("h"), to_tensor(gr.dh0, {s.N, s.H}), 1e-5);
        check_close("dc", ex.grad("c"), to_tensor(gr.dc0, {s.N, s.H}), 1e-5);
        check_close("dw_ih", ex.grad("w_ih"), to_tensor(gr.dw_ih, {4 * s.H, s.E}), 1e-5);
        check_close("dw_hh", ex.grad("w_hh"), to_tensor(gr.dw_hh, {4 * s.H, s.H}), 1e-5);
        check_close("dbias", ex.grad("bias"), to_tensor(gr.db, {4 * s.H}), 1e-5);
    }
}

TEST_CASE("lstm shape errors say what was expected", "[lstm]") {
    Graph g(builtin_ops());
    const ValueRef x = g.input("x", {DType::f32, {kAnyDim, 52, 32}});
    const ValueRef w_ih = g.parameter("w_ih", {DType::f32, {256, 64}});
    const ValueRef w_hh = g.parameter("w_hh", {DType::f32, {256, 64}});
    const ValueRef bias = g.parameter("bias", {DType::f32, {256}});
    REQUIRE_THROWS_WITH(g.add("l", "lstm", {x, w_ih, w_hh, bias}, {{"units", std::int64_t{64}}}),
                        Catch::Contains("lstm expects weight_ih (4*units=256, E=32), got (256, 64)"));
    REQUIRE_THROWS_WITH(g.add("l", "lstm", {x, w_ih, w_hh, bias}, {{"units", std::int64_t{32}}}),
                        Catch::Contains("(4*units=128, E=32)"));
    REQUIRE_THROWS_WITH(g.add("l", "lstm", {x, w_ih, w_hh, bias}), Catch::Contains("units"));

    const ValueRef x2 = g.input("x2", {DType::f32, {kAnyDim, 64}});
    const ValueRef h = g.input("h", {DType::f32, {kAnyDim, 32}});
    REQUIRE_THROWS_WITH(g.add("cell", "lstm_cell", {x2, h, h, w_ih, w_hh, bias}, {{"units", std::int64_t{64}}}),
                        Catch::Contains("lstm_cell expects h (N, units=64), got (N, 32)"));
    // An open batch is accepted and stays open.
    const ValueRef ok = g.add("ok", "lstm", {g.input("x3", {DType::f32, {kAnyDim, 5, 64}}), w_ih, w_hh, bias},
                              lstm_attrs(64, true));
    CHECK(g.type(ok).shape == Shape{kAnyDim, 5, 64});
}

TEST_CASE("lstm in bf16 agrees with f32 to bfloat16's precision, forward and backward", "[lstm]") {
    const std::int64_t N = 5, T = 9, E = 6, H = 7;
    auto run = [&](const std::string& precision) {
        Graph g(builtin_ops());
        const ValueRef x = g.parameter("x", {DType::f32, {N, T, E}});
        const ValueRef w_ih = g.parameter("w_ih", {DType::f32, {4 * H, E}});
        const ValueRef w_hh = g.parameter("w_hh", {DType::f32, {4 * H, H}});
        const ValueRef b = g.parameter("b", {DType::f32, {4 * H}});
        const ValueRef y = g.add("lstm", "lstm", {x, w_ih, w_hh, b}, {{"units", H}, {"precision", precision}});
        const ValueRef loss = g.add("loss", "sum", {g.add("sq", "square", {y})});
        Executor ex(g);
        std::mt19937 rng(7);
        std::uniform_real_distribution<float> u(-0.5f, 0.5f);
        for (int p : g.parameters()) {
            Tensor t(g.node(p).outputs[0]);
            for (float& v : t.floats()) v = u(rng);
            ex.set(p, t);
        }
        ex.forward();
        ex.backward(loss);
        std::vector<Tensor> out{ex.value(y).clone()};
        for (int p : g.parameters()) out.push_back(ex.grad(p).clone());
        return out;
    };
    {
        Graph g(builtin_ops());
        const ValueRef x = g.input("x", {DType::f32, {kAnyDim, T, E}});
        CHECK_THROWS_WITH(lstm_layer(g, "l", x, H, false, std::nullopt, "", "fp8"), Catch::Matchers::Contains("precision must be f32 or bf16, got 'fp8'"));
    }
    if (!lstm_bf16_supported()) {
        // Without AVX-512 there is no bfloat16 LSTM: a clear error, not oneDNN's.
        WARN("this CPU has no bfloat16 LSTM in oneDNN 2.6 (it needs AVX-512): only the error is checked");
        CHECK_THROWS_WITH(run("bf16"), Catch::Matchers::Contains("precision bf16 needs a CPU with AVX-512") && Catch::Matchers::Contains("use precision f32"));
        return;
    }
    const auto f32 = run("f32"), bf16 = run("bf16");
    for (std::size_t k = 0; k < f32.size(); ++k) {
        float scale = 0, worst = 0;
        for (std::int64_t j = 0; j < f32[k].numel(); ++j) {
            scale = std::max(scale, std::abs(f32[k].f32()[j]));
            worst = std::max(worst, std::abs(f32[k].f32()[j] - bf16[k].f32()[j]));
        }
        CHECK(worst > 0);                 // it really ran in bfloat16
        CHECK(worst <= 0.03f * scale);    // bfloat16 keeps 8 bits of mantissa
    }
}
