// Optimizers over a graph's parameters, with PyTorch's update rules so the two
// train to the same weights: torch.optim.Adam (no weight decay, no amsgrad)
// and torch.optim.SGD with momentum (dampening 0, not Nesterov).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "engine/executor.hpp"

namespace graphrun {

struct AdamOptions {
    double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

class Adam {
public:
    explicit Adam(AdamOptions options = {}) : options_(options) {}
    // One step on every parameter from the gradients of the last backward():
    //   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    //   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    void step(Executor& executor);
    std::int64_t steps() const { return step_; }

private:
    struct Moments {
        Tensor m, v;
    };
    AdamOptions options_;
    std::int64_t step_ = 0;
    std::map<std::string, Moments> moments_;
};

class Sgd {
public:
    Sgd(double lr, double momentum = 0.0) : lr_(lr), momentum_(momentum) {}
    //   b = momentum b + g (b = g on the first step);  p -= lr b
    void step(Executor& executor);

private:
    double lr_, momentum_;
    std::map<std::string, Tensor> velocity_;
};

}  // namespace graphrun
