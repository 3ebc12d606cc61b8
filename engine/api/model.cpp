#include "graphrun/model.hpp"

#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/train/initializer.hpp"
#include "engine/train/pair_model.hpp"
#include "engine/train/text_index.hpp"
#include "engine/train/step.hpp"
#include "engine/train/trainer.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "ops/builtin.hpp"

namespace graphrun {

struct Model::Impl {
    Graph graph;
    std::optional<ValueRef> loss;
    std::optional<spec::Spec> spec;  // when loaded from YAML: fit() runs its data and train sections
    std::vector<std::string> outputs;  // the spec's `outputs`; for a C++ graph, the nodes nobody reads
    std::map<int, Tensor> parameters;  // by node; executors share their storage
    std::unique_ptr<Executor> training;  // train_step's
    std::unique_ptr<Optimizer> optimizer;  // train_step(batch)'s, made on first use
    // Executors for run(), one per concurrent call, kept for reuse (their
    // primitives and buffers stay planned for the shapes they saw).
    mutable std::mutex pool_mutex;
    mutable std::vector<std::unique_ptr<Executor>> idle;
    // From load_run, a model trained on text pairs: its texts-in functions
    // (one executor, so one caller at a time).
    std::unique_ptr<train::PairModel> pairs;
    mutable std::mutex pairs_mutex;

    // The pair model reads the same weight tensors as run() (shared storage),
    // so load(), fit() and train_step() change what similarity() and embed() see.
    void share_parameters_with_pairs() {
        if (!pairs) return;
        for (const auto& [node, value] : parameters) pairs->set_parameter(graph.node(node).name, value);
    }

    const train::PairModel& pair_model() const {
        if (!pairs) throw Error("similarity and embed need a pair model trained on text, loaded with Model::load_run(dir)");
        return *pairs;
    }

    explicit Impl(Graph g) : graph(std::move(g)) {}

