#include "engine/train/siamese_task.hpp"

#include <algorithm>
#include <optional>
#include <random>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/train/metrics.hpp"
#include "engine/train/task.hpp"

namespace graphrun::train {

namespace {

// The vocabulary of the embedding that reads an id input.
std::int64_t vocabulary_of(const Graph& graph, int input) {
    if (const std::int64_t vocab = embedding_vocabulary(graph, input)) return vocab;
    throw Error(fmt::format("input '{}' feeds no embedding: token inputs must go into an embedding", graph.node(input).name));
}

class SiameseTask final : public Task {
public:
    SiameseTask(const spec::Spec& spec, const BuiltGraph& built, const TrainOptions& options)
        : roles_(find_roles(built.graph)), cfg_(spec.train) {
        if (spec.data.kind == spec::DataSpec::Kind::columns)
            throw spec::SpecError(spec.data.loc, "task siamese reads pairs: data.synthetic, data.files or data.text (data.inputs is for task classify)");
        if (spec.data.kind == spec::DataSpec::Kind::text) {
            load_text(spec.data.text);
        } else {
            split_ = split_validation(load_pairs(spec.data, roles_.shape), cfg_.validation, cfg_.seed);
        }
        // A ranking objective's negatives are the batch's other pairs: it trains
        // on similar pairs alone, and sampled dissimilar pairs would be taken
        // for similar ones. So train.negatives defaults to 0 there, and more is refused.
        ranking_loss_ = ranking_objective(built);
        negatives_ = cfg_.negatives;
        if (!ranking_loss_.empty()) {
            if (cfg_.negatives > 0 && cfg_.locs.count("negatives"))
                throw spec::SpecError(cfg_.locs.at("negatives"),
                                      fmt::format("train.negatives is {}, but the loss '{}' ({}) takes its negatives from the batch: every other "
                                                  "pair's texts; sampled dissimilar pairs would be ranked as similar ones. Remove train.negatives "
                                                  "(or set it to 0)",
                                                  cfg_.negatives, spec.loss, ranking_loss_));
            negatives_ = 0;
        }
        const bool all_similar = std::all_of(split_.train.label.begin(), split_.train.label.end(), [](float y) { return y == 1.0f; }) &&
                                 std::all_of(split_.validation.label.begin(), split_.validation.label.end(), [](float y) { return y == 1.0f; });
        if (all_similar && negatives_ == 0 && ranking_loss_.empty()) {
            if (!options.allow_positive_only) throw Error(positive_only_message(spec));
            positive_only_ = positive_only_message(spec);
        }
        if (split_.train.count() == 0)
            throw Error(fmt::format("{}: no training pairs left after holding out train.validation = {}", spec.path, cfg_.validation));
        validation_ = plan_validation(split_.validation, negatives_, cfg_.seed);
        if (cfg_.length_buckets.window > 0) {
            left_lengths_ = row_lengths(split_.train.left, split_.train.left_length);
            right_lengths_ = row_lengths(split_.train.right, split_.train.right_length);
        }
    }

    std::vector<int> length_bucketed_inputs() const override {
        if (cfg_.length_buckets.window == 0) return {};
        return {roles_.left_input, roles_.right_input};
    }

    const text::Tokenizer* tokenizer() const override { return tokenizer_.get(); }

