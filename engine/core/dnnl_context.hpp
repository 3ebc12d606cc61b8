// The oneDNN engine and streams graphrun runs its primitives on, and small
// helpers to view a Tensor as oneDNN memory without copying.
#pragma once

#include <cstdint>

#include <dnnl.hpp>

#include "graphrun/tensor.hpp"

namespace graphrun {

dnnl::engine& cpu_engine();
// One stream per thread: a oneDNN stream must not be shared between threads
// that submit at the same time.
dnnl::stream& cpu_stream();

// Every oneDNN primitive graphrun creates goes through here, so a test can
// count them: a compiled plan creates its primitives once, on its first step.
void note_primitive_created();
template <class Primitive, class PrimitiveDesc>
Primitive make_primitive(const PrimitiveDesc& pd) {
    note_primitive_created();
    return Primitive(pd);
}
std::int64_t primitives_created();  // in this process so far

dnnl::memory::dims to_dims(const Shape& shape);
// A memory object over the tensor's own storage, in plain row-major layout
// (or `tag` when given).
dnnl::memory as_memory(const Tensor& tensor, dnnl::memory::format_tag tag = dnnl::memory::format_tag::undef);
dnnl::memory::format_tag plain_tag(std::size_t rank);

}  // namespace graphrun
