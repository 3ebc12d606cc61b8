// task: classify. Every graph input comes from data.inputs: a TSV column as
// byte tokens, a TSV column as a class index, an .npy file, or a generator. The loss is a
// cross_entropy node; its first input holds the logits, and the prediction is
// their argmax. Figures: validation accuracy and macro F1 (the mean over
// classes of each class's F1, as scikit-learn's f1_score(average="macro")).
#include <algorithm>
#include <cstring>
#include <fstream>
#include <numeric>
#include <sstream>
#include <random>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/io/npy.hpp"
#include "engine/io/text_file.hpp"
#include "engine/text/tokenizer.hpp"
#include "engine/train/data.hpp"
#include "engine/train/task.hpp"

namespace graphrun::train {

namespace {

// Samples as columns: row i of every tensor is sample i.
struct Table {
    std::vector<int> nodes;
    std::vector<Tensor> columns;
    std::int64_t rows = 0;

    // Rows order[first .. first + batch.rows) into the batch.
    void gather(const std::vector<std::int64_t>& order, std::int64_t first, Batch& batch) const {
        for (std::size_t k = 0; k < nodes.size(); ++k) {
            const Tensor& from = columns[k];
            Tensor& to = batch.of(nodes[k]);
            const std::size_t row_bytes = from.bytes() / static_cast<std::size_t>(rows);
            for (std::int64_t r = 0; r < batch.rows; ++r)
                std::memcpy(static_cast<char*>(to.raw()) + static_cast<std::size_t>(r) * row_bytes,
                            static_cast<const char*>(from.raw()) + static_cast<std::size_t>(order[static_cast<std::size_t>(first + r)]) * row_bytes, row_bytes);
        }
    }
    Table take(const std::vector<std::int64_t>& which) const {
        Table t;
        t.nodes = nodes;
        t.rows = static_cast<std::int64_t>(which.size());
        for (std::size_t k = 0; k < nodes.size(); ++k) {
            Shape shape = columns[k].shape();
            shape[0] = t.rows;
            t.columns.emplace_back(TensorType{columns[k].dtype(), shape});
        }
        Batch all{t.nodes, t.columns, t.rows, {}};
        gather(which, 0, all);
        return t;
    }
};

void store_id(Tensor& t, std::int64_t at, std::int64_t v) {
    if (t.dtype() == DType::i64) t.i64()[at] = v;
    else if (t.dtype() == DType::i32) t.i32()[at] = static_cast<std::int32_t>(v);
    else t.f32()[at] = static_cast<float>(v);
}

// The TSV columns of one split, as the sources of data.inputs say.
Table load_tsv(const std::string& path, const spec::ColumnData& data, const Graph& graph) {
    std::istringstream in(io::read_text_file(path));  // plain or .xz
    struct Column {
        int node;
        const spec::InputSource* source;
        std::int64_t length;  // tokens: the input's length
        std::vector<std::int32_t> ids;
    };
    std::vector<Column> columns;
    for (const auto& [name, source] : data.inputs) {
        if (source.kind == spec::InputSource::Kind::npy || source.kind == spec::InputSource::Kind::generate) continue;
        const int node = graph.index_of(name);
        const TensorType& type = graph.node(node).outputs[0];
        if (source.kind == spec::InputSource::Kind::tokens) {
            if (type.shape.size() != 2 || type.dtype == DType::f32)
                throw spec::SpecError(source.loc, fmt::format("data.inputs.{}: byte tokens fill an integer input of shape [length], the input is {}", name,
                                                              to_string(TensorType{type.dtype, Shape(type.shape.begin() + 1, type.shape.end())})));
            const std::int64_t vocab = embedding_vocabulary(graph, node);
            if (vocab < 257)
                throw spec::SpecError(source.loc, fmt::format("data.inputs.{}: text is tokenized as bytes (ids 1..256), so the embedding reading '{}' "
                                                              "needs vocab >= 257, got {}", name, name, vocab));
            columns.push_back({node, &source, type.shape[1], {}});
        } else {
            if (type.shape.size() != 1)
                throw spec::SpecError(source.loc, fmt::format("data.inputs.{}: a class index fills an input of shape [], the input has shape {}", name,
                                                              to_string(Shape(type.shape.begin() + 1, type.shape.end()))));
            columns.push_back({node, &source, 1, {}});
        }
    }
    std::string line;
    std::int64_t number = 0, rows = 0;
    std::vector<std::string> fields;
    while (std::getline(in, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        if (!text::valid_utf8(line)) throw Error(fmt::format("{}:{}: the line is not valid UTF-8", path, number));
        fields.clear();
        for (std::size_t start = 0;;) {
            const auto tab = line.find('\t', start);
            fields.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
            if (tab == std::string::npos) break;
            start = tab + 1;
        }
        for (Column& c : columns) {
            const auto at = static_cast<std::size_t>(c.source->column);
            if (at >= fields.size())
                throw Error(fmt::format("{}:{}: expected at least {} tab-separated columns (data.inputs reads column {}), found {}", path, number,
                                        at + 1, at, fields.size()));
            if (c.source->kind == spec::InputSource::Kind::tokens) {
                append_byte_tokens(fields[at], c.length, c.ids);
                continue;
            }
            const auto& classes = c.source->classes;
            const auto found = std::find(classes.begin(), classes.end(), fields[at]);
            if (found == classes.end())
                throw Error(fmt::format("{}:{}: column {} holds '{}', which is not one of the classes [{}]", path, number, at, fields[at],
                                        fmt::join(classes, ", ")));
            c.ids.push_back(static_cast<std::int32_t>(found - classes.begin()));
        }
        ++rows;
    }
    if (rows == 0) throw Error(fmt::format("{}: the data file holds no rows", path));
    Table t;
    t.rows = rows;
    for (Column& c : columns) {
        const TensorType& type = graph.node(c.node).outputs[0];
        Shape shape = type.shape;
        shape[0] = rows;
        Tensor column(TensorType{type.dtype, shape});
        for (std::size_t j = 0; j < c.ids.size(); ++j) store_id(column, static_cast<std::int64_t>(j), c.ids[j]);
        t.nodes.push_back(c.node);
        t.columns.push_back(std::move(column));
    }
    return t;
}

// An .npy source: one row per sample, the input's shape and kind of number.
void add_npy(Table& t, const std::string& name, const spec::InputSource& source, const Graph& graph) {
    const int node = graph.index_of(name);
    const TensorType& type = graph.node(node).outputs[0];
    const Tensor a = io::read_npy(source.npy);
    const Shape want(type.shape.begin() + 1, type.shape.end());
    if (a.rank() != type.shape.size() || !std::equal(want.begin(), want.end(), a.shape().begin() + 1))
        throw Error(fmt::format("{}: input '{}' needs rows of shape {}, the file holds {}", source.npy, name, to_string(want), to_string(a.shape())));
    if ((a.dtype() == DType::f32) != (type.dtype == DType::f32))
        throw Error(fmt::format("{}: input '{}' is {}, the file holds {}", source.npy, name, to_string(type), to_string(a.type())));
    if (a.dim(0) == 0) throw Error(fmt::format("{}: input '{}' has no rows", source.npy, name));
    if (!t.nodes.empty() && a.dim(0) != t.rows)
        throw Error(fmt::format("{}: {} rows, but the other sources have {}: one row per sample", source.npy, a.dim(0), t.rows));
    t.rows = a.dim(0);
    Shape shape = type.shape;
    shape[0] = t.rows;
    Tensor column(TensorType{type.dtype, shape});
    for (std::int64_t j = 0; j < a.numel(); ++j)
        store_id(column, j, a.dtype() == DType::f32 ? 0 : a.dtype() == DType::i32 ? a.i32()[j] : a.i64()[j]);
    if (a.dtype() == DType::f32) std::memcpy(column.raw(), a.raw(), a.bytes());
    t.nodes.push_back(node);
    t.columns.push_back(std::move(column));
}

// FNV-1a over the source's seed, its input's name and the split: each
// generated input and split draws its own values, the same on every machine.
std::uint64_t generator_seed(std::uint64_t seed, const std::string& name, const std::string& split) {
    std::uint64_t h = 14695981039346656037ull;
    const auto mix = [&h](unsigned char c) { h = (h ^ c) * 1099511628211ull; };
    for (int i = 0; i < 8; ++i) mix(static_cast<unsigned char>(seed >> (8 * i)));
    for (const char c : name + '/' + split) mix(static_cast<unsigned char>(c));
    return h;
}

// A generated source: `rows` rows of the input's shape, as torch.randint
// (integers in [low, high)), torch.rand (uniform) or torch.randn (normal).
void add_generated(Table& t, const std::string& name, const spec::InputSource& source, const Graph& graph, std::int64_t rows,
                   const std::string& split) {
    const int node = graph.index_of(name);
    Shape shape = graph.node(node).outputs[0].shape;
    shape[0] = rows;
    Tensor column(TensorType{graph.node(node).outputs[0].dtype, shape});
    std::mt19937_64 rng(generator_seed(source.seed, name, split));
    if (source.generate == "integers") {
        std::uniform_int_distribution<std::int64_t> draw(static_cast<std::int64_t>(*source.low), static_cast<std::int64_t>(*source.high) - 1);
        for (std::int64_t j = 0; j < column.numel(); ++j) store_id(column, j, draw(rng));
    } else if (source.generate == "uniform") {
        std::uniform_real_distribution<float> draw(static_cast<float>(*source.low), static_cast<float>(*source.high));
        for (float& v : column.floats()) v = draw(rng);
    } else {
        std::normal_distribution<float> draw(static_cast<float>(source.mean), static_cast<float>(source.std));
        for (float& v : column.floats()) v = draw(rng);
    }
    t.rows = rows;
    t.nodes.push_back(node);
    t.columns.push_back(std::move(column));
}

class ClassifyTask final : public Task {
public:
    ClassifyTask(const spec::Spec& spec, const BuiltGraph& built, const std::optional<std::string>& evaluation_data) : cfg_(spec.train) {
        const Graph& graph = built.graph;
        const Node& loss = graph.node(built.loss);
        if (loss.op_name != "cross_entropy")
            throw spec::SpecError(spec.loss_loc, fmt::format("task classify expects the loss to be a cross_entropy node, '{}' is {}", loss.name, loss.op_name));
        if (spec.data.kind != spec::DataSpec::Kind::columns)
            throw spec::SpecError(spec.data.loc, "task classify reads data.inputs (which column or file feeds each input), not pairs");
        logits_ = loss.inputs[0];
        label_input_ = loss.inputs[1].node;
        if (graph.node(label_input_).kind != NodeKind::input)
            throw spec::SpecError(spec.loss_loc, fmt::format("task classify reads the labels from a graph input, but the loss '{}' takes them from node '{}' ({})",
                                                             loss.name, graph.node(label_input_).name, graph.node(label_input_).op_name));
        classes_ = graph.type(logits_).shape.at(1);
        const spec::ColumnData& data = spec.data.columns;
        for (const auto& [name, source] : data.inputs)
            if (source.kind == spec::InputSource::Kind::classes && static_cast<std::int64_t>(source.classes.size()) != classes_)
                throw spec::SpecError(source.loc, fmt::format("data.inputs.{} lists {} classes, but the logits '{}' have {}", name, source.classes.size(),
                                                              graph.node(logits_).name, classes_));
        class_names_.clear();
        for (const auto& [name, source] : data.inputs)
            if (graph.index_of(name) == label_input_ && source.kind == spec::InputSource::Kind::classes) class_names_ = source.classes;
        for (std::int64_t c = static_cast<std::int64_t>(class_names_.size()); c < classes_; ++c) class_names_.push_back(std::to_string(c));
        data_ = spec.data.columns;
        for (auto& [name, source] : data_.inputs)
            if (source.kind == spec::InputSource::Kind::generate) resolve_generator(name, source, graph);
        const bool generated_only = data_.samples > 0;
        if (evaluation_data) {
            for (const auto& [name, source] : data_.inputs)
                if (source.kind == spec::InputSource::Kind::npy)
                    throw spec::SpecError(source.loc, fmt::format("data.inputs.{} is an .npy file, which a held-out TSV cannot stand in for: "
                                                                  "evaluate needs every input from a TSV column or a generator", name));
            if (generated_only && !evaluation_data->empty())
                throw spec::SpecError(spec.data.loc, fmt::format("every input of the spec is generated, so there is no column to read from {}", *evaluation_data));
            const std::string path = evaluation_data->empty() ? data_.test : *evaluation_data;
            if (path.empty() && !generated_only)
                throw spec::SpecError(spec.data.loc, "there is no held-out data to evaluate on: give --data FILE, or data.test in the spec");
            // With every input generated, the held-out rows are a fresh draw of data.samples rows.
            validation_ = load_split(path, graph, "test");
            check_labels(validation_, generated_only ? "the generated test rows" : path);
            validation_order_.resize(static_cast<std::size_t>(validation_.rows));
            std::iota(validation_order_.begin(), validation_order_.end(), 0);
            return;
        }
        Table all = load_split(data_.train, graph, "train");
        if (!data_.validation.empty()) {
            train_ = std::move(all);
            validation_ = load_split(data_.validation, graph, "validation");
        } else {
            // Hold out a train.validation share, chosen at random from train.seed.
            std::vector<std::int64_t> order(static_cast<std::size_t>(all.rows));
            std::iota(order.begin(), order.end(), 0);
            std::mt19937_64 rng(cfg_.seed);
            std::shuffle(order.begin(), order.end(), rng);
            const auto held = static_cast<std::size_t>(static_cast<double>(all.rows) * cfg_.validation);
            validation_ = all.take({order.begin(), order.begin() + static_cast<std::ptrdiff_t>(held)});
            train_ = all.take({order.begin() + static_cast<std::ptrdiff_t>(held), order.end()});
        }
        if (train_.rows == 0) throw Error(fmt::format("{}: no training samples", spec.path));
        check_labels(train_, data_.train.empty() ? "the training rows" : data_.train);
        check_labels(validation_, data_.validation.empty() ? (data_.train.empty() ? "the validation rows" : data_.train) : data_.validation);
        validation_order_.resize(static_cast<std::size_t>(validation_.rows));
        std::iota(validation_order_.begin(), validation_order_.end(), 0);
    }

    std::vector<std::string> data_report() const override {
        return {fmt::format("data: {} training samples an epoch, {} validation samples", train_.rows, validation_.rows)};
    }

    const std::vector<MetricInfo>& metrics() const override {
        static const std::vector<MetricInfo> m{{"val_accuracy", "{:.4f}", true}, {"val_macro_f1", "{:.4f}", true}};
        return m;
    }

    std::int64_t plan_epoch(int epoch) override {
        order_.resize(static_cast<std::size_t>(train_.rows));
        std::iota(order_.begin(), order_.end(), 0);
        if (cfg_.shuffle) {
            std::mt19937_64 rng(epoch_seed(cfg_.seed, epoch));
            std::shuffle(order_.begin(), order_.end(), rng);
        }
        return train_.rows;
    }
    void fill_training(std::int64_t first, Batch& batch) const override { train_.gather(order_, first, batch); }

    std::int64_t validation_size() const override { return validation_.rows; }
    void fill_validation(std::int64_t first, Batch& batch) const override { validation_.gather(validation_order_, first, batch); }
    std::vector<ValueRef> validation_targets() const override { return {logits_}; }
    void start_validation() override { confusion_.assign(static_cast<std::size_t>(classes_ * classes_), 0.0); }
    void observe_validation(const Executor& ex, const Batch& batch) override {
        const float* logits = ex.value(logits_).f32();
        const Tensor& labels = batch.tensors[static_cast<std::size_t>(std::find(batch.nodes.begin(), batch.nodes.end(), label_input_) - batch.nodes.begin())];
        for (std::int64_t r = 0; r < batch.rows; ++r) {
            const float* row = logits + r * classes_;
            const auto predicted = static_cast<std::int64_t>(std::max_element(row, row + classes_) - row);
            const std::int64_t truth = labels.dtype() == DType::i64 ? labels.i64()[r] : labels.i32()[r];
            confusion_[static_cast<std::size_t>(truth * classes_ + predicted)] += 1;
        }
    }
    void end_validation(Communicator& comm, EpochMetrics& m) override {
        comm.allreduce_sum(confusion_);
        double total = 0, right = 0, f1_sum = 0;
        for (std::int64_t c = 0; c < classes_; ++c) {
            double truth = 0, predicted = 0;
            for (std::int64_t k = 0; k < classes_; ++k) {
                truth += confusion_[static_cast<std::size_t>(c * classes_ + k)];
                predicted += confusion_[static_cast<std::size_t>(k * classes_ + c)];
            }
            const double hit = confusion_[static_cast<std::size_t>(c * classes_ + c)];
            total += truth;
            right += hit;
            // F1 = 2 tp / (2 tp + fp + fn); 0 for a class never true nor predicted, as scikit-learn's zero_division=0.
            if (truth + predicted > 0) f1_sum += 2 * hit / (truth + predicted);
        }
        if (total == 0) return;
        m.val_confusion = confusion_;
        m.val_classes = class_names_;
        m.metrics[0].value = right / total;
        m.metrics[1].value = f1_sum / static_cast<double>(classes_);
    }

private:
    // One split's rows: its TSV columns (if any input reads one), the .npy
    // files (training only), then the generated inputs, as many rows as the
    // others have (data.samples when every input is generated).
    Table load_split(const std::string& tsv, const Graph& graph, const std::string& split) const {
        const bool any_column = std::any_of(data_.inputs.begin(), data_.inputs.end(), [](const auto& kv) {
            return kv.second.kind == spec::InputSource::Kind::tokens || kv.second.kind == spec::InputSource::Kind::classes;
        });
        Table t = any_column ? load_tsv(tsv, data_, graph) : Table{};
        for (const auto& [name, source] : data_.inputs)
            if (source.kind == spec::InputSource::Kind::npy) add_npy(t, name, source, graph);
        const std::int64_t rows = t.nodes.empty() ? data_.samples : t.rows;
        for (const auto& [name, source] : data_.inputs)
            if (source.kind == spec::InputSource::Kind::generate) add_generated(t, name, source, graph, rows, split);
        return t;
    }

    // A generator's bounds and kind of number, from the graph: integer ids an
    // embedding reads are 1..vocab-1 by default (0 is padding), labels 0..classes-1.
    void resolve_generator(const std::string& name, spec::InputSource& source, const Graph& graph) const {
        const int node = graph.index_of(name);
        const TensorType& type = graph.node(node).outputs[0];
        if (source.generate != "integers") {
            if (type.dtype != DType::f32)
                throw spec::SpecError(source.loc, fmt::format("data.inputs.{}: generate: {} draws float32 values, but the input is {}: "
                                                              "use generate: integers", name, source.generate, dtype_name(type.dtype)));
            return;
        }
        const std::int64_t vocab = embedding_vocabulary(graph, node);
        const bool label = node == label_input_;
        if (!source.low) source.low = vocab > 0 ? 1.0 : 0.0;
        if (!source.high) {
            if (vocab > 0) source.high = static_cast<double>(vocab);
            else if (label) source.high = static_cast<double>(classes_);
            else throw spec::SpecError(source.loc, fmt::format("data.inputs.{}: generate: integers needs `high` (values are drawn from [low, high)): "
                                                               "the input feeds no embedding and is not the labels", name));
        }
        if (!(*source.low < *source.high))
            throw spec::SpecError(source.loc, fmt::format("data.inputs.{}: low must be below high, got low {} and high {}", name, *source.low, *source.high));
        if (vocab > 0 && (*source.low < 0 || *source.high > static_cast<double>(vocab)))
            throw spec::SpecError(source.loc, fmt::format("data.inputs.{}: ids are drawn from [{}, {}), but the embedding reading '{}' has vocab {}: "
                                                          "ids must be in [0, {})", name, *source.low, *source.high, name, vocab, vocab));
        if (label && (*source.low < 0 || *source.high > static_cast<double>(classes_)))
            throw spec::SpecError(source.loc, fmt::format("data.inputs.{}: labels are drawn from [{}, {}), but the logits '{}' have {} classes: "
                                                          "labels must be in [0, {})", name, *source.low, *source.high, graph.node(logits_.node).name,
                                                          classes_, classes_));
    }

    void check_labels(const Table& t, const std::string& where) const {
        for (std::size_t k = 0; k < t.nodes.size(); ++k) {
            if (t.nodes[k] != label_input_) continue;
            const Tensor& labels = t.columns[k];
            for (std::int64_t r = 0; r < labels.numel(); ++r) {
                const std::int64_t v = labels.dtype() == DType::i64 ? labels.i64()[r] : labels.dtype() == DType::i32 ? labels.i32()[r] : -1;
                if (v < 0 || v >= classes_)
                    throw Error(fmt::format("{}: row {}: label {} is outside the {} classes the logits have", where, r + 1, v, classes_));
            }
        }
    }

    spec::TrainSpec cfg_;
    spec::ColumnData data_;  // data.inputs, generators' bounds resolved
    ValueRef logits_;
    int label_input_ = -1;
    std::int64_t classes_ = 0;
    Table train_, validation_;
    std::vector<std::int64_t> order_, validation_order_;
    std::vector<double> confusion_;  // [truth * classes + predicted]
    std::vector<std::string> class_names_;  // the labels' classes, else their indexes
};

}  // namespace

std::unique_ptr<Task> make_classify_task(const spec::Spec& spec, const BuiltGraph& built, const std::optional<std::string>& evaluation_data) {
    return std::make_unique<ClassifyTask>(spec, built, evaluation_data);
}

}  // namespace graphrun::train
