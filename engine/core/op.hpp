// The interface every op implements, in one file per op under ops/:
// its attributes (schema), its shape rule, its forward and its backward.
//
// An Op object is immutable once built from its attributes, so one graph can be
// run by several executors. What a node keeps between forward and backward
// (saved activations, oneDNN workspaces, cached primitives) lives in an OpState
// that the executor owns, one per node.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/core/attrs.hpp"
#include "graphrun/error.hpp"
#include "graphrun/tensor.hpp"

namespace graphrun {

// Thrown by a shape rule; the graph adds the node's name and op to the message.
class ShapeError : public Error {
public:
    using Error::Error;
};

struct OpState {
    virtual ~OpState() = default;
    // Bytes it holds (workspaces, scratchpads, cached buffers), for the plan's memory report.
    virtual std::int64_t bytes() const { return 0; }
};

struct ForwardArgs {
    std::span<const Tensor> inputs;
    std::span<Tensor> outputs;  // allocated by the executor with the inferred shapes
    OpState* state;             // what make_state() returned, or nullptr
    bool training = true;       // false: no backward follows (keep nothing for it)
    // The seed of this node's random draws in this forward (dropout's masks):
    // the executor mixes its draw seed and step with the node's name, so each
    // node and step draws its own and a repeat of the run draws the same.
    std::uint64_t draw_seed = 0;
    // The batch's first row among all the ranks' rows (MPI): an op drawing per
    // row draws for row first_row + n, so N ranks draw as one process does.
    std::int64_t first_row = 0;
};

struct BackwardArgs {
    std::span<const Tensor> inputs;
    std::span<const Tensor> outputs;
    std::span<const Tensor> output_grads;  // one per output, same shape; zeros where nothing flowed back
    std::span<Tensor* const> input_grads;  // one per input; nullptr where no gradient is wanted
    OpState* state;
};

class Op {
public:
    virtual ~Op() = default;
    // Output types from input types. Dimensions may be kAnyDim (the batch at
    // build time); a rule must accept kAnyDim wherever a size is compared.
    virtual std::vector<TensorType> infer(std::span<const TensorType> inputs) const = 0;
    virtual std::unique_ptr<OpState> make_state() const { return nullptr; }
    virtual void forward(const ForwardArgs& args) const = 0;
    // Adds (never assigns) into every non-null input gradient.
    virtual void backward(const BackwardArgs& args) const = 0;

    // Floating-point operations of one forward and one backward call on inputs
    // of these (concrete) types, for the profile's GFLOP/s; 0 when the op does
    // not say (cheap element-wise ops).
    virtual double forward_flops(std::span<const TensorType> /*inputs*/) const { return 0; }
    virtual double backward_flops(std::span<const TensorType> inputs) const { return 2 * forward_flops(inputs); }
};

struct OpDef {
    std::string name;
    std::string summary;  // one line, shown in listings
    std::size_t min_inputs = 0;
    std::size_t max_inputs = 0;
    std::vector<AttrSpec> attrs;
    std::function<std::unique_ptr<Op>(const Attrs&)> make;  // attrs already validated
};

class OpRegistry {
public:
    void add(OpDef def);
    const OpDef* find(const std::string& name) const;  // nullptr when unknown
    std::vector<std::string> names() const;

private:
    std::vector<OpDef> defs_;
};

// Shape-rule helpers. Two dims agree when equal or when either is kAnyDim.
inline bool dims_agree(std::int64_t a, std::int64_t b) { return a == b || a == kAnyDim || b == kAnyDim; }
bool shapes_agree(const Shape& a, const Shape& b);
void expect_rank(const char* what, const TensorType& t, std::size_t rank);
void expect_dtype(const char* what, const TensorType& t, DType dtype);

}  // namespace graphrun
