// The oneDNN LSTM and GRU behind `lstm`, `lstm_cell` and `gru`; see ops/rnn_dnnl.hpp.
//
// Per shape (build): descriptors in our layouts -> forward_training and
// backward primitive descriptors (weights as format_tag::any, the forward one
// the hint for backward) -> primitives, reorders and buffers -> one scratchpad
// sized for the largest user. Per call: point the views at the caller's
// tensors, reorder the weights when the primitive wants another layout, run.
#include "ops/rnn_dnnl.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "engine/core/accumulate.hpp"
#include "engine/core/dnnl_context.hpp"
#include "graphrun/error.hpp"

namespace graphrun {
namespace {

using dnnl::memory;
using tag = memory::format_tag;

memory::desc f32_desc(const memory::dims& dims, tag format) { return {dims, memory::data_type::f32, format}; }
memory::desc any_desc(const memory::dims& dims) { return f32_desc(dims, tag::any); }

// oneDNN takes non-const handles; it only reads sources.
void* handle(const float* p) { return const_cast<float*>(p); }

void run(const dnnl::primitive& prim, const std::unordered_map<int, memory>& args) {
    auto& stream = cpu_stream();
    prim.execute(stream, args);
    stream.wait();
}


void zero(const memory& m) { std::memset(m.get_data_handle(), 0, m.get_desc().get_size()); }

// oneDNN 2.6 has bfloat16 RNN kernels for AVX-512 CPUs only; elsewhere it
// finds no implementation and says only "could not create a primitive descriptor".
constexpr const char* kNoBf16 =
    "lstm: precision bf16 needs a CPU with AVX-512 (oneDNN 2.6 has no bfloat16 LSTM for this one); use precision f32";

// A primitive descriptor, or in bf16 kNoBf16 where oneDNN has no implementation.
template <typename PrimitiveDesc, typename... Args>
PrimitiveDesc describe_or_explain(bool bf16, const Args&... args) {
    try {
        return PrimitiveDesc(args...);
    } catch (const dnnl::error&) {
        if (!bf16) throw;
        throw Error(kNoBf16);
    }
}

}  // namespace

bool lstm_bf16_supported() {
    static const bool supported = [] {
        RnnState probe;
        const std::int64_t N = 1, T = 1, E = 1, H = 1;
        std::vector<float> x(1), w(4), y(1);
        try {
            probe.forward({N, T, E, H, false, true}, {.x = x.data(), .w_ih = w.data(), .w_hh = w.data(), .bias = w.data(), .y = y.data()});
        } catch (const Error&) {
            return false;
        }
        return true;
    }();
    return supported;
}

void expect_lstm_weights(const char* op, std::span<const TensorType> w, std::int64_t E, std::int64_t H) {
    if (H <= 0) throw ShapeError(fmt::format("{} expects units > 0, got {}", op, H));
    expect_dtype("weight_ih", w[0], DType::f32);
    expect_dtype("weight_hh", w[1], DType::f32);
    expect_dtype("bias", w[2], DType::f32);
    const Shape& ih = w[0].shape;
    const Shape& hh = w[1].shape;
    const Shape& b = w[2].shape;
    if (ih.size() != 2 || !dims_agree(ih[0], 4 * H) || !dims_agree(ih[1], E))
        throw ShapeError(fmt::format("{} expects weight_ih (4*units={}, E={}), got {}", op, 4 * H, E, to_string(ih)));
    if (hh.size() != 2 || !dims_agree(hh[0], 4 * H) || !dims_agree(hh[1], H))
        throw ShapeError(fmt::format("{} expects weight_hh (4*units={}, units={}), got {}", op, 4 * H, H, to_string(hh)));
    if (b.size() != 1 || !dims_agree(b[0], 4 * H))
        throw ShapeError(fmt::format("{} expects bias (4*units={}), got {}", op, 4 * H, to_string(b)));
}

std::int64_t RnnState::bytes() const {
    std::size_t total = 0;
    for (const Tensor* t : {&zeros_nh_, &zeros_nth_, &y_own_, &h_last_own_, &c_last_own_, &dx_own_, &dh0_own_, &dc0_own_, &scratchpad_})
        if (t->defined()) total += t->bytes();
    for (const dnnl::memory* m : {&workspace_, &dw_ih_, &dw_hh_, &dbias_})
        if (*m) total += m->get_desc().get_size();
    for (const auto* copies : {&fwd_weights_, &bwd_weights_, &to_low_})
        for (const Copy& c : *copies) total += c.args.at(DNNL_ARG_TO).get_desc().get_size();
    return static_cast<std::int64_t>(total);
}

RnnState::Copy RnnState::make_copy(const memory& from, const memory& to, bool add) {
    dnnl::primitive_attr attr = attr_;
    if (add) {
        dnnl::post_ops ops;
        ops.append_sum(1.0f);
        attr.set_post_ops(ops);
    }
    dnnl::reorder::primitive_desc pd(cpu_engine(), from.get_desc(), cpu_engine(), to.get_desc(), attr);
    return {make_primitive<dnnl::reorder>(pd), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}, pd.scratchpad_desc()};
}

