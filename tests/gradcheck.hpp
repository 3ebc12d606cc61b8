// Checks an op's backward against central finite differences.
//
// The op is run alone in a graph whose float inputs are parameters. With a
// random weight w_k per output, the scalar L = sum_k <w_k, y_k> has gradient
// dL/dx = backward(seeds w_k); each element of it is compared with
// (L(x + h) - L(x - h)) / 2h, L accumulated in double.
#pragma once

#include <string>
#include <vector>

#include "engine/core/executor.hpp"

namespace graphrun::testing {

struct GradcheckOptions {
    double step = 5e-3;     // h
    double rtol = 1e-2;
    double atol = 1e-3;
    int max_elements = 200;  // per input; larger inputs are sampled at random positions
    unsigned seed = 1;
};

// Uniform floats in [lo, hi), repeatable from the seed.
Tensor random_tensor(const Shape& shape, unsigned seed, float lo = -1.0f, float hi = 1.0f);

// Runs the check and reports each mismatch as a Catch2 failure naming the
// input, the flat index, the analytic and the numeric value. Returns how many
// elements were compared, so a caller can REQUIRE it is not zero.
int check_op_gradients(const std::string& op_name, const std::vector<Tensor>& inputs, const Attrs& attrs = {},
                       const GradcheckOptions& options = {});

// Calls the op's forward and backward directly, twice: into zeroed input
// gradients, then into gradients that already hold random values, and fails
// unless the second adds exactly the first (Op::backward's contract: a value
// used several times gets each use's gradient added). check_op_gradients
// runs it for every op it checks.
void check_backward_adds(const Node& node, const std::vector<Tensor>& inputs, unsigned seed);

// Same, for a graph built by the caller: perturbs each listed parameter and
// compares with the executor's gradient of sum_k <w_k, outputs_k>.
int check_graph_gradients(const Graph& graph, Executor& executor, const std::vector<ValueRef>& outputs,
                          const std::vector<std::string>& parameters, const GradcheckOptions& options = {});

}  // namespace graphrun::testing
