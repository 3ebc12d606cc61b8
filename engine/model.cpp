#include "engine/model.hpp"

#include <cmath>

#include <fmt/format.h>

#include "engine/initializer.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "ops/builtin.hpp"

namespace graphrun {

struct Model::Impl {
    Graph graph;
    std::optional<ValueRef> loss;
    std::optional<spec::Spec> spec;  // when loaded from YAML: fit() runs its data and train sections
    std::map<int, Tensor> parameters;  // by node; executors share their storage
    std::unique_ptr<Executor> training;  // train_step's
    // Executors for run(), one per concurrent call, kept for reuse (their
    // primitives and buffers stay planned for the shapes they saw).
    mutable std::mutex pool_mutex;
    mutable std::vector<std::unique_ptr<Executor>> idle;

    explicit Impl(Graph g) : graph(std::move(g)) {}

    void set_parameters(Executor& ex) const {
        for (const auto& [node, value] : parameters) ex.set(node, value);
    }
    int input_node(const std::string& name) const {
        const auto index = graph.find(name);
        if (!index || graph.node(*index).kind != NodeKind::input) {
            std::string known;
            for (int i : graph.inputs()) known += (known.empty() ? "" : ", ") + graph.node(i).name;
            throw Error(fmt::format("the model has no input '{}' (its inputs: {})", name, known));
        }
        return *index;
    }
};

namespace {
Model from_spec(spec::Spec spec) {
    BuiltGraph built = build_graph(spec, builtin_ops());
    Model model(std::move(built.graph), spec.loss.empty() ? std::nullopt : std::optional<std::string>(spec.loss));
    return model;
}
}  // namespace

Model Model::from_file(const std::string& path, const std::vector<std::string>& overrides) {
    spec::Spec spec = spec::load_spec_file(path, overrides);
    Model model = from_spec(spec);
    model.impl_->spec = std::move(spec);
    return model;
}

Model Model::from_string(const std::string& yaml, const std::string& name) {
    spec::Spec spec = spec::load_spec_string(yaml, name);
    Model model = from_spec(spec);
    model.impl_->spec = std::move(spec);
    return model;
}

Model::Model(Graph graph, std::optional<std::string> loss) : impl_(std::make_unique<Impl>(std::move(graph))) {
    if (loss) impl_->loss = ValueRef{impl_->graph.index_of(*loss), 0};
    initialize(0);
}

Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

const Graph& Model::graph() const { return impl_->graph; }

std::vector<ParameterInfo> Model::parameters() const {
    std::vector<ParameterInfo> out;
    for (int p : impl_->graph.parameters()) out.push_back({impl_->graph.node(p).name, impl_->graph.node(p).outputs[0].shape});
    return out;
}

const Tensor& Model::parameter(const std::string& name) const {
    const auto index = impl_->graph.find(name);
    if (!index || impl_->graph.node(*index).kind != NodeKind::parameter) throw Error(fmt::format("the model has no parameter '{}'", name));
    return impl_->parameters.at(*index);
}

void Model::initialize(std::uint64_t seed) {
    Executor ex(impl_->graph);
    initialize_parameters(ex, seed);
    for (int p : impl_->graph.parameters()) impl_->parameters[p] = ex.value(ValueRef{p, 0});
}

void Model::load(const std::string& checkpoint_path) {
    const io::Checkpoint ckpt = io::read_safetensors(checkpoint_path);
    Executor ex(impl_->graph);
    train::load_parameters(ex, ckpt, train::optimizer_tensors(ckpt), checkpoint_path);
    for (int p : impl_->graph.parameters()) impl_->parameters[p] = ex.value(ValueRef{p, 0});
}

void Model::save(const std::string& checkpoint_path) const {
    io::Checkpoint ckpt;
    for (const auto& [node, value] : impl_->parameters) ckpt.tensors[impl_->graph.node(node).name] = value;
    ckpt.metadata = {{"format", "graphrun"}, {"version", version()}};
    io::write_safetensors(checkpoint_path, ckpt);
}

std::map<std::string, Tensor> Model::run(const std::map<std::string, Tensor>& inputs, const std::vector<std::string>& outputs) const {
    std::vector<ValueRef> targets;
    for (const auto& name : outputs) {
        const auto index = impl_->graph.find(name);
        if (!index) throw Error(fmt::format("the model has no node '{}' to output", name));
        targets.push_back({*index, 0});
    }
    // Borrow an idle executor, or make one: calls at once never share one.
    std::unique_ptr<Executor> ex;
    {
        std::lock_guard lock(impl_->pool_mutex);
        if (!impl_->idle.empty()) {
            ex = std::move(impl_->idle.back());
            impl_->idle.pop_back();
        }
    }
    if (!ex) ex = std::make_unique<Executor>(impl_->graph);
    struct GiveBack {
        const Impl& impl;
        std::unique_ptr<Executor>& ex;
        ~GiveBack() {
            std::lock_guard lock(impl.pool_mutex);
            impl.idle.push_back(std::move(ex));
        }
    } give_back{*impl_, ex};

    impl_->set_parameters(*ex);
    for (const auto& [name, value] : inputs) ex->set(impl_->input_node(name), value);
    ex->forward(targets, Executor::Mode::inference);
    std::map<std::string, Tensor> out;
    for (std::size_t k = 0; k < outputs.size(); ++k) out[outputs[k]] = ex->value(targets[k]).clone();
    return out;
}

float Model::train_step(const std::map<std::string, Tensor>& batch, Optimizer& optimizer) {
    if (!impl_->loss) throw Error("train_step needs a loss: load the model from a spec with `loss`, or name the loss node when building it");
    if (!impl_->training) impl_->training = std::make_unique<Executor>(impl_->graph);
    Executor& ex = *impl_->training;
    impl_->set_parameters(ex);
    for (const auto& [name, value] : batch) ex.set(impl_->input_node(name), value);
    ex.forward();
    const float loss = ex.value(*impl_->loss).f32()[0];
    if (!std::isfinite(loss)) throw train::TrainingFailure(fmt::format("the loss is {}; the first non-finite value comes from node {}", loss, train::first_non_finite_node(ex)));
    ex.backward(*impl_->loss);
    optimizer.step(ex);  // updates the shared parameter storage in place
    return loss;
}

std::vector<train::EpochMetrics> Model::fit(train::TrainOptions options) {
    if (!impl_->spec) throw Error("fit() needs a model loaded from a spec (its data and train sections); use train_step() in your own loop");
    const BuiltGraph built = build_graph(*impl_->spec, builtin_ops());
    auto user_finish = std::move(options.on_finish);
    options.on_finish = [&](const Executor& ex) {
        // The trained values, by name: `built` is another instance of the same graph.
        for (int p : impl_->graph.parameters()) impl_->parameters[p] = ex.value(ValueRef{ex.graph().index_of(impl_->graph.node(p).name), 0});
        if (user_finish) user_finish(ex);
    };
    if (options.out_dir.empty()) options.out_dir = "runs/" + impl_->spec->name;
    return train::train(*impl_->spec, built, options);
}

}  // namespace graphrun
