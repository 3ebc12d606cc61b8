#include "tests/tensors.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "engine/core/executor.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/initializer.hpp"
#include "ops/builtin.hpp"

namespace graphrun::testing {

Tensor int_tensor(DType dtype, Shape shape, const std::vector<std::int64_t>& values) {
    Tensor t(std::move(shape), dtype);
    if (static_cast<std::int64_t>(values.size()) != t.numel())
        throw std::invalid_argument(fmt::format("int_tensor: {} values for a tensor of {}", values.size(), t.numel()));
    for (std::size_t j = 0; j < values.size(); ++j) {
        if (dtype == DType::i32) t.i32()[j] = static_cast<std::int32_t>(values[j]);
        else t.i64()[j] = values[j];
    }
    return t;
}

std::int64_t int_at(const Tensor& t, std::int64_t j) { return t.dtype() == DType::i32 ? t.i32()[j] : t.i64()[j]; }

Tensor row_of(const Tensor& t, std::int64_t n) {
    Shape shape = t.shape();
    shape[0] = 1;
    Tensor out(shape, t.dtype());
    const auto* from = static_cast<const std::byte*>(t.raw()) + static_cast<std::size_t>(n) * out.bytes();
    std::memcpy(out.raw(), from, out.bytes());
    return out;
}

Tensor steps_of(const Tensor& t, std::int64_t n, std::int64_t begin, std::int64_t end) {
    Shape shape = t.shape();
    const std::int64_t inner = t.numel() / (shape[0] * shape[1]);
    shape[0] = 1;
    shape[1] = end - begin;
    Tensor out(shape, t.dtype());
    const std::size_t element = dtype_size(t.dtype());
    const auto* from = static_cast<const std::byte*>(t.raw()) + static_cast<std::size_t>((n * t.dim(1) + begin) * inner) * element;
    std::memcpy(out.raw(), from, static_cast<std::size_t>(out.numel()) * element);
    return out;
}

Tensor run_op(const std::string& op, const std::vector<Tensor>& inputs, const Attrs& attrs) {
    Graph g(builtin_ops());
    std::vector<ValueRef> refs;
    for (std::size_t k = 0; k < inputs.size(); ++k) refs.push_back(g.input(fmt::format("in{}", k), inputs[k].type()));
    const ValueRef y = g.add("y", op, refs, attrs);
    Executor ex(g);
    for (std::size_t k = 0; k < inputs.size(); ++k) ex.set(refs[k].node, inputs[k].clone());
    ex.forward();
    return ex.value(y).clone();
}

std::vector<float> embed_padded(const std::string& nodes, std::int64_t T, const std::vector<std::int32_t>& tokens) {
    const std::string yaml = fmt::format(R"(inputs:
  - {{name: ids, shape: [{}], dtype: int32}}
nodes:
  - {{name: embedding, op: embedding, inputs: [ids], vocab: 20, dim: 5}}
{}
  - {{name: loss, op: sum, inputs: [out]}}
outputs: [out]
loss: loss
)",
                                         T, nodes);
    const auto built = build_graph(spec::load_spec_string(yaml, "padding"), builtin_ops());
    Executor ex(built.graph);
    initialize_parameters(ex, 11);
    Tensor ids({1, T}, DType::i32);
    ids.zero();
    std::copy(tokens.begin(), tokens.end(), ids.i32());
    ex.set("ids", ids);
    ex.forward();
    const auto values = ex.value(built.outputs.at(0).second).floats();
    return {values.begin(), values.end()};
}

}  // namespace graphrun::testing