    std::vector<std::string> data_report() const override {
        std::vector<std::string> lines;
        const std::int64_t count = split_.train.count() + split_.validation.count();
        std::int64_t similar = 0;
        for (const PairSet* p : {&split_.train, &split_.validation}) similar += std::count(p->label.begin(), p->label.end(), 1.0f);
        if (ranking_loss_.empty()) {
            lines.push_back(fmt::format("data: {} pairs, {} labelled similar, {} dissimilar; train.negatives {} adds {} dissimilar pairs an epoch",
                                        count, similar, count - similar, negatives_, negatives_ * split_.train.count()));
        } else {
            const auto train_similar = std::count(split_.train.label.begin(), split_.train.label.end(), 1.0f);
            lines.push_back(fmt::format("data: {} pairs, {} labelled similar, {} dissimilar; the loss ({}) trains on the {} similar training "
                                        "pairs, in batches of {} with no text twice, each pair's negatives the batch's other texts{}",
                                        count, similar, count - similar, ranking_loss_, train_similar, cfg_.batch_size,
                                        train_similar == split_.train.count() ? "" : " (the dissimilar training pairs are not used)"));
            const std::int64_t left_out = plan_pairs(1).left_out;
            if (left_out > 0)
                lines.push_back(fmt::format("  epoch 1 leaves out {} pairs whose texts repeat in every batch they would fit (another epoch, other pairs)",
                                            left_out));
        }
        for (const auto& [name, ids, length, tokens] :
             {std::tuple{roles_.shape.left_name, &split_.train.left, split_.train.left_length, &split_.train.left_tokens},
              std::tuple{roles_.shape.right_name, &split_.train.right, split_.train.right_length, &split_.train.right_tokens}}) {
            const auto s = length_stats(*ids, length);
            lines.push_back(fmt::format("  {}: length min {}, median {}, max {} of {}; padding {:.1f}% of ids", name, s.min, s.median, s.max, length,
                                        100 * s.padding_share));
            if (const auto t = token_stats(*tokens, length))
                lines.push_back(fmt::format("  {}: {} tokens per text: 50% {}, 90% {}, 99% {}; {:.1f}% of the training texts are cut at {}", name,
                                            tokenizer_->config().type, t->p50, t->p90, t->p99, 100 * t->cut_share, length));
        }
        return lines;
    }

    std::vector<std::string> data_warnings() const override {
        std::vector<std::string> warnings;
        if (!positive_only_.empty()) warnings.push_back(positive_only_);
        for (const auto& [name, length, tokens] : {std::tuple{roles_.shape.left_name, split_.train.left_length, &split_.train.left_tokens},
                                                   std::tuple{roles_.shape.right_name, split_.train.right_length, &split_.train.right_tokens}})
            if (const auto t = token_stats(*tokens, length); t && t->cut_share > 0.01)
                warnings.push_back(fmt::format("{:.1f}% of the training texts for input '{}' are longer than its {} tokens and are cut; "
                                               "a length of {} would keep 99% whole (--set inputs.{}.shape=[{}])",
                                               100 * t->cut_share, name, length, t->p99, name, t->p99));
        return warnings;
    }

    std::optional<double> decision_threshold() const override {
        const auto choice = best_accuracy_threshold(similarity_, label_);
        return choice ? std::optional<double>(choice->threshold) : std::nullopt;
    }

    const std::vector<MetricInfo>& metrics() const override {
        static const std::vector<MetricInfo> m{
            {"val_auc", "{:.3f}", true}, {"pos_sim", "{:+.3f}", true}, {"neg_sim", "{:+.3f}", false}, {"spread", "{:.3f}", false}};
        return m;
    }

    std::int64_t plan_epoch(int epoch) override {
        samples_ = plan_pairs(epoch).samples;
        return static_cast<std::int64_t>(samples_.size());
    }

    void fill_training(std::int64_t first, Batch& batch) const override {
        if (cfg_.length_buckets.window > 0) {
            // Each token input cut to the batch's longest row, rounded up.
            std::int32_t left = 0, right = 0;
            for (std::int64_t k = 0; k < batch.rows; ++k) {
                const Sample& s = samples_[static_cast<std::size_t>(first + k)];
                left = std::max(left, left_lengths_[static_cast<std::size_t>(s.left_row)]);
                right = std::max(right, right_lengths_[static_cast<std::size_t>(s.right_row)]);
            }
            const std::int64_t multiple = cfg_.length_buckets.multiple;
            batch.set_width(roles_.left_input, bucket_length(left, multiple, split_.train.left_length));
            batch.set_width(roles_.right_input, bucket_length(right, multiple, split_.train.right_length));
        }
        fill(split_.train, samples_, first, batch);
    }

