#include "engine/train/trainer.hpp"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "engine/train/initializer.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/train/optimizer.hpp"
#include "engine/core/threads.hpp"
#include "engine/train/metrics.hpp"

namespace graphrun::train {

namespace fs = std::filesystem;

namespace {

// The vocabulary of the embedding that reads an id input.
std::int64_t vocabulary_of(const Graph& graph, int input) {
    for (const Node& n : graph.nodes())
        if (n.op_name == "embedding" && n.inputs[0].node == input) return graph.type(n.inputs[1]).shape[0];
    throw Error(fmt::format("input '{}' feeds no embedding: token inputs must go into an embedding", graph.node(input).name));
}

std::uint64_t epoch_seed(std::uint64_t seed, int epoch) { return seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(epoch) + 1; }

struct Batch {
    Tensor left, right, label;
};

Batch make_batch(const Graph& g, const SiameseRoles& roles, std::int64_t n) {
    return {Tensor({n, roles.shape.left_length}, g.node(roles.left_input).outputs[0].dtype),
            Tensor({n, roles.shape.right_length}, g.node(roles.right_input).outputs[0].dtype), Tensor(Shape{n})};
}

void feed(Executor& ex, const SiameseRoles& roles, const Batch& b) {
    ex.set(roles.left_input, b.left);
    ex.set(roles.right_input, b.right);
    ex.set(roles.label_input, b.label);
}

}  // namespace

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

std::map<std::string, Tensor> optimizer_tensors(const io::Checkpoint& ckpt) {
    std::map<std::string, Tensor> out;
    for (const auto& [name, t] : ckpt.tensors)
        if (name.find(".adam_") != std::string::npos || name.find(".sgd_momentum") != std::string::npos) out[name] = t;
    return out;
}


SiameseRoles find_roles(const Graph& graph) {
    SiameseRoles r;
    for (int i : graph.inputs()) {
        const TensorType& t = graph.node(i).outputs[0];
        if (t.dtype != DType::f32) {
            if (r.left_input < 0) r.left_input = i;
            else if (r.right_input < 0) r.right_input = i;
            else throw Error("training expects two token inputs (left and right), the graph has more");
        } else if (r.label_input < 0) {
            r.label_input = i;
        } else {
            throw Error("training expects one float input (the label), the graph has more");
        }
    }
    if (r.left_input < 0 || r.right_input < 0 || r.label_input < 0)
        throw Error("training expects two token inputs (int32/int64) and one float label input");
    int cosine = -1;
    for (std::size_t i = 0; i < graph.nodes().size(); ++i)
        if (graph.nodes()[i].op_name == "cosine") {
            if (cosine >= 0) throw Error("training expects one cosine node joining the branches, the graph has more");
            cosine = static_cast<int>(i);
        }
    if (cosine < 0) throw Error("training expects a cosine node joining the two branches");
    r.similarity = {cosine, 0};
    r.left_embedding = graph.node(cosine).inputs[0];
    r.right_embedding = graph.node(cosine).inputs[1];
    r.shape = {graph.node(r.left_input).name, graph.node(r.right_input).name, graph.node(r.left_input).outputs[0].shape.at(1),
               graph.node(r.right_input).outputs[0].shape.at(1), vocabulary_of(graph, r.left_input), vocabulary_of(graph, r.right_input)};
    return r;
}

std::string EpochMetrics::to_json() const {
    nlohmann::json j;
    auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
    j["epoch"] = epoch;
    j["train_loss"] = train_loss;
    j["val_loss"] = opt(val_loss);
    j["val_auc"] = opt(val_auc);
    j["pos_sim"] = opt(pos_sim);
    j["neg_sim"] = opt(neg_sim);
    j["spread"] = opt(spread);
    j["samples_per_s"] = samples_per_s;
    if (ranks > 1) {
        j["ranks"] = ranks;
        j["allreduce_s_per_step"] = allreduce_s_per_step;
    }
    return j.dump();
}

std::string positive_only_message(const spec::Spec& spec) {
    return fmt::format(
        "{}: every pair is labelled similar (y = 1) and train.negatives is 0, so there are no dissimilar pairs. "
        "With positives only, the contrastive loss is minimized by mapping every input to the same point, and the "
        "embeddings collapse (Hadsell, Chopra and LeCun 2006, section 3). Fix: sample dissimilar pairs with "
        "`train.negatives: 1` (or --set train.negatives=1), or give labels with dissimilar pairs. "
        "--allow-positive-only goes on anyway.",
        spec.path);
}

namespace {
// What a failed run leaves behind: the checkpoint of the last finished epoch, untouched.
std::string kept_checkpoint(const std::string& path) {
    if (fs::exists(path)) return fmt::format("The last good checkpoint, {}, is kept as it was.", path);
    return "No epoch finished, so there is no checkpoint.";
}
}  // namespace

std::vector<EpochMetrics> train(const spec::Spec& spec, const BuiltGraph& built, const TrainOptions& options) {
    const Graph& graph = built.graph;
    const spec::TrainSpec& cfg = spec.train;
    const SiameseRoles roles = find_roles(graph);
    // Data-parallel over ranks: every rank plans the same epochs and takes its
    // share of each batch; rank 0 alone writes files and reports.
    Communicator one_process;
    Communicator& comm = options.communicator ? *options.communicator : one_process;
    const int rank = comm.rank(), ranks = comm.size();
    const bool lead = rank == 0;

    // Data, the validation split, and the guard against positive-only data.
    const PairSet pairs = load_pairs(spec.data, roles.shape);
    const bool all_similar = std::all_of(pairs.label.begin(), pairs.label.end(), [](float y) { return y == 1.0f; });
    if (all_similar && cfg.negatives == 0 && !options.allow_positive_only) throw Error(positive_only_message(spec));
    const Split split = split_validation(pairs, cfg.validation, cfg.seed);
    if (split.train.count() == 0) throw Error(fmt::format("{}: no training pairs left after holding out train.validation = {}", spec.path, cfg.validation));
    std::mt19937_64 validation_rng(epoch_seed(cfg.seed, -1));
    // Validation measures separation, so it needs dissimilar pairs even when
    // training goes without them (--allow-positive-only): that is how the collapse shows.
    const bool validation_all_similar =
        std::all_of(split.validation.label.begin(), split.validation.label.end(), [](float y) { return y == 1.0f; });
    const std::int64_t validation_negatives = validation_all_similar ? std::max<std::int64_t>(cfg.negatives, 1) : cfg.negatives;
    const std::vector<Sample> validation = plan_epoch(split.validation, validation_negatives, false, validation_rng);

    // Where the run's files go; an unwritable folder is found before training.
    const fs::path out(options.out_dir);
    std::error_code ec;
    if (lead) fs::create_directories(out, ec);
    if (ec) throw Error(fmt::format("{}: cannot create the output folder: {}", out.string(), ec.message()));
    const std::string checkpoint_path = (out / "checkpoint.safetensors").string();
    const std::string metrics_path = (out / "metrics.jsonl").string();

    Executor ex(graph);
    ex.set_profiling(options.profile);
    initialize_parameters(ex, cfg.seed);
    std::unique_ptr<Optimizer> optimizer = make_optimizer(cfg.optimizer);
    int first_epoch = 1;
    // A checkpoint written mid-epoch (on a stop request) says how far that epoch got.
    std::int64_t first_step = 0;
    double resumed_loss_sum = 0, resumed_spread_sum = 0;
    std::int64_t resumed_spread_count = 0;
    if (options.resume) {
        if (!fs::exists(checkpoint_path)) throw Error(fmt::format("--resume: {} does not exist; start without --resume", checkpoint_path));
        const io::Checkpoint ckpt = io::read_safetensors(checkpoint_path);
        const auto state = optimizer_tensors(ckpt);
        load_parameters(ex, ckpt, state, checkpoint_path);
        try {
            first_epoch = std::stoi(ckpt.metadata.at("epoch")) + 1;
            optimizer->load_state(state, std::stoll(ckpt.metadata.at("optimizer_steps")));
            if (ckpt.metadata.count("step")) {
                first_step = std::stoll(ckpt.metadata.at("step"));
                // Hexadecimal floats: the sums come back bit for bit.
                resumed_loss_sum = std::stod(ckpt.metadata.at("epoch_loss_sum"));
                resumed_spread_sum = std::stod(ckpt.metadata.at("epoch_spread_sum"));
                resumed_spread_count = std::stoll(ckpt.metadata.at("epoch_spread_count"));
            }
        } catch (const std::logic_error&) {  // missing keys (out_of_range) or values that are not numbers (invalid_argument)
            throw Error(fmt::format("{}: not a training checkpoint (expected whole numbers epoch and optimizer_steps, and for a run stopped "
                                    "mid-epoch step and the epoch's sums, in its metadata)",
                                    checkpoint_path));
        }
    } else if (!options.init_checkpoint.empty()) {
        if (!fs::exists(options.init_checkpoint)) throw Error(fmt::format("--init: {} does not exist", options.init_checkpoint));
        const io::Checkpoint ckpt = io::read_safetensors(options.init_checkpoint);
        load_parameters(ex, ckpt, optimizer_tensors(ckpt), options.init_checkpoint);
    } else if (!options.initial_parameters.empty()) {
        io::Checkpoint given;
        given.tensors = options.initial_parameters;
        load_parameters(ex, given, {}, "the initial parameters");
    }
    if (lead) {
        std::ofstream probe(metrics_path, options.resume ? std::ios::app : std::ios::trunc);
        if (!probe) throw Error(fmt::format("{}: cannot write metrics: {}", metrics_path, std::strerror(errno)));
    }

    // The checkpoint: weights, optimizer state, and where the run is. `partial`
    // holds the metadata of an epoch stopped after some of its steps.
    auto write_checkpoint = [&](int completed_epochs, const std::map<std::string, std::string>& partial) {
        io::Checkpoint ckpt;
        for (int p : graph.parameters()) ckpt.tensors[graph.node(p).name] = ex.value(ValueRef{p, 0});
        for (auto& [name, t] : optimizer->state()) ckpt.tensors[name] = t;
        ckpt.metadata = {{"format", "graphrun"},
                         {"spec", spec.name},
                         {"epoch", std::to_string(completed_epochs)},
                         {"epochs", std::to_string(cfg.epochs)},
                         {"optimizer", cfg.optimizer.type},
                         {"optimizer_steps", std::to_string(optimizer->steps())},
                         {"seed", std::to_string(cfg.seed)}};
        ckpt.metadata.insert(partial.begin(), partial.end());
        if (lead) io::write_safetensors(checkpoint_path, ckpt);
    };
    // Under MPI a stop request is summed with the gradients, so every rank stops at the same step.
    auto stop_asked_here = [&] { return options.stop && options.stop->load(); };
    bool stop_agreed = false;
    auto stop_requested = [&] { return ranks == 1 ? stop_asked_here() : stop_agreed; };
    // One buffer a step for the allreduce: every parameter's gradient, then the tail below.
    std::int64_t gradient_elements = 0;
    for (int p : graph.parameters()) gradient_elements += element_count(graph.node(p).outputs[0].shape);
    enum Tail { kLoss, kRows, kFailed, kStop, kSpreadSum, kSpreadCount, kTailSize };
    std::vector<float> fused(ranks > 1 ? static_cast<std::size_t>(gradient_elements) + kTailSize : 0);

    std::vector<EpochMetrics> history;
    const std::int64_t batch_size = cfg.batch_size;
    Batch batch = make_batch(graph, roles, batch_size);
    for (int epoch = first_epoch; epoch <= cfg.epochs; ++epoch) {
        std::mt19937_64 rng(epoch_seed(cfg.seed, epoch));
        const std::vector<Sample> samples = plan_epoch(split.train, cfg.negatives, cfg.shuffle, rng);
        const auto count = static_cast<std::int64_t>(samples.size());
        const std::int64_t steps = (count + batch_size - 1) / batch_size;
        EpochMetrics m;
        m.epoch = epoch;
        const bool resuming_here = epoch == first_epoch && first_step > 0;
        double loss_sum = resuming_here ? resumed_loss_sum : 0, spread_sum = resuming_here ? resumed_spread_sum : 0;
        std::int64_t spread_count = resuming_here ? resumed_spread_count : 0;
        bool warned = false;
        double allreduce_s = 0;  // this epoch's time in MPI_Allreduce
        const auto start = std::chrono::steady_clock::now();
        for (std::int64_t step = resuming_here ? first_step : 0; step < steps; ++step) {
            const std::int64_t first = step * batch_size, n = std::min(batch_size, count - first);
            // This rank's rows of the batch. A rank left without rows (a last
            // batch smaller than the ranks) runs one row and counts it zero times.
            const auto [offset, mine] = split_rows(n, ranks, rank);
            const std::int64_t rows = std::max<std::int64_t>(mine, 1);
            if (rows != batch.label.numel()) batch = make_batch(graph, roles, rows);
            fill_batch(split.train, samples, std::min(first + offset, count - 1), rows, batch.left, batch.right, batch.label);
            feed(ex, roles, batch);
            float loss = forward_backward(ex, built.loss);
            const bool finite_here = std::isfinite(loss);
            if (!finite_here && ranks == 1)
                throw TrainingFailure(fmt::format("epoch {} step {}: {}. {}", epoch, step + 1, non_finite_loss(loss, ex), kept_checkpoint(checkpoint_path)));
            double step_spread_sum = 0;
            std::int64_t step_spread_count = 0;
            for (ValueRef e : {roles.left_embedding, roles.right_embedding}) {
                const Tensor& emb = ex.value(e);
                if (auto sp = embedding_spread(emb.f32(), emb.dim(0), emb.numel() / emb.dim(0))) {
                    step_spread_sum += *sp;
                    ++step_spread_count;
                }
            }
            if (ranks > 1) {
                // The batch's mean gradient: each rank's mean times its rows, summed, over all rows.
                std::size_t at = 0;
                if (finite_here) {
                    for (int p : graph.parameters()) {
                        const Tensor& g = ex.grad(p);
                        for (std::int64_t j = 0; j < g.numel(); ++j) fused[at++] = g.f32()[j] * static_cast<float>(mine);
                    }
                } else {
                    std::fill(fused.begin(), fused.begin() + gradient_elements, 0.0f);
                }
                float* tail = fused.data() + gradient_elements;
                tail[kLoss] = finite_here ? loss * static_cast<float>(mine) : 0.0f;
                tail[kRows] = static_cast<float>(mine);
                tail[kFailed] = finite_here ? 0.0f : 1.0f;
                tail[kStop] = stop_asked_here() ? 1.0f : 0.0f;
                tail[kSpreadSum] = static_cast<float>(step_spread_sum);
                tail[kSpreadCount] = static_cast<float>(step_spread_count);
                const auto reduce_start = std::chrono::steady_clock::now();
                comm.allreduce_sum(fused);
                allreduce_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - reduce_start).count();
                if (tail[kFailed] > 0)
                    throw TrainingFailure(finite_here ? fmt::format("epoch {} step {}: rank {} stops: another rank's loss is not finite", epoch, step + 1, rank)
                                                      : fmt::format("epoch {} step {}: rank {}: {}. {}", epoch, step + 1, rank, non_finite_loss(loss, ex),
                                                                    kept_checkpoint(checkpoint_path)));
                at = 0;
                const float scale = 1.0f / tail[kRows];
                for (int p : graph.parameters()) {
                    Tensor g = ex.grad(p);  // shares the executor's storage
                    for (std::int64_t j = 0; j < g.numel(); ++j) g.f32()[j] = fused[at++] * scale;
                }
                loss = tail[kLoss] * scale;
                stop_agreed = tail[kStop] > 0;
                step_spread_sum = tail[kSpreadSum];
                step_spread_count = static_cast<std::int64_t>(tail[kSpreadCount]);
            }
            apply_gradients(ex, *optimizer, cfg.clip_norm, fmt::format("epoch {} step {}", epoch, step + 1), kept_checkpoint(checkpoint_path));
            loss_sum += loss * static_cast<double>(n);
            // Embedding spread: collapse shows as every embedding pointing one way.
            if (step_spread_count) {
                spread_sum += step_spread_sum;
                spread_count += step_spread_count;
                const double s = step_spread_sum / static_cast<double>(step_spread_count);
                if (s > 0.99 && !warned && options.on_warning && lead) {
                    warned = true;
                    options.on_warning(fmt::format("epoch {} step {}: the embeddings have collapsed: the mean cosine between different "
                                                   "samples' embeddings is {:.4f} (> 0.99); every input maps to nearly the same point",
                                                   epoch, step + 1, s));
                }
            }
            if (options.on_step && lead) {
                const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                const double rate = static_cast<double>(first + n - (resuming_here ? first_step * batch_size : 0)) / std::max(elapsed, 1e-9);
                options.on_step({epoch, static_cast<int>(cfg.epochs), step + 1, steps, loss, rate, static_cast<double>(count - first - n) / rate});
            }
            if (stop_requested() && step + 1 < steps) {
                write_checkpoint(epoch - 1, {{"step", std::to_string(step + 1)},
                                             {"epoch_loss_sum", fmt::format("{:a}", loss_sum)},
                                             {"epoch_spread_sum", fmt::format("{:a}", spread_sum)},
                                             {"epoch_spread_count", std::to_string(spread_count)}});
                throw TrainingInterrupted(fmt::format("stopped at epoch {} step {} of {}; checkpoint {}", epoch, step + 1, steps, checkpoint_path),
                                          checkpoint_path);
            }
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        m.train_loss = loss_sum / static_cast<double>(std::max<std::int64_t>(count, 1));
        const std::int64_t trained_here = count - std::min(count, (resuming_here ? first_step : 0) * batch_size);  // this process's share
        m.samples_per_s = static_cast<double>(trained_here) / std::max(seconds, 1e-9);
        if (spread_count) m.spread = spread_sum / static_cast<double>(spread_count);
        if (ranks > 1) {
            m.ranks = ranks;
            m.allreduce_s_per_step = allreduce_s / static_cast<double>(std::max<std::int64_t>(steps - (resuming_here ? first_step : 0), 1));
        }

        // Validation: never trained on, the same pairs and negatives every epoch.
        if (!validation.empty()) {
            ex.set_profiling(false);  // the profile covers the training steps
            double val_loss = 0, pos = 0, neg = 0, npos = 0, nneg = 0;
            const auto vcount = static_cast<std::int64_t>(validation.size());
            for (std::int64_t first = 0; first < vcount; first += batch_size) {
                if ((first / batch_size) % ranks != rank) continue;  // the ranks take turns; the sums are reduced below
                const std::int64_t n = std::min(batch_size, vcount - first);
                if (n != batch.label.numel()) batch = make_batch(graph, roles, n);
                fill_batch(split.validation, validation, first, n, batch.left, batch.right, batch.label);
                feed(ex, roles, batch);
                ex.forward(Executor::Mode::inference);
                val_loss += ex.value(built.loss).f32()[0] * static_cast<double>(n);
                const float* sim = ex.value(roles.similarity).f32();
                for (std::int64_t k = 0; k < n; ++k) {
                    const float y = batch.label.f32()[k];
                    m.val_similarity.push_back(sim[k]);
                    m.val_label.push_back(y);
                    (y == 1.0f ? pos : neg) += sim[k];
                    (y == 1.0f ? npos : nneg) += 1;
                }
            }
            if (ranks > 1) {
                double sums[] = {val_loss, pos, neg, npos, nneg};
                comm.allreduce_sum(sums);
                val_loss = sums[0], pos = sums[1], neg = sums[2], npos = sums[3], nneg = sums[4];
                comm.allgather(m.val_similarity);
                comm.allgather(m.val_label);
            }
            m.val_loss = val_loss / static_cast<double>(vcount);
            m.val_auc = roc_auc(m.val_similarity, m.val_label);
            if (npos) m.pos_sim = pos / npos;
            if (nneg) m.neg_sim = neg / nneg;
        }

        write_checkpoint(epoch, {});
        if (lead) std::ofstream(metrics_path, std::ios::app) << m.to_json() << "\n";
        ex.set_profiling(options.profile);
        if (options.on_epoch && lead) options.on_epoch(m);
        history.push_back(std::move(m));
        if (stop_requested() && epoch < cfg.epochs)
            throw TrainingInterrupted(fmt::format("stopped after epoch {}; checkpoint {}", epoch, checkpoint_path), checkpoint_path);
    }
    if (options.on_finish) options.on_finish(ex);  // every rank: each holds the trained weights
    return history;
}

}  // namespace graphrun::train
