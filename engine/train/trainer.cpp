#include "engine/train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "engine/core/threads.hpp"
#include "engine/io/atomic_file.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/initializer.hpp"
#include "engine/train/length_buckets.hpp"
#include "engine/train/optimizer.hpp"
#include "engine/train/schedule.hpp"
#include "engine/train/step.hpp"
#include "engine/train/task.hpp"

namespace graphrun::train {

namespace fs = std::filesystem;

// Sets every parameter from a checkpoint; a missing one is an error, and so is
// a tensor that is neither a parameter nor optimizer state.
void load_parameters(Executor& ex, const io::Checkpoint& ckpt, const std::map<std::string, Tensor>& optimizer_state, const std::string& path) {
    const Graph& g = ex.graph();
    std::vector<std::string> missing, extra;
    for (int p : g.parameters()) {
        const Node& n = g.node(p);
        auto it = ckpt.tensors.find(n.name);
        if (it == ckpt.tensors.end()) {
            missing.push_back(n.name);
            continue;
        }
        if (it->second.type() != n.outputs[0])
            throw Error(fmt::format("{}: '{}' is {}, the graph's parameter is {}", path, n.name, to_string(it->second.type()), to_string(n.outputs[0])));
        ex.set(p, it->second.clone());
    }
    for (const auto& [name, t] : ckpt.tensors)
        if (!g.find(name) && !optimizer_state.count(name)) extra.push_back(name);
    if (!missing.empty()) throw Error(fmt::format("{}: the checkpoint lacks parameter(s) of this graph: {}", path, fmt::join(missing, ", ")));
    if (!extra.empty()) throw Error(fmt::format("{}: the checkpoint holds tensor(s) this graph does not have: {}", path, fmt::join(extra, ", ")));
}

std::string input_encoding(const spec::Spec& spec) {
    const spec::DataSpec& d = spec.data;
    switch (d.kind) {
        case spec::DataSpec::Kind::synthetic: return "synthetic ids";
        case spec::DataSpec::Kind::files: return "ids from .npy files";
        case spec::DataSpec::Kind::text: {
            const auto& t = d.text.tokenizer;
            return fmt::format("text as {} tokens{}{}", t.type, t.type == "sentencepiece" ? " (" + t.model + ")" : "", t.lowercase ? ", lowercased" : "");
        }
        case spec::DataSpec::Kind::columns: {
            std::vector<std::string> parts;
            for (const auto& [name, source] : d.columns.inputs) {
                using K = spec::InputSource::Kind;
                parts.push_back(name + ": " +
                                (source.kind == K::tokens ? "text as bytes tokens" : source.kind == K::classes ? fmt::format("classes [{}]", fmt::join(source.classes, ", "))
                                 : source.kind == K::npy                           ? "an .npy file"
                                                                                   : "generated " + source.generate));
            }
            return fmt::format("{}", fmt::join(parts, "; "));
        }
    }
    return "";
}

void check_trained_for(const io::Checkpoint& ckpt, const std::string& path, const spec::Spec& spec, const Graph& graph, bool same_graph) {
    const auto& meta = ckpt.metadata;
    if (meta.count("inputs") && meta.at("inputs") != input_encoding(spec))
        throw Error(fmt::format("{}: these weights were trained on {}, but {} feeds {}: every shape fits, but the ids would mean other things",
                                path, meta.at("inputs"), spec.path, input_encoding(spec)));
    if (same_graph && meta.count("structure") && meta.at("structure") != structure_hash(graph))
        throw Error(fmt::format("{}: these weights fit every parameter of {}, but were trained in another graph (structure {}, this graph {}): "
                                "an op, an attribute or a connection differs",
                                path, spec.path, meta.at("structure"), structure_hash(graph)));
}

std::map<std::string, Tensor> optimizer_tensors(const io::Checkpoint& ckpt) {
    std::map<std::string, Tensor> out;
    for (const auto& [name, t] : ckpt.tensors)
        if (name.find(".adam_") != std::string::npos || name.find(".sgd_momentum") != std::string::npos) out[name] = t;
    return out;
}



std::optional<double> EpochMetrics::metric(const std::string& name) const {
    for (const auto& m : metrics)
        if (m.name == name) return m.value;
    return std::nullopt;
}

std::string EpochMetrics::to_json() const {
    nlohmann::json j;
    auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
    j["epoch"] = epoch;
    j["train_loss"] = train_loss;
    j["val_loss"] = opt(val_loss);
    for (const auto& m : metrics) j[m.name] = opt(m.value);
    j["samples_per_s"] = samples_per_s;
    j["lr"] = lr;
    if (ranks > 1) {
        j["ranks"] = ranks;
        j["allreduce_s_per_step"] = allreduce_s_per_step;
    }
    return j.dump();
}

Batch Batch::for_inputs(const Graph& graph, std::int64_t rows) {
    Batch b;
    b.rows = rows;
    for (int i : graph.inputs()) {
        TensorType type = graph.node(i).outputs[0];
        type.shape[0] = rows;
        b.nodes.push_back(i);
        b.declared.emplace_back(type);
        b.tensors.push_back(b.declared.back());
    }
    return b;
}

void Batch::feed(Executor& executor) const {
    for (std::size_t k = 0; k < nodes.size(); ++k) executor.set(nodes[k], tensors[k]);
}

const Tensor& Batch::of(int node) const {
    for (std::size_t k = 0; k < nodes.size(); ++k)
        if (nodes[k] == node) return tensors[k];
    throw Error(fmt::format("the batch has no input node {}", node));
}
Tensor& Batch::of(int node) { return const_cast<Tensor&>(std::as_const(*this).of(node)); }

void Batch::set_width(int node, std::int64_t width) {
    const auto k = static_cast<std::size_t>(std::find(nodes.begin(), nodes.end(), node) - nodes.begin());
    if (k == nodes.size()) throw Error(fmt::format("the batch has no input node {}", node));
    if (tensors[k].shape().at(1) == width) return;
    TensorType type = declared[k].type();
    type.shape[1] = width;
    tensors[k] = declared[k].view(type);
}

std::int64_t embedding_vocabulary(const Graph& graph, int input) {
    for (const Node& n : graph.nodes())
        if (n.op_name == "embedding" && n.inputs[0].node == input) return graph.type(n.inputs[1]).shape[0];
    return 0;
}

std::unique_ptr<Task> make_task(const spec::Spec& spec, const BuiltGraph& built, const TrainOptions& options,
                                const std::optional<std::string>& evaluation_data) {
    if (spec.task == "classify") return make_classify_task(spec, built, evaluation_data);
    if (evaluation_data) throw Error("graphrun evaluate measures task classify for now; task siamese gets its evaluation with the text pipeline");
    return make_siamese_task(spec, built, options);
}

namespace {

// What a failed run leaves behind: the checkpoint of the last finished epoch, untouched.
std::string kept_checkpoint(const std::string& path) {
    if (fs::exists(path)) return fmt::format("The last good checkpoint, {}, is kept as it was.", path);
    return "No epoch finished, so there is no checkpoint.";
}

// Writes the weights, the optimizer state and where the run is (rank 0 only).
class CheckpointWriter {
public:
    CheckpointWriter(const spec::Spec& spec, const Graph& graph, const Executor& ex, const Optimizer& optimizer, std::int64_t schedule_steps, bool lead)
        : spec_(spec), graph_(graph), ex_(ex), optimizer_(optimizer), schedule_steps_(schedule_steps), lead_(lead) {}