    // The spread of both branches' embeddings: collapse shows as every embedding
    // pointing one way (cosine), or at one point (a distance).
    std::size_t step_sums() const override { return 2; }
    void measure_step(const Executor& ex, std::span<double> sums) const override {
        for (ValueRef e : {roles_.left_embedding, roles_.right_embedding}) {
            const Tensor& emb = ex.value(e);
            const SpreadOf of = roles_.metric.is_distance() ? SpreadOf::points : SpreadOf::directions;
            if (auto sp = embedding_spread(emb.f32(), emb.dim(0), emb.numel() / emb.dim(0), of)) {
                sums[0] += *sp;
                sums[1] += 1;
            }
        }
    }
    void after_step(std::span<const double> sums, int epoch, std::int64_t step, const std::function<void(const std::string&)>& warn) override {
        if (sums[1] == 0) return;
        spread_sum_ += sums[0];
        spread_count_ += static_cast<std::int64_t>(sums[1]);
        const double s = sums[0] / sums[1];
        if (s > 0.99 && !warned_ && warn) {
            warned_ = true;
            warn(fmt::format("epoch {} step {}: the embeddings have collapsed: the mean {} between different "
                             "samples' embeddings is {:.4f} (> 0.99); every input maps to nearly the same point",
                             epoch, step, roles_.metric.is_distance() ? "inner product (over their mean squared norm)" : "cosine", s));
        }
    }
    void start_epoch_sums() override {
        spread_sum_ = 0;
        spread_count_ = 0;
        warned_ = false;
    }
    void end_training_epoch(EpochMetrics& m) override {
        if (spread_count_) set(m, "spread", spread_sum_ / static_cast<double>(spread_count_));
    }
    // Hexadecimal floats: the sums come back bit for bit.
    std::map<std::string, std::string> save_epoch_sums() const override {
        return {{"epoch_spread_sum", fmt::format("{:a}", spread_sum_)}, {"epoch_spread_count", std::to_string(spread_count_)}};
    }
    void restore_epoch_sums(const std::map<std::string, std::string>& meta) override {
        spread_sum_ = std::stod(meta.at("epoch_spread_sum"));
        spread_count_ = std::stoll(meta.at("epoch_spread_count"));
    }

    // A ranking loss over validation batches that hold dissimilar pairs would
    // rank them as similar ones: its figure would mean nothing.
    bool has_validation_loss() const override { return ranking_loss_.empty(); }

    std::int64_t validation_size() const override { return static_cast<std::int64_t>(validation_.size()); }
    void fill_validation(std::int64_t first, Batch& batch) const override { fill(split_.validation, validation_, first, batch); }
    std::vector<ValueRef> validation_targets() const override { return {roles_.join}; }
    void start_validation() override {
        similarity_.clear();
        label_.clear();
    }
    void observe_validation(const Executor& ex, const Batch& batch) override {
        // The model's similarity: the cosine, or minus the distance.
        const float* joined = ex.value(roles_.join).f32();
        const float* y = batch.tensors[label_slot(batch)].f32();
        for (std::int64_t k = 0; k < batch.rows; ++k) similarity_.push_back(roles_.similarity(joined[k]));
        label_.insert(label_.end(), y, y + batch.rows);
    }
    void end_validation(Communicator& comm, EpochMetrics& m) override {
        comm.allgather(similarity_);
        comm.allgather(label_);
        double pos = 0, neg = 0, npos = 0, nneg = 0;
        for (std::size_t k = 0; k < similarity_.size(); ++k) {
            (label_[k] == 1.0f ? pos : neg) += similarity_[k];
            (label_[k] == 1.0f ? npos : nneg) += 1;
        }
        if (auto auc = roc_auc(similarity_, label_)) set(m, "val_auc", *auc);
        if (npos) set(m, "pos_sim", pos / npos);
        if (nneg) set(m, "neg_sim", neg / nneg);
        m.val_similarity = similarity_;
        m.val_label = label_;
    }

private:
    // data.text: the training split's texts teach the tokenizer (never the
    // validation texts), then every split is encoded with it.
    void load_text(const spec::TextData& data) {
        const TextPairs all = read_text_pairs(data.path);
        std::vector<char> held(all.label.size(), 0);
        if (data.validation.empty()) held = validation_rows(static_cast<std::int64_t>(all.label.size()), cfg_.validation, cfg_.seed);
        std::vector<std::string> training_texts;
        for (std::size_t i = 0; i < all.label.size(); ++i)
            if (!held[i]) training_texts.push_back(all.left[i]);
        for (std::size_t i = 0; i < all.label.size(); ++i)
            if (!held[i]) training_texts.push_back(all.right[i]);
        tokenizer_ = make_text_tokenizer(data.tokenizer, roles_.shape, training_texts);
        const PairSet pairs = encode_text_pairs(all, roles_.shape, *tokenizer_);
        if (data.validation.empty()) {
            split_ = split_validation(pairs, cfg_.validation, cfg_.seed);
        } else {
            split_.train = pairs;
            split_.validation = encode_text_pairs(read_text_pairs(data.validation), roles_.shape, *tokenizer_);
        }
    }

