// Optimizers over a graph's parameters, with PyTorch's update rules so the two
// train to the same weights: torch.optim.Adam (no weight decay, no amsgrad),
// torch.optim.AdamW (decoupled weight decay) and torch.optim.SGD with momentum
// (dampening 0, not Nesterov).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "engine/core/executor.hpp"

namespace graphrun {

class Optimizer {
public:
    virtual ~Optimizer() = default;
    // One step on every parameter from the gradients of the last backward().
    virtual void step(Executor& executor) = 0;
    // The optimizer's state as named tensors, and its step count, so a
    // checkpoint can carry it and a resumed run continues exactly.
    virtual std::map<std::string, Tensor> state() const = 0;
    virtual void load_state(const std::map<std::string, Tensor>& state, std::int64_t steps) = 0;
    std::int64_t steps() const { return steps_; }
    // The learning rate of the next step: a schedule (schedule.hpp) sets it
    // before each step, as torch's LambdaLR sets a param group's lr.
    double lr() const { return lr_; }
    void set_lr(double lr) { lr_ = lr; }

protected:
    explicit Optimizer(double lr) : lr_(lr) {}
    std::int64_t steps_ = 0;
    double lr_;
};

struct AdamOptions {
    double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    // AdamW's decoupled weight decay (Loshchilov and Hutter 2019; torch.optim.AdamW,
    // whose default is 0.01): the weights shrink by lr * weight_decay, apart
    // from the gradient's moments. 0: Adam.
    double weight_decay = 0;
};

class Adam final : public Optimizer {
public:
    explicit Adam(AdamOptions options = {}) : Optimizer(options.lr), options_(options) {}
    //   p *= 1 - lr wd                            (AdamW; first, as torch 1.13's _single_tensor_adamw)
    //   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    //   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    void step(Executor& executor) override;
    // "<param>.adam_m" and "<param>.adam_v", for Adam and AdamW alike (torch's state is the same too).
    std::map<std::string, Tensor> state() const override;
    void load_state(const std::map<std::string, Tensor>& state, std::int64_t steps) override;

private:
    struct Moments {
        Tensor m, v;
    };
    AdamOptions options_;
    std::map<std::string, Moments> moments_;
};

class Sgd final : public Optimizer {
public:
    Sgd(double lr, double momentum = 0.0) : Optimizer(lr), momentum_(momentum) {}
    //   b = momentum b + g (b = g on the first step);  p -= lr b
    void step(Executor& executor) override;
    // "<param>.sgd_momentum".
    std::map<std::string, Tensor> state() const override;
    void load_state(const std::map<std::string, Tensor>& state, std::int64_t steps) override;

private:
    double momentum_;
    std::map<std::string, Tensor> velocity_;
};

// Scales every parameter gradient so their global L2 norm is at most
// max_norm, as torch.nn.utils.clip_grad_norm_; returns the norm before.
double clip_grad_norm(Executor& executor, double max_norm);

}  // namespace graphrun