    // `extra`: a stopped epoch's position and sums, the best figure so far.
    void write(const std::string& path, int completed_epochs, const std::map<std::string, std::string>& extra) const {
        if (!lead_) return;
        io::Checkpoint ckpt;
        for (int p : graph_.parameters()) ckpt.tensors[graph_.node(p).name] = ex_.value(ValueRef{p, 0});
        for (auto& [name, t] : optimizer_.state()) ckpt.tensors[name] = t;
        ckpt.metadata = {{"format", "graphrun"},
                         {"spec", spec_.name},
                         {"task", spec_.task},
                         {"epoch", std::to_string(completed_epochs)},
                         {"epochs", std::to_string(spec_.train.epochs)},
                         {"optimizer", spec_.train.optimizer.type},
                         {"optimizer_steps", std::to_string(optimizer_.steps())},
                         {"schedule_steps", std::to_string(schedule_steps_)},
                         {"seed", std::to_string(spec_.train.seed)},
                         {"structure", structure_hash(graph_)},
                         {"inputs", input_encoding(spec_)}};
        ckpt.metadata.insert(extra.begin(), extra.end());
        io::write_safetensors(path, ckpt);
    }

private:
    const spec::Spec& spec_;
    const Graph& graph_;
    const Executor& ex_;
    const Optimizer& optimizer_;
    std::int64_t schedule_steps_;  // the run's last step, where train.schedule's decay ends
    bool lead_;
};

// Data-parallel ranks: one MPI_Allreduce a step over one float buffer holding
// every parameter's gradient (scaled by the rank's rows), then the step's
// loss, rows, a failure flag, a stop flag and the task's step sums.
class GradientSum {
public:
    GradientSum(const Graph& graph, Communicator& comm, std::size_t task_sums) : graph_(graph), comm_(comm), task_sums_(task_sums) {
        for (int p : graph.parameters()) gradient_elements_ += static_cast<std::size_t>(element_count(graph.node(p).outputs[0].shape));
        if (comm.size() > 1) fused_.resize(gradient_elements_ + kTailSize + task_sums);
    }