    // Epoch `epoch`'s samples (and, for a ranking loss, the pairs it leaves out).
    BatchNegativesEpoch plan_pairs(int epoch) const {
        std::mt19937_64 rng(epoch_seed(cfg_.seed, epoch));
        const auto& buckets = cfg_.length_buckets;
        const auto sort_by_length = [&](std::vector<Sample>& samples) {
            sort_windows_by_length(samples, split_.train, left_lengths_, right_lengths_, cfg_.batch_size, buckets.window, buckets.multiple);
        };
        if (!ranking_loss_.empty())
            return plan_batch_negatives_epoch(split_.train, cfg_.batch_size, cfg_.shuffle, rng,
                                              buckets.window > 0 ? std::function<void(std::vector<Sample>&)>(sort_by_length) : nullptr);
        BatchNegativesEpoch planned{train::plan_epoch(split_.train, negatives_, cfg_.shuffle, rng), 0};
        if (buckets.window > 0) {
            sort_by_length(planned.samples);
            if (cfg_.shuffle) shuffle_batches(planned.samples, cfg_.batch_size, rng);
        }
        return planned;
    }

    struct TokenStats {
        std::int64_t p50, p90, p99;
        double cut_share;
    };
    static std::optional<TokenStats> token_stats(std::vector<std::int64_t> tokens, std::int64_t length) {
        if (tokens.empty()) return std::nullopt;
        std::sort(tokens.begin(), tokens.end());
        const auto at = [&](double q) { return tokens[static_cast<std::size_t>(q * static_cast<double>(tokens.size() - 1) + 0.5)]; };
        const auto cut = std::count_if(tokens.begin(), tokens.end(), [&](std::int64_t n) { return n > length; });
        return TokenStats{at(0.5), at(0.9), at(0.99), static_cast<double>(cut) / static_cast<double>(tokens.size())};
    }

    void fill(const PairSet& pairs, const std::vector<Sample>& samples, std::int64_t first, Batch& batch) const {
        fill_batch(pairs, samples, first, batch.rows, batch.of(roles_.left_input), batch.of(roles_.right_input), batch.of(roles_.label_input));
    }
    std::size_t label_slot(const Batch& batch) const {
        return static_cast<std::size_t>(std::find(batch.nodes.begin(), batch.nodes.end(), roles_.label_input) - batch.nodes.begin());
    }
    void set(EpochMetrics& m, const std::string& name, double value) const {
        for (auto& metric : m.metrics)
            if (metric.name == name) metric.value = value;
    }

