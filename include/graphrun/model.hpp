// graphrun as a library: a Model is a graph with its parameters, loaded from a
// YAML spec or built in C++, that runs inference, trains, and loads and saves
// checkpoints. See docs/library.md.
//
// Errors: every function throws graphrun::Error (engine/core/error.hpp) with the
// message the command line would print; training that fails for a reason other
// than bad input (a non-finite loss) throws train::TrainingFailure, an Error too.
//
// Threads: run() and the const functions may be called from several threads
// at once (each call runs on an executor of its own; they share the
// parameters). Everything else changes the model: call it while no run() is
// going on.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "graphrun/error.hpp"
#include "graphrun/tensor.hpp"
#include "graphrun/training.hpp"
#include "graphrun/version.hpp"

namespace graphrun {

// Of the engine's insides, a Model names only these (their headers are not
// installed: a program inside this source tree may include them).
class Graph;      // engine/core/graph.hpp
class Optimizer;  // engine/train/optimizer.hpp
namespace spec {
struct Spec;      // engine/spec/spec.hpp
}
namespace train {
class PairModel;  // engine/train/pair_model.hpp
class TextIndex;  // engine/train/text_index.hpp
}

// A pair model's two branches: left reads queries (the first text of a
// training pair), right the texts they are matched with.
enum class Side { left, right };

// A corpus embedded by a pair model, searchable: the folder `graphrun index`
// writes. Safe to search from several threads at once.
class Index {
public:
    // Loads INDEX and the model it refers to; an Error if either is missing,
    // cut short, or the model has changed since the index was built.
    static Index load(const std::string& dir);
    Index(Index&&) noexcept;
    Index& operator=(Index&&) noexcept;
    ~Index();

    struct Hit {
        std::int64_t line;  // 1-based, in the corpus as indexed
        float similarity;   // the model's: cosine of the two embeddings, or minus their distance
        std::string text;
    };
    // The k lines most similar to `query`, best first.
    std::vector<Hit> search(const std::string& query, std::int64_t k = 10) const;
    std::int64_t size() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    explicit Index(std::unique_ptr<Impl> impl);
};

struct ParameterInfo {
    std::string name;  // "<layer>.<param>", PyTorch's names and layouts, e.g. "left_lstm.weight_ih"
    Shape shape;
};

// An input or output of the model: its node's name, element type and shape
// (kAnyDim where the batch is left open).
struct ValueInfo {
    std::string name;
    DType dtype;
    Shape shape;
};

class Model {
public:
    // From a YAML spec (docs/spec.md); `overrides` as the CLI's --set K=V.
    static Model from_file(const std::string& path, const std::vector<std::string>& overrides = {});
    static Model from_string(const std::string& yaml, const std::string& name = "model");
    // A run's folder (the --out of `graphrun train`): model.yaml, the weights
    // it names and, for a model trained on text, its tokenizer.
    static Model load_run(const std::string& dir);
    // From a graph built in C++ with the same ops (engine/core/graph.hpp, ops/composites.hpp).
    // `loss` names the node to train on, if it will be trained.
    explicit Model(Graph graph, std::optional<std::string> loss = std::nullopt);

    Model(Model&&) noexcept;
    Model& operator=(Model&&) noexcept;
    ~Model();

    const Graph& graph() const;
    // What to feed, in the graph's order of inputs, and what there is to ask
    // for: the spec's `outputs`, or for a graph built in C++ every node whose
    // value no other node reads.
    std::vector<ValueInfo> inputs() const;
    std::vector<ValueInfo> outputs() const;
    std::vector<ParameterInfo> parameters() const;
    const Tensor& parameter(const std::string& name) const;

    // Parameters: PyTorch's default initialization. A new model already has it:
    // with the spec's train.seed, or seed 0 for a graph built in C++.
    void initialize(std::uint64_t seed);
    // A safetensors checkpoint with every parameter of the graph, by name
    // (training checkpoints also hold optimizer state; it is ignored here).
    void load(const std::string& checkpoint_path);
    // Writes the parameters as safetensors, atomically.
    void save(const std::string& checkpoint_path) const;

    // Inference: feeds the named inputs and returns the named outputs (node
    // names; e.g. one branch's embedding needs only that branch's input).
    // Inputs may borrow the caller's memory (Tensor::borrow); outputs are the
    // caller's own copies. Safe from several threads at once.
    std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs, const std::vector<std::string>& outputs) const;

    // One training step on a batch (every input the loss needs): forward,
    // backward, the optimizer's update, as one step of `graphrun train`
    // (with the spec's clip_norm). Returns the loss. The first form uses the
    // model's own optimizer, made from the spec's train.optimizer (Adam with
    // PyTorch's defaults for a graph built in C++) and kept across calls.
    // It runs at the optimizer's rate: train.schedule needs a run's length,
    // so it applies to fit() and `graphrun train`, not to single steps.
    float train_step(const std::map<std::string, Tensor>& batch);
    float train_step(const std::map<std::string, Tensor>& batch, Optimizer& optimizer);

    // A whole run with the spec's data and train sections, as `graphrun train`
    // (progress and metrics through options.on_step / on_epoch). It starts
    // from the model's current parameters, as Keras's fit does (so load() then
    // fit() continues training; a new model equals `graphrun train`), unless
    // options.resume or options.init_checkpoint says otherwise. Afterwards the
    // model holds the trained parameters. Needs a model loaded from a spec.
    std::vector<train::EpochMetrics> fit(train::TrainOptions options);

    // A pair model trained on text, from load_run: texts in, as `graphrun score`
    // and `graphrun embed` (an Error for other models). Safe from several threads.
    float similarity(const std::string& left, const std::string& right) const;
    Tensor embed(Side side, const std::vector<std::string>& texts) const;  // (texts, dimension) float32, in the order given
    // The model's similarity is the cosine of the two embeddings, or minus their
    // euclidean or manhattan distance (metric(): "cosine", "euclidean", "manhattan").
    std::string metric() const;
    std::optional<double> threshold() const;  // similar at or above it (on the similarity): chosen on the validation pairs

private:
    static Model from_spec(spec::Spec spec);
    Model(Graph graph, std::optional<std::string> loss, std::uint64_t seed);
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace graphrun