memory RnnState::adopt(const memory& user, const memory::desc& want, std::vector<Copy>& copies) {
    // Compare whole descriptors, not tags: oneDNN pads the weights' leading
    // dimension (backward's ldgoi for E = 4 has stride 16, not 4), so a layout
    // with the user's tag can still need a reorder.
    if (user.get_desc() == want) return user;
    memory own(want, cpu_engine());
    copies.push_back(make_copy(user, own, false));
    return own;
}

void RnnState::describe(const RnnSizes& s, const memory::desc& x, const memory::desc& x_diff, const memory::desc& y,
                        const memory::desc& y_diff, const memory::desc& h, const memory::desc& state) {
    auto& eng = cpu_engine();
    const memory::dim E = s.E, H = s.H, G = s.cell == RnnCell::lstm ? 4 : 3;
    const memory::dims w_ih_dims{1, 1, E, G, H}, w_hh_dims{1, 1, H, G, H}, bias_dims{1, 1, 4, H};
    const auto low = memory::data_type::bf16;
    const auto weights_any = [&](const memory::dims& d) { return s.bf16 ? memory::desc(d, low, tag::any) : any_desc(d); };
    const auto w_ih = weights_any(w_ih_dims), w_hh = weights_any(w_hh_dims), bias = any_desc(bias_dims);
    const auto dw_ih = any_desc(w_ih_dims), dw_hh = any_desc(w_hh_dims);
    const auto dir = dnnl::rnn_direction::unidirectional_left2right;
    const auto prop = s.training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
    const auto backward = dnnl::prop_kind::backward;
    if (s.cell == RnnCell::lstm) {
        dnnl::lstm_forward::desc fwd_desc(prop, dir, x, h, state, w_ih, w_hh, bias, y, h, state);
        const auto fwd_pd = describe_or_explain<dnnl::lstm_forward::primitive_desc>(s.bf16, fwd_desc, attr_, eng);
        fwd_pd_ = fwd_pd;
        fwd_ = make_primitive<dnnl::lstm_forward>(fwd_pd);
        if (!s.training) return;
        dnnl::lstm_backward::desc bwd_desc(backward, dir, x, h, state, w_ih, w_hh, bias, y, h, state,  //
                                           x_diff, state, state, dw_ih, dw_hh, bias, y_diff, state, state);
        const auto bwd_pd = describe_or_explain<dnnl::lstm_backward::primitive_desc>(s.bf16, bwd_desc, attr_, eng, fwd_pd);
        bwd_pd_ = bwd_pd;
        bwd_ = make_primitive<dnnl::lstm_backward>(bwd_pd);
        return;
    }
    dnnl::lbr_gru_forward::desc fwd_desc(prop, dir, x, h, w_ih, w_hh, bias, y, h);
    const dnnl::lbr_gru_forward::primitive_desc fwd_pd(fwd_desc, attr_, eng);
    fwd_pd_ = fwd_pd;
    fwd_ = make_primitive<dnnl::lbr_gru_forward>(fwd_pd);
    if (!s.training) return;
    dnnl::lbr_gru_backward::desc bwd_desc(backward, dir, x, h, w_ih, w_hh, bias, y, h,  //
                                          x_diff, state, dw_ih, dw_hh, bias, y_diff, state);
    const dnnl::lbr_gru_backward::primitive_desc bwd_pd(bwd_desc, attr_, eng, fwd_pd);
    bwd_pd_ = bwd_pd;
    bwd_ = make_primitive<dnnl::lbr_gru_backward>(bwd_pd);
}