    void set_parameters(Executor& ex) const {
        for (const auto& [node, value] : parameters) ex.set(node, value);
    }
    int input_node(const std::string& name) const {
        const auto index = graph.find(name);
        if (!index || graph.node(*index).kind != NodeKind::input) {
            std::vector<std::string> known;
            for (int i : graph.inputs()) known.push_back(graph.node(i).name);
            throw Error(fmt::format("the model has no input '{}' (its inputs: {})", name, fmt::join(known, ", ")));
        }
        return *index;
    }
};

Model Model::from_spec(spec::Spec spec) {
    BuiltGraph built = build_graph(spec, builtin_ops());
    std::vector<std::string> outputs;
    for (const auto& [name, ref] : built.outputs) outputs.push_back(name);
    Model model(std::move(built.graph), spec.loss.empty() ? std::nullopt : std::optional<std::string>(spec.loss),
                spec.train.seed);  // as `graphrun train` starts
    model.impl_->outputs = std::move(outputs);
    return model;
}

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

Model Model::load_run(const std::string& dir) {
    const std::string yaml = dir + "/model.yaml";
    spec::Spec spec = spec::load_spec_file(yaml);
    Model model = from_spec(spec);
    model.impl_->spec = std::move(spec);
    const auto& run = model.impl_->spec->run;
    model.load(dir + "/" + (run.checkpoint.empty() ? "checkpoint.safetensors" : run.checkpoint));
    if (model.impl_->spec->task == "siamese" && !run.tokenizer.empty())
        model.impl_->pairs = std::make_unique<train::PairModel>(train::PairModel::load_run(dir));
    model.impl_->share_parameters_with_pairs();
    return model;
}

float Model::similarity(const std::string& left, const std::string& right) const {
    const train::PairModel& m = impl_->pair_model();
    const std::lock_guard lock(impl_->pairs_mutex);
    const auto a = m.embed(train::Side::left, {left}), b = m.embed(train::Side::right, {right});
    return m.similarity(a.data(), b.data());
}

Tensor Model::embed(Side side, const std::vector<std::string>& texts) const {
    const train::PairModel& m = impl_->pair_model();
    std::vector<float> rows;
    {
        const std::lock_guard lock(impl_->pairs_mutex);
        rows = m.embed(side == Side::left ? train::Side::left : train::Side::right, texts);
    }
    Tensor out(Shape{static_cast<std::int64_t>(texts.size()), m.dimension()});
    std::copy(rows.begin(), rows.end(), out.f32());
    return out;
}

std::optional<double> Model::threshold() const { return impl_->pair_model().threshold(); }
std::string Model::metric() const { return impl_->pair_model().metric().name(); }

struct Index::Impl {
    train::TextIndex index;
    mutable std::mutex mutex;  // the model's executor: one query embedding at a time
};

Index::Index(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Index::Index(Index&&) noexcept = default;
Index& Index::operator=(Index&&) noexcept = default;
Index::~Index() = default;

Index Index::load(const std::string& dir) { return Index(std::unique_ptr<Impl>(new Impl{train::TextIndex::load(dir), {}})); }

std::vector<Index::Hit> Index::search(const std::string& query, std::int64_t k) const {
    std::vector<Hit> out;
    const std::lock_guard lock(impl_->mutex);
    for (const auto& h : impl_->index.search(query, k)) out.push_back({h.line, h.similarity, *h.text});
    return out;
}

std::int64_t Index::size() const { return impl_->index.size(); }

Model::Model(Graph graph, std::optional<std::string> loss) : Model(std::move(graph), std::move(loss), 0) {}

Model::Model(Graph graph, std::optional<std::string> loss, std::uint64_t seed) : impl_(std::make_unique<Impl>(std::move(graph))) {
    if (loss) impl_->loss = ValueRef{impl_->graph.index_of(*loss), 0};
    initialize(seed);
    const Graph& g = impl_->graph;
    std::vector<bool> read(g.nodes().size(), false);
    for (const Node& n : g.nodes())
        for (const ValueRef& in : n.inputs) read[static_cast<std::size_t>(in.node)] = true;
    for (std::size_t i = 0; i < g.nodes().size(); ++i)
        if (!read[i] && g.nodes()[i].kind == NodeKind::op) impl_->outputs.push_back(g.nodes()[i].name);
}

std::vector<ValueInfo> Model::inputs() const {
    std::vector<ValueInfo> out;
    for (int i : impl_->graph.inputs()) {
        const Node& n = impl_->graph.node(i);
        out.push_back({n.name, n.outputs[0].dtype, n.outputs[0].shape});
    }
    return out;
}

std::vector<ValueInfo> Model::outputs() const {
    std::vector<ValueInfo> out;
    for (const auto& name : impl_->outputs) {
        const Node& n = impl_->graph.node(impl_->graph.index_of(name));
        out.push_back({n.name, n.outputs[0].dtype, n.outputs[0].shape});
    }
    return out;
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
    impl_->share_parameters_with_pairs();
}

void Model::load(const std::string& checkpoint_path) {
    const io::Checkpoint ckpt = io::read_safetensors(checkpoint_path);
    Executor ex(impl_->graph);
    train::load_parameters(ex, ckpt, train::optimizer_tensors(ckpt), checkpoint_path);
    if (impl_->spec) train::check_trained_for(ckpt, checkpoint_path, *impl_->spec, impl_->graph, false);
    for (int p : impl_->graph.parameters()) impl_->parameters[p] = ex.value(ValueRef{p, 0});
    impl_->share_parameters_with_pairs();
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

float Model::train_step(const std::map<std::string, Tensor>& batch) {
    if (!impl_->optimizer) impl_->optimizer = train::make_optimizer(impl_->spec ? impl_->spec->train.optimizer : spec::OptimizerSpec{});
    return train_step(batch, *impl_->optimizer);
}

float Model::train_step(const std::map<std::string, Tensor>& batch, Optimizer& optimizer) {
    if (!impl_->loss) throw Error("train_step needs a loss: load the model from a spec with `loss`, or name the loss node when building it");
    if (!impl_->training) impl_->training = std::make_unique<Executor>(impl_->graph);
    Executor& ex = *impl_->training;
    impl_->set_parameters(ex);
    for (const auto& [name, value] : batch) ex.set(impl_->input_node(name), value);
    // The trainer's own step, without the ranks: the same checks, the spec's clip_norm.
    const float loss = train::forward_backward(ex, *impl_->loss);
    if (!std::isfinite(loss)) throw train::TrainingFailure(fmt::format("train_step: {}", train::non_finite_loss(loss, ex)));
    train::apply_gradients(ex, optimizer, impl_->spec ? impl_->spec->train.clip_norm : 0.0, "train_step", "");  // updates the shared parameters in place
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
    // Continue from the model's weights (as Keras's fit and a PyTorch loop do),
    // unless the options name a checkpoint to start or resume from.
    if (!options.resume && options.init_checkpoint.empty() && options.initial_parameters.empty())
        for (const auto& [node, value] : impl_->parameters) options.initial_parameters[impl_->graph.node(node).name] = value;
    if (options.out_dir.empty()) options.out_dir = "runs/" + impl_->spec->name;
    auto history = train::train(*impl_->spec, built, options);
    impl_->share_parameters_with_pairs();
    return history;
}

}  // namespace graphrun
