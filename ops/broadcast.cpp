#include "ops/broadcast.hpp"

#include <fmt/format.h>

#include "engine/core/dnnl_context.hpp"

namespace graphrun {

namespace {
// `shape` left-padded with 1s to `rank` dimensions.
Shape padded(const Shape& shape, std::size_t rank) {
    Shape out(rank - shape.size(), 1);
    out.insert(out.end(), shape.begin(), shape.end());
    return out;
}
}  // namespace

Shape broadcast_shapes(const Shape& a, const Shape& b) {
    const std::size_t rank = std::max(a.size(), b.size());
    const Shape pa = padded(a, rank), pb = padded(b, rank);
    Shape out(rank);
    for (std::size_t d = 0; d < rank; ++d) {
        if (pa[d] == pb[d] || pb[d] == 1) out[d] = pa[d];
        else if (pa[d] == 1) out[d] = pb[d];
        else if (pa[d] == kAnyDim || pb[d] == kAnyDim) out[d] = pa[d] == kAnyDim ? pb[d] : pa[d];
        else throw ShapeError(fmt::format("shapes {} and {} do not broadcast", to_string(a), to_string(b)));
    }
    if (pa != out && pb != out)
        throw ShapeError(fmt::format("shapes {} and {} both need broadcasting to {}; one input must have the result's shape",
                                     to_string(a), to_string(b), to_string(out)));
    return out;
}

BroadcastIndex::BroadcastIndex(const Shape& a, const Shape& b, const Shape& out)
    : out_(out), stride_a_(out.size(), 0), stride_b_(out.size(), 0) {
    const Shape pa = padded(a, out.size()), pb = padded(b, out.size());
    std::int64_t sa = 1, sb = 1;
    for (std::size_t d = out.size(); d-- > 0;) {
        stride_a_[d] = pa[d] == 1 ? 0 : sa;
        stride_b_[d] = pb[d] == 1 ? 0 : sb;
        sa *= pa[d];
        sb *= pb[d];
    }
}

void BinaryPrimitive::run(const Tensor& a, const Tensor& b, Tensor& out) {
    using dt = dnnl::memory::data_type;
    if (!primitive_ || a.shape() != a_shape_ || b.shape() != b_shape_) {
        a_shape_ = a.shape();
        b_shape_ = b.shape();
        // oneDNN wants equal ranks (a scalar is rank 1) and broadcasts only its second source.
        const std::size_t rank = std::max<std::size_t>(1, out.rank());
        const Shape pa = padded(a.shape(), rank), pb = padded(b.shape(), rank), po = padded(out.shape(), rank);
        swapped_ = pa != po;  // then b has the result's shape (broadcast_shapes made sure)
        dnnl::post_ops post;
        // a - b = -(b - a): with the sources swapped, negate the result.
        if (swapped_ && algorithm_ == dnnl::algorithm::binary_sub) post.append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, -1.0f, 0.0f);
        dnnl::primitive_attr attr;
        attr.set_post_ops(post);
        src0_ = dnnl::memory::desc(to_dims(swapped_ ? pb : pa), dt::f32, plain_tag(rank));
        src1_ = dnnl::memory::desc(to_dims(swapped_ ? pa : pb), dt::f32, plain_tag(rank));
        dst_ = dnnl::memory::desc(to_dims(po), dt::f32, plain_tag(rank));
        dnnl::binary::desc desc(algorithm_, src0_, src1_, dst_);
        primitive_ = make_primitive<dnnl::binary>(dnnl::binary::primitive_desc(desc, attr, cpu_engine()));
    }
    auto& engine = cpu_engine();
    dnnl::memory m0(src0_, engine, const_cast<void*>(swapped_ ? b.raw() : a.raw()));
    dnnl::memory m1(src1_, engine, const_cast<void*>(swapped_ ? a.raw() : b.raw()));
    dnnl::memory md(dst_, engine, out.raw());
    primitive_.execute(cpu_stream(), {{DNNL_ARG_SRC_0, m0}, {DNNL_ARG_SRC_1, m1}, {DNNL_ARG_DST, md}});
    cpu_stream().wait();
}

}  // namespace graphrun