void RnnState::build(const RnnSizes& s) {
    built_ = false;
    forward_done_ = false;
    auto& eng = cpu_engine();
    const memory::dim N = s.N, T = s.T, E = s.E, H = s.H, G = s.cell == RnnCell::lstm ? 4 : 3;
    const bool lstm = s.cell == RnnCell::lstm;

    // Describe the caller's tensors: batch-first sequences, (N, H) states,
    // PyTorch's (G*H, E) weights, which are ldgoi with L = D = 1.
    const auto x_md = f32_desc({T, N, E}, tag::ntc);
    const auto y_md = f32_desc({T, N, H}, tag::ntc);
    const auto state_md = f32_desc({1, 1, N, H}, tag::ldnc);
    const auto w_ih_md = f32_desc({1, 1, E, G, H}, tag::ldgoi);
    const auto w_hh_md = f32_desc({1, 1, H, G, H}, tag::ldgoi);
    const auto bias_md = f32_desc({1, 1, 4, H}, tag::ldgo);

    // Create the primitive descriptors; the weights' layouts are the primitives' choice.
    attr_ = dnnl::primitive_attr();
    attr_.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    // In bf16 the primitive reads and writes x, y and h as bfloat16 (oneDNN 2.6
    // then takes its brgemm kernels, ~3x faster than its f32 path here); the
    // cell state, the bias and every gradient stay float32.
    const auto low = memory::data_type::bf16;
    const auto x_prim = s.bf16 ? memory::desc({T, N, E}, low, tag::ntc) : x_md;
    const auto y_prim = s.bf16 ? memory::desc({T, N, H}, low, tag::ntc) : y_md;
    const auto h_prim = s.bf16 ? memory::desc({1, 1, N, H}, low, tag::ldnc) : state_md;
    describe(s, x_prim, x_md, y_prim, y_md, h_prim, state_md);
    fwd_weights_.clear();
    bwd_weights_.clear();
    grad_adds_.clear();
    to_low_.clear();
    from_low_.clear();

    // Create views of the caller's tensors, without storage until each call.
    x_ = memory(x_md, eng, nullptr);
    h0_ = memory(state_md, eng, nullptr);
    c0_ = lstm ? memory(state_md, eng, nullptr) : memory();
    w_ih_ = memory(w_ih_md, eng, nullptr);
    w_hh_ = memory(w_hh_md, eng, nullptr);
    bias_ = memory(bias_md, eng, nullptr);
    y_ = memory(y_md, eng, nullptr);
    h_last_ = memory(state_md, eng, nullptr);
    c_last_ = lstm ? memory(state_md, eng, nullptr) : memory();

    // Allocate our buffers in graphrun's layouts (zero-filled: the zeros stay zero,
    // oneDNN never writes a source or a diff_dst).
    zeros_nh_ = Tensor(Shape{N * H});
    y_own_ = Tensor(Shape{N * T * H});
    h_last_own_ = Tensor(Shape{N * H});
    c_last_own_ = lstm ? Tensor(Shape{N * H}) : Tensor();
    // Reorder the weights only where the primitive's layout differs from PyTorch's.
    const auto fwd_w_ih = adopt(w_ih_, fwd_pd_.weights_layer_desc(), fwd_weights_);
    const auto fwd_w_hh = adopt(w_hh_, fwd_pd_.weights_iter_desc(), fwd_weights_);
    const auto fwd_bias = adopt(bias_, fwd_pd_.bias_desc(), fwd_weights_);
    // The primitive's x, h0 (converted in before each forward) and y, h_last
    // (converted out after it): the caller's own memory in f32, ours in bf16.
    const auto x_p = adopt(x_, x_prim, to_low_), h0_p = adopt(h0_, h_prim, to_low_);
    const auto y_p = s.bf16 ? memory(y_prim, eng) : y_, h_last_p = s.bf16 ? memory(h_prim, eng) : h_last_;
    if (s.bf16) {
        from_low_.push_back(make_copy(y_p, y_, false));
        from_low_.push_back(make_copy(h_last_p, h_last_, false));
    }
    fwd_args_ = {{DNNL_ARG_SRC_LAYER, x_p},          {DNNL_ARG_SRC_ITER, h0_p},         {DNNL_ARG_WEIGHTS_LAYER, fwd_w_ih},
                 {DNNL_ARG_WEIGHTS_ITER, fwd_w_hh}, {DNNL_ARG_BIAS, fwd_bias},          {DNNL_ARG_DST_LAYER, y_p},
                 {DNNL_ARG_DST_ITER, h_last_p}};
    if (lstm) {
        fwd_args_[DNNL_ARG_SRC_ITER_C] = c0_;
        fwd_args_[DNNL_ARG_DST_ITER_C] = c_last_;
    }
    if (!s.training) {
        workspace_ = memory();
        finish_build(s);
        return;
    }

    dy_ = memory(y_md, eng, nullptr);
    dh_last_ = memory(state_md, eng, nullptr);
    dc_last_ = lstm ? memory(state_md, eng, nullptr) : memory();
    dw_ih_user_ = memory(w_ih_md, eng, nullptr);
    dw_hh_user_ = memory(w_hh_md, eng, nullptr);
    dbias_user_ = memory(bias_md, eng, nullptr);

    zeros_nth_ = Tensor(Shape{N * T * H});
    dx_own_ = Tensor(Shape{N * T * E});
    dh0_own_ = Tensor(Shape{N * H});
    dc0_own_ = lstm ? Tensor(Shape{N * H}) : Tensor();
    const auto dx = memory(x_md, eng, dx_own_.raw());
    const auto dh0 = memory(state_md, eng, dh0_own_.raw());

    const auto bwd_w_ih = adopt(w_ih_, bwd_pd_.weights_layer_desc(), bwd_weights_);
    const auto bwd_w_hh = adopt(w_hh_, bwd_pd_.weights_iter_desc(), bwd_weights_);
    const auto bwd_bias = adopt(bias_, bwd_pd_.bias_desc(), bwd_weights_);

    // Allocate the workspace and the diff weights in the layouts oneDNN chose,
    // and the reorders that add those into the caller's gradients.
    workspace_ = memory(fwd_pd_.workspace_desc(), eng);
    dw_ih_ = memory(bwd_pd_.diff_weights_layer_desc(), eng);
    dw_hh_ = memory(bwd_pd_.diff_weights_iter_desc(), eng);
    dbias_ = memory(bwd_pd_.diff_bias_desc(), eng);
    grad_adds_.push_back(make_copy(dw_ih_, dw_ih_user_, true));
    grad_adds_.push_back(make_copy(dw_hh_, dw_hh_user_, true));
    grad_adds_.push_back(make_copy(dbias_, dbias_user_, true));

    fwd_args_[DNNL_ARG_WORKSPACE] = workspace_;
    // The forward's bf16 copies of x, h0, y and h_last are still there (in f32, the caller's own).
    bwd_args_ = {{DNNL_ARG_SRC_LAYER, x_p},
                 {DNNL_ARG_SRC_ITER, h0_p},
                 {DNNL_ARG_WEIGHTS_LAYER, bwd_w_ih},
                 {DNNL_ARG_WEIGHTS_ITER, bwd_w_hh},
                 {DNNL_ARG_BIAS, bwd_bias},
                 {DNNL_ARG_DST_LAYER, y_p},
                 {DNNL_ARG_DST_ITER, h_last_p},
                 {DNNL_ARG_WORKSPACE, workspace_},
                 {DNNL_ARG_DIFF_SRC_LAYER, dx},
                 {DNNL_ARG_DIFF_SRC_ITER, dh0},
                 {DNNL_ARG_DIFF_WEIGHTS_LAYER, dw_ih_},
                 {DNNL_ARG_DIFF_WEIGHTS_ITER, dw_hh_},
                 {DNNL_ARG_DIFF_BIAS, dbias_},
                 {DNNL_ARG_DIFF_DST_LAYER, dy_},
                 {DNNL_ARG_DIFF_DST_ITER, dh_last_}};
    if (lstm) {
        bwd_args_[DNNL_ARG_SRC_ITER_C] = c0_;
        bwd_args_[DNNL_ARG_DST_ITER_C] = c_last_;
        bwd_args_[DNNL_ARG_DIFF_SRC_ITER_C] = memory(state_md, eng, dc0_own_.raw());
        bwd_args_[DNNL_ARG_DIFF_DST_ITER_C] = dc_last_;
    }

    finish_build(s);
}