    SiameseRoles roles_;
    spec::TrainSpec cfg_;
    std::string ranking_loss_;  // the kind of loss whose negatives are the batch's other pairs, or ""
    std::int64_t negatives_ = 0;  // dissimilar pairs sampled per similar pair
    std::unique_ptr<text::Tokenizer> tokenizer_;  // data.text
    std::string positive_only_;                   // the guard's message, when --allow-positive-only let it pass
    Split split_;
    std::vector<Sample> samples_, validation_;
    std::vector<std::int32_t> left_lengths_, right_lengths_;  // of the training rows (train.length_buckets)
    double spread_sum_ = 0;
    std::int64_t spread_count_ = 0;
    bool warned_ = false;
    std::vector<float> similarity_, label_;
};

}  // namespace

SiameseRoles find_roles(const Graph& graph) {
    SiameseRoles r;
    for (int i : graph.inputs()) {
        const TensorType& t = graph.node(i).outputs[0];
        if (t.dtype != DType::f32) {
            if (r.left_input < 0) r.left_input = i;
            else if (r.right_input < 0) r.right_input = i;
            else throw Error("task siamese expects two token inputs (left and right), the graph has more");
        } else if (r.label_input < 0) {
            r.label_input = i;
        } else {
            throw Error("task siamese expects one float input (the label), the graph has more");
        }
    }
    if (r.left_input < 0 || r.right_input < 0 || r.label_input < 0)
        throw Error("task siamese expects two token inputs (int32/int64) and one float label input");
    // The joining nodes: every cosine, and the output node of every distance composite.
    std::vector<int> joins;
    for (std::size_t i = 0; i < graph.nodes().size(); ++i) {
        const Node& n = graph.nodes()[i];
        const bool distance = (n.composite_kind == "euclidean" || n.composite_kind == "manhattan") && n.name == n.composite_name;
        if (n.op_name == "cosine" || distance) joins.push_back(static_cast<int>(i));
    }
    const auto described = [&](int i) {
        const Node& n = graph.node(i);
        return fmt::format("'{}' ({})", n.name, n.op_name == "cosine" ? "cosine" : n.composite_kind);
    };
    if (joins.size() != 1) {
        std::vector<std::string> names;
        for (int i : joins) names.push_back(described(i));
        throw Error(fmt::format("task siamese expects one node joining the two branches, a cosine, euclidean or manhattan node whose "
                                "inputs are the two embeddings; the graph has {}",
                                joins.empty() ? "none" : fmt::format("{}: {}", joins.size(), fmt::join(names, ", "))));
    }
    const Node& join = graph.node(joins[0]);
    r.join = {joins[0], 0};
    if (join.op_name == "cosine") {
        r.metric = {text::MetricKind::cosine, join.attrs.number("eps")};
        r.left_embedding = join.inputs[0];
        r.right_embedding = join.inputs[1];
    } else {
        const auto difference = graph.find(join.name + "/difference");
        if (!difference) throw Error(fmt::format("node '{}': a {} distance without its node '{}/difference'", join.name, join.composite_kind, join.name));
        r.left_embedding = graph.node(*difference).inputs[0];
        r.right_embedding = graph.node(*difference).inputs[1];
        r.metric.kind = *text::metric_kind(join.composite_kind);
        r.metric.eps = 0;
        if (r.metric.kind == text::MetricKind::euclidean) {
            const auto eps = graph.find(join.name + "/eps");
            if (!eps) throw Error(fmt::format("node '{}': a euclidean distance without its node '{}/eps'", join.name, join.name));
            r.metric.eps = graph.node(*eps).attrs.number("value");
        }
    }
    r.shape = {graph.node(r.left_input).name, graph.node(r.right_input).name, graph.node(r.left_input).outputs[0].shape.at(1),
               graph.node(r.right_input).outputs[0].shape.at(1), vocabulary_of(graph, r.left_input), vocabulary_of(graph, r.right_input)};
    return r;
}

std::string ranking_objective(const BuiltGraph& built) {
    // Scores of every pair against every other (a cosine_matrix) among the
    // nodes the loss is computed from: the batch supplies the negatives.
    const Graph& graph = built.graph;
    std::vector<int> stack{built.loss.node};
    std::vector<char> seen(graph.nodes().size(), 0);
    while (!stack.empty()) {
        const int i = stack.back();
        stack.pop_back();
        if (seen[static_cast<std::size_t>(i)]) continue;
        seen[static_cast<std::size_t>(i)] = 1;
        const Node& node = graph.node(i);
        if (node.op_name == "cosine_matrix") {
            const Node& loss = graph.node(built.loss.node);
            return loss.composite_kind.empty() ? loss.op_name : loss.composite_kind;
        }
        for (const ValueRef& in : node.inputs) stack.push_back(in.node);
    }
    return "";
}

std::vector<Sample> plan_validation(const PairSet& validation, std::int64_t negatives, std::uint64_t seed) {
    std::mt19937_64 rng(epoch_seed(seed, -1));
    // Validation measures separation, so it needs dissimilar pairs even when
    // training goes without them (--allow-positive-only): that is how the collapse shows.
    const bool all_similar = std::all_of(validation.label.begin(), validation.label.end(), [](float y) { return y == 1.0f; });
    return plan_epoch(validation, all_similar ? std::max<std::int64_t>(negatives, 1) : negatives, false, rng);
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

std::unique_ptr<Task> make_siamese_task(const spec::Spec& spec, const BuiltGraph& built, const TrainOptions& options) {
    return std::make_unique<SiameseTask>(spec, built, options);
}

}  // namespace graphrun::train
