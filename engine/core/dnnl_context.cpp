#include "engine/core/dnnl_context.hpp"

#include <atomic>

#include "graphrun/error.hpp"

namespace graphrun {

dnnl::engine& cpu_engine() {
    static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    return engine;
}

dnnl::stream& cpu_stream() {
    thread_local dnnl::stream stream(cpu_engine());
    return stream;
}

namespace {
std::atomic<std::int64_t> primitive_count{0};
}  // namespace

void note_primitive_created() { primitive_count.fetch_add(1, std::memory_order_relaxed); }
std::int64_t primitives_created() { return primitive_count.load(std::memory_order_relaxed); }

dnnl::memory::dims to_dims(const Shape& shape) { return dnnl::memory::dims(shape.begin(), shape.end()); }

dnnl::memory::format_tag plain_tag(std::size_t rank) {
    using tag = dnnl::memory::format_tag;
    switch (rank) {
        case 1: return tag::a;
        case 2: return tag::ab;
        case 3: return tag::abc;
        case 4: return tag::abcd;
        case 5: return tag::abcde;
        default: throw Error("oneDNN memory of rank " + std::to_string(rank) + " is not supported");
    }
}

dnnl::memory as_memory(const Tensor& tensor, dnnl::memory::format_tag tag) {
    using dt = dnnl::memory::data_type;
    dt type = tensor.dtype() == DType::f32 ? dt::f32 : tensor.dtype() == DType::i32 ? dt::s32 : dt::undef;
    if (type == dt::undef) throw Error("oneDNN has no int64 memory");
    Shape shape = tensor.shape();
    if (shape.empty()) shape = {1};  // a scalar is a one-element vector to oneDNN
    if (tag == dnnl::memory::format_tag::undef) tag = plain_tag(shape.size());
    dnnl::memory::desc desc(to_dims(shape), type, tag);
    return dnnl::memory(desc, cpu_engine(), const_cast<void*>(tensor.raw()));
}

}  // namespace graphrun