void RnnState::finish_build(const RnnSizes& s) {
    // Allocate one scratchpad for every primitive: they run one at a time.
    auto& eng = cpu_engine();
    std::size_t bytes = fwd_pd_.scratchpad_desc().get_size();
    if (s.training) bytes = std::max(bytes, bwd_pd_.scratchpad_desc().get_size());
    for (const auto* copies : {&fwd_weights_, &bwd_weights_, &grad_adds_, &to_low_, &from_low_})
        for (const auto& c : *copies) bytes = std::max(bytes, c.scratchpad.get_size());
    scratchpad_ = Tensor(Shape{static_cast<std::int64_t>(bytes / sizeof(float) + 1)});
    fwd_args_[DNNL_ARG_SCRATCHPAD] = memory(fwd_pd_.scratchpad_desc(), eng, scratchpad_.raw());
    if (s.training) bwd_args_[DNNL_ARG_SCRATCHPAD] = memory(bwd_pd_.scratchpad_desc(), eng, scratchpad_.raw());
    for (auto* copies : {&fwd_weights_, &bwd_weights_, &grad_adds_, &to_low_, &from_low_})
        for (auto& c : *copies) c.args[DNNL_ARG_SCRATCHPAD] = memory(c.scratchpad, eng, scratchpad_.raw());
    sizes_ = s;
    built_ = true;
}

