// sequence_lengths: the true length of each padded id sequence, for `lstm`'s
// optional `lengths` input. Padding is id 0 after the real tokens.
//   ids: (N, T) i32 or i64 -> lengths: (N), the same dtype
//   lengths[n] = 1 + (the last t with ids[n, t] != 0), or 0 for an all-padding row
// A 0 inside a sequence (before its last non-zero id) counts as a token: only
// trailing zeros are padding. No gradient: the output is integer.
#include <fmt/format.h>

#include "ops/builtin.hpp"

namespace graphrun {
namespace {

template <class Id>
void lengths_of(const Id* ids, std::int64_t N, std::int64_t T, Id* lengths) {
    for (std::int64_t n = 0; n < N; ++n) {
        const Id* row = ids + n * T;
        std::int64_t length = T;
        while (length > 0 && row[length - 1] == 0) --length;
        lengths[n] = static_cast<Id>(length);
    }
}

class SequenceLengths final : public Op {
public:
    // ids (N, T) integer -> (N) of the same dtype.
    std::vector<TensorType> infer(std::span<const TensorType> in) const override {
        const TensorType& ids = in[0];
        if (ids.dtype != DType::i32 && ids.dtype != DType::i64)
            throw ShapeError(fmt::format("sequence_lengths expects integer token ids (N, T) of i32 or i64, got {}", to_string(ids)));
        if (ids.shape.size() != 2)
            throw ShapeError(fmt::format("sequence_lengths expects token ids of rank 2 (N, T), got {}", to_string(ids)));
        return {TensorType{ids.dtype, {ids.shape[0]}}};
    }

    void forward(const ForwardArgs& args) const override {
        const Tensor& ids = args.inputs[0];
        Tensor& lengths = args.outputs[0];
        const std::int64_t N = ids.dim(0), T = ids.dim(1);
        if (ids.dtype() == DType::i32) lengths_of(ids.i32(), N, T, lengths.i32());
        else lengths_of(ids.i64(), N, T, lengths.i64());
    }

    // Integer in, integer out: nothing to differentiate.
    void backward(const BackwardArgs&) const override {}
};

}  // namespace

void register_sequence_lengths(OpRegistry& registry) {
    registry.add({.name = "sequence_lengths",
                  .summary = "lengths of id sequences padded with trailing 0s: (N, T) int -> (N) int",
                  .min_inputs = 1,
                  .max_inputs = 1,
                  .attrs = {},
                  .make = [](const Attrs&) { return std::make_unique<SequenceLengths>(); }});
}

}  // namespace graphrun
