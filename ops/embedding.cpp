// embedding: look up rows of a table by token id, as nn.Embedding.
//   ids: (N, T) i32 or i64 (any rank), weight: (V, E) -> y: (N, T, E)
//   y[n, t] = weight[ids[n, t]]
//   dweight[v] += sum over positions where ids == v of dy[n, t]   (scatter-add)
// No gradient for the ids. An id outside [0, V) is an error naming the id and
// its position, checked before anything is read. oneDNN has no gather
// primitive: plain loops, rows in parallel (each row writes its own output).
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ops/builtin.hpp"

namespace graphrun {
namespace {

std::string position(const Shape& shape, std::int64_t flat) {
    Shape index(shape.size());
    for (std::size_t d = shape.size(); d-- > 0;) {
        index[d] = flat % shape[d];
        flat /= shape[d];
    }
    return fmt::format("({})", fmt::join(index, ", "));
}

template <class Id>
void check_ids(const Id* ids, const Shape& shape, std::int64_t vocab) {
    const std::int64_t count = element_count(shape);
    for (std::int64_t j = 0; j < count; ++j)
        if (ids[j] < 0 || ids[j] >= vocab)
            throw Error(fmt::format("token id {} at position {} is outside the vocabulary [0, {})", static_cast<std::int64_t>(ids[j]),
                                    position(shape, j), vocab));
}

std::int64_t id_at(const Tensor& ids, std::int64_t j) { return ids.dtype() == DType::i32 ? ids.i32()[j] : ids.i64()[j]; }

class Embedding final : public Op {
public:
    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        if (in[0].dtype == DType::f32) throw ShapeError(fmt::format("embedding expects integer token ids (i32 or i64), got {}", to_string(in[0])));
        expect_dtype("weight", in[1], DType::f32);
        expect_rank("weight (V, E)", in[1], 2);
        Shape out = in[0].shape;
        out.push_back(in[1].shape[1]);
        return {TensorType{DType::f32, out}};
    }

    void forward(const ForwardArgs& args) const override {
        const Tensor &ids = args.inputs[0], &weight = args.inputs[1];
        const std::int64_t vocab = weight.dim(0), dim = weight.dim(1), count = ids.numel();
        if (ids.dtype() == DType::i32) check_ids(ids.i32(), ids.shape(), vocab);
        else check_ids(ids.i64(), ids.shape(), vocab);
        const float* table = weight.f32();
        float* y = args.outputs[0].f32();
        // Serial: a row copy is a few hundred bytes, and the whole lookup (2.7 MB
        // for the Siamese batch) is well under 1% of a step; tasks would cost more.
        for (std::int64_t j = 0; j < count; ++j)
            std::memcpy(y + j * dim, table + id_at(ids, j) * dim, static_cast<std::size_t>(dim) * sizeof(float));
    }

    void backward(const BackwardArgs& args) const override {
        Tensor* dweight = args.input_grads[1];
        if (!dweight) return;
        const Tensor& ids = args.inputs[0];
        const std::int64_t dim = dweight->dim(1), count = ids.numel();
        const float* dy = args.output_grads[0].f32();
        float* dw = dweight->f32();
        // Serial: two positions with the same id add into the same row.
        for (std::int64_t j = 0; j < count; ++j) {
            float* row = dw + id_at(ids, j) * dim;
            const float* g = dy + j * dim;
            for (std::int64_t e = 0; e < dim; ++e) row[e] += g[e];
        }
    }
};

}  // namespace

void register_embedding(OpRegistry& registry) {
    registry.add({.name = "embedding",
                  .summary = "rows of a (V, E) table by token id: (N, T) -> (N, T, E)",
                  .min_inputs = 2,
                  .max_inputs = 2,
                  .attrs = {},
                  .make = [](const Attrs&) { return std::make_unique<Embedding>(); }});
}

}  // namespace graphrun