void RnnState::bind(const RnnForwardData& d) {
    x_.set_data_handle(handle(d.x));
    h0_.set_data_handle(d.h0 ? handle(d.h0) : zeros_nh_.raw());
    if (c0_) c0_.set_data_handle(d.c0 ? handle(d.c0) : zeros_nh_.raw());
    w_ih_.set_data_handle(handle(d.w_ih));
    w_hh_.set_data_handle(handle(d.w_hh));
    bias_.set_data_handle(handle(d.bias));
    y_.set_data_handle(d.y ? d.y : y_own_.raw());
    h_last_.set_data_handle(d.h_last ? d.h_last : h_last_own_.raw());
    if (c_last_) c_last_.set_data_handle(d.c_last ? d.c_last : c_last_own_.raw());
}

void RnnState::forward(const RnnSizes& sizes, const RnnForwardData& d) {
    if (sizes.N <= 0 || sizes.T <= 0 || sizes.E <= 0 || sizes.H <= 0)
        throw Error(fmt::format("{} needs a non-empty batch, sequence, input and hidden size", sizes.cell == RnnCell::lstm ? "lstm" : "gru"));
    if (!built_ || !(sizes == sizes_)) build(sizes);
    bind(d);
    for (const auto& c : fwd_weights_) run(c.prim, c.args);
    for (const auto& c : to_low_) run(c.prim, c.args);
    run(fwd_, fwd_args_);
    for (const auto& c : from_low_) run(c.prim, c.args);
    forward_done_ = sizes.training;
}

void RnnState::backward(const RnnForwardData& d, const RnnBackwardData& g) {
    if (!forward_done_)
        throw Error(fmt::format("{} backward needs a training forward of the same step first (its oneDNN workspace)",
                                sizes_.cell == RnnCell::lstm ? "lstm" : "gru"));
    bind(d);
    dy_.set_data_handle(g.dy ? handle(g.dy) : zeros_nth_.raw());
    dh_last_.set_data_handle(g.dh_last ? handle(g.dh_last) : zeros_nh_.raw());
    if (dc_last_) dc_last_.set_data_handle(g.dc_last ? handle(g.dc_last) : zeros_nh_.raw());
    for (const auto& c : bwd_weights_) run(c.prim, c.args);

    // oneDNN 2.6 adds into the diff weights (no overwrite flag yet): start from zero.
    zero(dw_ih_);
    zero(dw_hh_);
    zero(dbias_);
    run(bwd_, bwd_args_);

    // Add into the gradients that are wanted: the rest was computed for nothing,
    // as oneDNN has no switch to skip them.
    if (g.dx) add_into(g.dx, dx_own_);  // a null pointer: no gradient wanted
    if (g.dh0) add_into(g.dh0, dh0_own_);
    if (g.dc0) add_into(g.dc0, dc0_own_);
    float* const weight_grads[] = {g.dw_ih, g.dw_hh, g.dbias};
    const memory* user_views[] = {&dw_ih_user_, &dw_hh_user_, &dbias_user_};
    for (std::size_t k = 0; k < 3; ++k) {
        if (!weight_grads[k]) continue;
        user_views[k]->set_data_handle(weight_grads[k]);
        run(grad_adds_[k].prim, grad_adds_[k].args);
    }
}

}  // namespace graphrun