    struct Step {
        float loss;
        bool failed_here, failed_anywhere, stop;
        std::vector<double> sums;  // the task's, summed
    };
    // Sums this rank's step with the others'; afterwards the executor holds the batch's mean gradient.
    Step sum(Executor& ex, float loss, std::int64_t rows, bool stop_here, std::vector<double> sums, double& seconds) {
        const bool finite_here = std::isfinite(loss);
        if (comm_.size() == 1) return {loss, !finite_here, !finite_here, stop_here, std::move(sums)};
        std::size_t at = 0;
        if (finite_here) {
            for (int p : graph_.parameters()) {
                const Tensor& g = ex.grad(p);
                for (std::int64_t j = 0; j < g.numel(); ++j) fused_[at++] = g.f32()[j] * static_cast<float>(rows);
            }
        } else {
            std::fill(fused_.begin(), fused_.begin() + static_cast<std::ptrdiff_t>(gradient_elements_), 0.0f);
        }
        float* tail = fused_.data() + gradient_elements_;
        tail[kLoss] = finite_here ? loss * static_cast<float>(rows) : 0.0f;
        tail[kRows] = static_cast<float>(rows);
        tail[kFailed] = finite_here ? 0.0f : 1.0f;
        tail[kStop] = stop_here ? 1.0f : 0.0f;
        for (std::size_t k = 0; k < task_sums_; ++k) tail[kTailSize + k] = static_cast<float>(sums[k]);
        const auto start = std::chrono::steady_clock::now();
        comm_.allreduce_sum(fused_);
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        Step out{0, !finite_here, tail[kFailed] > 0, tail[kStop] > 0, {}};
        if (out.failed_anywhere) return out;
        at = 0;
        const float scale = 1.0f / tail[kRows];
        for (int p : graph_.parameters()) {
            Tensor g = ex.grad(p);  // shares the executor's storage
            for (std::int64_t j = 0; j < g.numel(); ++j) g.f32()[j] = fused_[at++] * scale;
        }
        out.loss = tail[kLoss] * scale;
        for (std::size_t k = 0; k < task_sums_; ++k) out.sums.push_back(tail[kTailSize + k]);
        return out;
    }

private:
    enum Tail { kLoss, kRows, kFailed, kStop, kTailSize };
    const Graph& graph_;
    Communicator& comm_;
    std::size_t task_sums_;
    std::size_t gradient_elements_ = 0;
    std::vector<float> fused_;
};

// Where a run starts: a fresh initialization, given weights, or a checkpoint
// to resume (possibly written in the middle of an epoch).
struct Start {
    int epoch = 1;
    std::int64_t step = 0;  // > 0: resume inside `epoch`
    double loss_sum = 0;    // that epoch's loss so far
    std::map<std::string, std::string> metadata;
};

Start start_run(const spec::Spec& spec, const TrainOptions& options, Executor& ex, Optimizer& optimizer, const std::string& checkpoint_path) {
    Start start;
    initialize_parameters(ex, spec.train.seed);
    if (options.resume) {
        if (!fs::exists(checkpoint_path)) throw Error(fmt::format("--resume: {} does not exist; start without --resume", checkpoint_path));
        const io::Checkpoint ckpt = io::read_safetensors(checkpoint_path);
        const auto state = optimizer_tensors(ckpt);
        load_parameters(ex, ckpt, state, checkpoint_path);
        check_trained_for(ckpt, checkpoint_path, spec, ex.graph(), true);
        try {
            start.epoch = std::stoi(ckpt.metadata.at("epoch")) + 1;
            optimizer.load_state(state, std::stoll(ckpt.metadata.at("optimizer_steps")));
            if (ckpt.metadata.count("step")) {
                start.step = std::stoll(ckpt.metadata.at("step"));
                start.loss_sum = std::stod(ckpt.metadata.at("epoch_loss_sum"));  // a hexadecimal float: bit for bit
            }
        } catch (const std::logic_error&) {  // missing keys (out_of_range) or values that are not numbers (invalid_argument)
            throw Error(fmt::format("{}: not a training checkpoint (expected whole numbers epoch and optimizer_steps, and for a run stopped "
                                    "mid-epoch step and the epoch's sums, in its metadata)",
                                    checkpoint_path));
        }
        start.metadata = ckpt.metadata;
    } else if (!options.init_checkpoint.empty()) {
        if (!fs::exists(options.init_checkpoint)) throw Error(fmt::format("--init: {} does not exist", options.init_checkpoint));
        const io::Checkpoint ckpt = io::read_safetensors(options.init_checkpoint);
        load_parameters(ex, ckpt, optimizer_tensors(ckpt), options.init_checkpoint);
        check_trained_for(ckpt, options.init_checkpoint, spec, ex.graph(), false);
    } else if (!options.initial_parameters.empty()) {
        io::Checkpoint given;
        given.tensors = options.initial_parameters;
        load_parameters(ex, given, {}, "the initial parameters");
    }
    return start;
}

// The figure train.select names, and which way is better.
// A validation figure by name (`key` says which spec key named it); empty: the task's first.
MetricInfo named_metric(const spec::Spec& spec, const Task& task, const std::string& name, const std::string& key) {
    const auto& metrics = task.metrics();
    if (name.empty()) return metrics.front();
    if (name == "val_loss" && task.has_validation_loss()) return {"val_loss", "{:.4f}", false};
    std::vector<std::string> names;
    if (task.has_validation_loss()) names.push_back("val_loss");
    for (const auto& m : metrics) {
        if (m.name == name) return m;
        names.push_back(m.name);
    }
    spec::Location where;
    where.file = spec.path;
    if (spec.train.locs.count(key)) where = spec.train.locs.at(key);
    throw spec::SpecError(where, fmt::format("train.{}: task {} has no figure '{}' (it has {})", key, spec.task, name, fmt::join(names, ", ")));
}

MetricInfo selected_metric(const spec::Spec& spec, const Task& task) { return named_metric(spec, task, spec.train.select, "select"); }

std::optional<double> figure_of(const EpochMetrics& m, const MetricInfo& info) { return info.name == "val_loss" ? m.val_loss : m.metric(info.name); }
bool improves(const MetricInfo& info, double value, const std::optional<double>& best) {
    return !best || (info.higher_is_better ? value > *best : value < *best);
}

// OUT/model.yaml: the spec as trained (--set applied, data paths absolute)
// and what the run found: with the tokenizer's files and the weights beside
// it, the folder is a model that `graphrun evaluate|score|embed RUN` use.
void write_model_yaml(const fs::path& out, const spec::Spec& spec, const Task& task, std::optional<double> threshold, const std::string& checkpoint) {
    spec::Spec::Run run;
    run.checkpoint = checkpoint;
    if (task.tokenizer()) run.tokenizer = "tokenizer.json";
    run.threshold = threshold;
    const std::string text = "# Written by graphrun train: the spec as trained, and what the run found (run:).\n"
                             "# run.threshold is on the model's similarity, the cosine or minus the distance: similar at or above it.\n" +
                             spec::with_run(spec, run);
    io::write_file_atomically((out / "model.yaml").string(), std::as_bytes(std::span(text.data(), text.size())));
}

// Runs the task's validation samples through an inference plan (the ranks
// take turns by batch) and fills the loss and the task's figures.
void validate(Executor& ex, Task& task, const BuiltGraph& built, Communicator& comm, std::int64_t batch_size, EpochMetrics& m) {
    const std::int64_t count = task.validation_size();
    if (count == 0) return;
    std::vector<ValueRef> targets = task.validation_targets();
    targets.push_back(built.loss);
    Batch batch;
    double loss = 0;
    task.start_validation();
    for (std::int64_t first = 0; first < count; first += batch_size) {
        if ((first / batch_size) % comm.size() != comm.rank()) continue;  // the sums are reduced below
        const std::int64_t n = std::min(batch_size, count - first);
        if (n != batch.rows) batch = Batch::for_inputs(built.graph, n);
        task.fill_validation(first, batch);
        batch.feed(ex);
        ex.forward(targets, Executor::Mode::inference);
        loss += ex.value(built.loss).f32()[0] * static_cast<double>(n);
        task.observe_validation(ex, batch);
    }
    comm.allreduce_sum(std::span<double>(&loss, 1));
    if (task.has_validation_loss()) m.val_loss = loss / static_cast<double>(count);
    task.end_validation(comm, m);
}

EpochMetrics blank_metrics(const Task& task) {
    EpochMetrics m;
    for (const auto& info : task.metrics()) m.metrics.push_back({info.name, std::nullopt, info.format});
    return m;
}

}  // namespace

EpochMetrics evaluate(const spec::Spec& spec, const BuiltGraph& built, const std::string& checkpoint, const std::string& data) {
    TrainOptions options;
    options.allow_positive_only = true;  // evaluation trains nothing
    const std::unique_ptr<Task> task = make_task(spec, built, options, data);
    Executor ex(built.graph);
    const io::Checkpoint ckpt = io::read_safetensors(checkpoint);
    load_parameters(ex, ckpt, optimizer_tensors(ckpt), checkpoint);
    check_trained_for(ckpt, checkpoint, spec, built.graph, false);
    Communicator one_process;
    EpochMetrics m = blank_metrics(*task);
    validate(ex, *task, built, one_process, spec.train.batch_size, m);
    return m;
}

std::vector<EpochMetrics> train(const spec::Spec& spec, const BuiltGraph& built, const TrainOptions& options) {
    const Graph& graph = built.graph;
    const spec::TrainSpec& cfg = spec.train;
    // Data-parallel over ranks: every rank plans the same epochs and takes its
    // share of each batch; rank 0 alone writes files and reports.
    Communicator one_process;
    Communicator& comm = options.communicator ? *options.communicator : one_process;
    const int rank = comm.rank(), ranks = comm.size();
    const bool lead = rank == 0;
    const std::unique_ptr<Task> task = make_task(spec, built, options, std::nullopt);
    const MetricInfo select = selected_metric(spec, *task);

    // Where the run's files go; an unwritable folder is found before training.
    const fs::path out(options.out_dir);
    std::error_code ec;
    if (lead) fs::create_directories(out, ec);
    if (ec) throw Error(fmt::format("{}: cannot create the output folder: {}", out.string(), ec.message()));
    const std::string checkpoint_path = (out / "checkpoint.safetensors").string();
    const std::string best_path = (out / "best.safetensors").string();
    const std::string metrics_path = (out / "metrics.jsonl").string();

    Executor ex(graph, cfg.executor == "sequential" ? Executor::Schedule::sequential : Executor::Schedule::tasks);
    ex.set_profiling(options.profile);
    std::unique_ptr<Optimizer> optimizer = make_optimizer(cfg.optimizer);
    const Start start = start_run(spec, options, ex, *optimizer, checkpoint_path);
    if (start.step > 0) {
        try {
            task->restore_epoch_sums(start.metadata);
        } catch (const std::logic_error&) {
            throw Error(fmt::format("{}: not a training checkpoint of task {} (its metadata lacks the stopped epoch's sums)", checkpoint_path, spec.task));
        }
    }
    // The best figure so far, carried through checkpoints so a resumed run
    // compares with it (when it selects by the same figure; else it starts anew).
    std::optional<double> best;
    if (start.metadata.count("best") && start.metadata.count("select") && start.metadata.at("select") == select.name) {
        try {
            best = std::stod(start.metadata.at("best"));
        } catch (const std::logic_error&) {
            throw Error(fmt::format("{}: its metadata's best ('{}') is not a number", checkpoint_path, start.metadata.at("best")));
        }
    }
    const MetricInfo early = named_metric(spec, *task, cfg.early_stopping_metric.empty() ? select.name : cfg.early_stopping_metric, "early_stopping");
    std::optional<double> early_best, best_threshold;
    std::int64_t stale_epochs = 0;
    try {
        if (start.metadata.count("stale_epochs")) stale_epochs = std::stoll(start.metadata.at("stale_epochs"));
        if (start.metadata.count("early_stopping_best")) early_best = std::stod(start.metadata.at("early_stopping_best"));
        // The best epoch's threshold goes with the best figure: kept only for the same figure.
        if (best && start.metadata.count("best_threshold")) best_threshold = std::stod(start.metadata.at("best_threshold"));
    } catch (const std::logic_error&) {
        throw Error(fmt::format("{}: its early-stopping or threshold metadata is not a number", checkpoint_path));
    }
    // What a resumed run needs to go on choosing and stopping as this one would:
    // in every checkpoint, the mid-epoch ones too.
    const auto best_metadata = [&]() -> std::map<std::string, std::string> {
        std::map<std::string, std::string> m;
        if (best) {
            m["select"] = select.name;
            m["best"] = fmt::format("{:a}", *best);
            if (best_threshold) m["best_threshold"] = fmt::format("{:a}", *best_threshold);
        }
        if (cfg.patience > 0) {
            m["stale_epochs"] = std::to_string(stale_epochs);
            if (early_best) m["early_stopping_best"] = fmt::format("{:a}", *early_best);
        }
        return m;
    };
    // Before anything is written: a model that reads padding is refused.
    start_length_buckets(ex, *task, built, cfg, task->plan_epoch(start.epoch));
    if (lead) {
        std::ofstream probe(metrics_path, options.resume ? std::ios::app : std::ios::trunc);
        if (!probe) throw Error(fmt::format("{}: cannot write metrics: {}", metrics_path, std::strerror(errno)));
    }
    const auto warn = [&](const std::string& message) {
        if (options.on_warning && lead) options.on_warning(message);
    };
    // The learning rate is a function of the step count, over the run's steps:
    // every epoch has as many samples (each task plans the same count every
    // epoch; planning is a function of the epoch alone, so planning one here changes nothing).
    const std::int64_t batch_size = cfg.batch_size;
    const LrSchedule schedule(cfg.schedule, cfg.optimizer.lr, run_steps(cfg, (task->plan_epoch(start.epoch) + batch_size - 1) / batch_size));
    if (cfg.schedule.warmup >= schedule.run_steps() && cfg.schedule.warmup > 0)
        warn(fmt::format("train.schedule.warmup is {} steps but the run has {}: the learning rate never reaches train.optimizer.lr", cfg.schedule.warmup,
                         schedule.run_steps()));
    if (cfg.schedule.decay != "constant" && start.metadata.count("schedule_steps") && start.metadata.at("schedule_steps") != std::to_string(schedule.run_steps()))
        warn(fmt::format("the run now ends at step {}, not {} as when {} was written (train.epochs or train.max_steps changed): the {} decay "
                         "continues from step {} toward the new end",
                         schedule.run_steps(), start.metadata.at("schedule_steps"), checkpoint_path, cfg.schedule.decay, optimizer->steps()));
    const CheckpointWriter checkpoints(spec, graph, ex, *optimizer, schedule.run_steps(), lead);
    GradientSum gradient_sum(graph, comm, task->step_sums());
    // Under MPI a stop request is summed with the gradients, so every rank stops at the same step.
    auto stop_asked_here = [&] { return options.stop && options.stop->load(); };
    const auto steps_done = [&] { return cfg.max_steps > 0 && optimizer->steps() >= cfg.max_steps; };
    for (const auto& message : task->data_warnings()) warn(message);
    // The run's folder is a model: how text becomes ids travels with the weights.
    if (lead)
        if (const text::Tokenizer* tokenizer = task->tokenizer()) tokenizer->save(out.string());

    std::vector<EpochMetrics> history;
    Batch batch = Batch::for_inputs(graph, batch_size);
    for (int epoch = start.epoch; epoch <= cfg.epochs && !steps_done(); ++epoch) {
        const auto count = task->plan_epoch(epoch);
        const std::int64_t steps = (count + batch_size - 1) / batch_size;
        EpochMetrics m = blank_metrics(*task);
        m.epoch = epoch;
        const bool resuming_here = epoch == start.epoch && start.step > 0;
        if (!resuming_here) task->start_epoch_sums();
        double loss_sum = resuming_here ? start.loss_sum : 0;
        double allreduce_s = 0;  // this epoch's time in MPI_Allreduce
        bool stop_agreed = false;
        const auto epoch_start = std::chrono::steady_clock::now();
        for (std::int64_t step = resuming_here ? start.step : 0; step < steps; ++step) {
            const std::int64_t first = step * batch_size, n = std::min(batch_size, count - first);
            // This rank's rows of the batch. A rank left without rows (a last
            // batch smaller than the ranks) runs one row and counts it zero times.
            const auto [offset, mine] = split_rows(n, ranks, rank);
            const std::int64_t rows = std::max<std::int64_t>(mine, 1);
            if (rows != batch.rows) batch = Batch::for_inputs(graph, rows);
            task->fill_training(std::min(first + offset, count - 1), batch);
            batch.feed(ex);
            ex.set_draws(cfg.seed, static_cast<std::uint64_t>(optimizer->steps()), first + offset);
            const float loss_here = forward_backward(ex, built.loss);
            const std::string where = fmt::format("epoch {} step {}", epoch, step + 1);
            if (!std::isfinite(loss_here) && ranks == 1)
                throw TrainingFailure(fmt::format("{}: {}. {}", where, non_finite_loss(loss_here, ex), kept_checkpoint(checkpoint_path)));
            std::vector<double> sums(task->step_sums(), 0.0);
            task->measure_step(ex, sums);
            const GradientSum::Step summed = gradient_sum.sum(ex, loss_here, mine, stop_asked_here(), std::move(sums), allreduce_s);
            if (summed.failed_anywhere)
                throw TrainingFailure(summed.failed_here ? fmt::format("{}: rank {}: {}. {}", where, rank, non_finite_loss(loss_here, ex), kept_checkpoint(checkpoint_path))
                                                         : fmt::format("{}: rank {} stops: another rank's loss is not finite", where, rank));
            stop_agreed = summed.stop;
            optimizer->set_lr(schedule.lr(optimizer->steps()));  // steps() counts the steps before this one: s from 0
            apply_gradients(ex, *optimizer, cfg.clip_norm, where, kept_checkpoint(checkpoint_path));
            m.lr = optimizer->lr();
            loss_sum += summed.loss * static_cast<double>(n);
            task->after_step(summed.sums, epoch, step + 1, warn);
            if (options.on_step && lead) {
                const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
                const double rate = static_cast<double>(first + n - (resuming_here ? start.step * batch_size : 0)) / std::max(elapsed, 1e-9);
                options.on_step({epoch, static_cast<int>(cfg.epochs), step + 1, steps, summed.loss, rate, static_cast<double>(count - first - n) / rate});
            }
            const bool stop = ranks == 1 ? stop_asked_here() : stop_agreed;
            if ((stop || steps_done()) && step + 1 < steps) {
                auto position = task->save_epoch_sums();
                position["step"] = std::to_string(step + 1);
                position["epoch_loss_sum"] = fmt::format("{:a}", loss_sum);
                auto extra = best_metadata();
                position.insert(extra.begin(), extra.end());
                checkpoints.write(checkpoint_path, epoch - 1, position);
                if (stop)
                    throw TrainingInterrupted(fmt::format("stopped at epoch {} step {} of {}; checkpoint {}", epoch, step + 1, steps, checkpoint_path),
                                              checkpoint_path);
                warn(fmt::format("stopped after train.max_steps = {} steps (epoch {} step {} of {}); checkpoint {}", cfg.max_steps, epoch, step + 1,
                                 steps, checkpoint_path));
                if (options.on_finish) options.on_finish(ex);
                return history;
            }
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
        m.train_loss = loss_sum / static_cast<double>(std::max<std::int64_t>(count, 1));
        const std::int64_t trained_here = count - std::min(count, (resuming_here ? start.step : 0) * batch_size);  // this process's share
        m.samples_per_s = static_cast<double>(trained_here) / std::max(seconds, 1e-9);
        task->end_training_epoch(m);
        if (ranks > 1) {
            m.ranks = ranks;
            m.allreduce_s_per_step = allreduce_s / static_cast<double>(std::max<std::int64_t>(steps - (resuming_here ? start.step : 0), 1));
        }

        // Validation: never trained on, the same samples every epoch.
        ex.set_profiling(false);  // the profile covers the training steps
        validate(ex, *task, built, comm, batch_size, m);

        // The best checkpoint by train.select, then the last.
        const std::optional<double> figure = figure_of(m, select);
        const bool better = figure && improves(select, *figure, best);
        if (better) best = figure;
        // Early stopping counts the epochs since its figure last improved.
        bool stop_early = false;
        if (cfg.patience > 0) {
            if (const auto f = figure_of(m, early); f && improves(early, *f, early_best)) {
                early_best = f;
                stale_epochs = 0;
            } else {
                ++stale_epochs;
            }
            stop_early = stale_epochs >= cfg.patience && epoch < cfg.epochs;
        }
        const std::optional<double> threshold = task->decision_threshold();
        if (better) best_threshold = threshold;
        auto metadata = best_metadata();
        if (threshold) metadata["threshold"] = fmt::format("{:a}", *threshold);  // this epoch's
        checkpoints.write(checkpoint_path, epoch, metadata);
        if (better) checkpoints.write(best_path, epoch, metadata);
        if (lead) write_model_yaml(out, spec, *task, best ? best_threshold : threshold, best ? "best.safetensors" : "checkpoint.safetensors");
        if (lead) std::ofstream(metrics_path, std::ios::app) << m.to_json() << "\n";
        ex.set_profiling(options.profile);
        if (options.on_epoch && lead) options.on_epoch(m);
        history.push_back(std::move(m));
        const bool stop = ranks == 1 ? stop_asked_here() : stop_agreed;
        if (stop && epoch < cfg.epochs)
            throw TrainingInterrupted(fmt::format("stopped after epoch {}; checkpoint {}", epoch, checkpoint_path), checkpoint_path);
        if (stop_early) {
            warn(fmt::format("early stopping after epoch {}: {} has not improved for {} epoch(s) (best {})", epoch, early.name, cfg.patience,
                             early_best ? fmt::format(fmt::runtime(early.format), *early_best) : "n/a"));
            break;
        }
    }
    if (steps_done() && lead) warn(fmt::format("stopped after train.max_steps = {} steps; checkpoint {}", cfg.max_steps, checkpoint_path));
    if (options.on_finish) options.on_finish(ex);  // every rank: each holds the trained weights
    return history;
}

}  // namespace graphrun::train
