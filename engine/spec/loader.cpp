// The YAML walk: one read_* function per section of the format, each checking
// its keys, types and ranges where it reads them, so every error points at the
// value that caused it. --set overrides are written into the YAML tree first;
// the walk then reads them like any other value, and a value whose path was
// overridden reports `--set KEY` as its location.
#include "engine/spec/loader.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

namespace graphrun::spec {
namespace {

namespace fs = std::filesystem;
using Keys = std::vector<std::string>;

// The keys of the format. They check the file and the --set paths alike.
const Keys kTopKeys{"name", "inputs", "nodes", "outputs", "loss", "task", "data", "train", "run"};
const Keys kRunKeys{"threshold", "tokenizer", "checkpoint"};
const Keys kTasks{"siamese", "classify"};
const Keys kInputKeys{"name", "shape", "dtype"};
const Keys kTrainKeys{"epochs", "batch_size", "shuffle", "seed", "negatives", "validation", "optimizer", "schedule", "clip_norm", "max_steps", "select", "executor", "early_stopping",
                     "length_buckets"};
const Keys kEarlyStoppingKeys{"metric", "patience"};
const Keys kLengthBucketsKeys{"window", "multiple"};
const Keys kExecutors{"tasks", "sequential"};
const Keys kOptimizerKeys{"type", "lr", "beta1", "beta2", "eps", "weight_decay", "momentum"};
const Keys kOptimizers{"adam", "adamw", "sgd"};
const Keys kScheduleKeys{"warmup", "decay", "min_lr"};
const Keys kDecays{"constant", "linear", "cosine"};
const Keys kDataKeys{"synthetic", "files", "text", "inputs", "train", "validation", "test", "samples"};
const Keys kSourceKeys{"column", "tokens", "classes", "npy", "generate", "low", "high", "mean", "std", "seed"};
const Keys kGenerators{"integers", "uniform", "normal"};
const Keys kSyntheticKeys{"samples", "classes", "class_tokens", "signal", "min_length", "seed"};
const Keys kFilesKeys{"inputs", "labels"};
const Keys kTextKeys{"path", "validation", "test", "tokenizer"};
const Keys kTokenizerKeys{"type", "vocab", "lowercase", "model"};
const Keys kTokenizerTypes{"bytes", "words", "sentencepiece"};
// The maps --set can reach by key, and the keys each one takes (empty: any).
const std::map<std::string, Keys> kSections{{"", kTopKeys},          {"train", kTrainKeys}, {"run", kRunKeys}, {"train.early_stopping", kEarlyStoppingKeys},
                                            {"train.length_buckets", kLengthBucketsKeys},
                                            {"train.optimizer", kOptimizerKeys}, {"train.schedule", kScheduleKeys}, {"data", kDataKeys},
                                            {"data.synthetic", kSyntheticKeys},  {"data.files", kFilesKeys},
                                            {"data.files.inputs", {}},          {"data.text", kTextKeys}, {"data.text.tokenizer", kTokenizerKeys},
                                            {"data.inputs", {}},                {"data.inputs.*", kSourceKeys}};

bool contains(const Keys& keys, const std::string& key) { return std::find(keys.begin(), keys.end(), key) != keys.end(); }

// One key: value pair of a YAML map, with its dotted path ("train.epochs").
struct Entry {
    std::string key, path;
    YAML::Node key_node, value;
};

class Reader {
public:
    Reader(std::string file, std::set<std::string> overridden) : file_(std::move(file)), overridden_(std::move(overridden)) {}

    // Where a value is: the --set key that wrote it (or a map containing it), else its mark.
    Location at(const YAML::Node& node, const std::string& path) const {
        for (std::string p = path;;) {
            if (overridden_.count(p)) return Location{file_, 0, 0, p};
            const auto dot = p.rfind('.');
            if (dot == std::string::npos) break;
            p.resize(dot);
        }
        if (node.IsDefined() && !node.Mark().is_null()) return Location{file_, node.Mark().line + 1, node.Mark().column + 1, ""};
        return Location{file_, 0, 0, ""};
    }
    // An empty value (`epochs:`) has its mark on the next line; its key's is more useful.
    Location at(const Entry& e) const { return at(e.value.IsNull() ? e.key_node : e.value, e.path); }
    Location file_start() const { return Location{file_, 1, 1, ""}; }

    [[noreturn]] void fail(const Location& where, const std::string& message) const { throw SpecError(where, message); }

    static std::string describe(const YAML::Node& n) {
        if (n.IsMap()) return "a map";
        if (n.IsSequence()) return "a list";
        if (!n.IsDefined() || n.IsNull()) return "nothing";
        return n.Tag() == "!" ? fmt::format("the string \"{}\"", n.Scalar()) : fmt::format("'{}'", n.Scalar());
    }

    // The entries of a map, checked against `allowed` (empty: any key).
    std::vector<Entry> map(const YAML::Node& node, const std::string& path, const std::string& what, const Keys& allowed) const {
        if (!node.IsMap()) fail(at(node, path), fmt::format("{} must be a map, got {}", what, describe(node)));
        std::vector<Entry> entries;
        for (auto it = node.begin(); it != node.end(); ++it) {
            const YAML::Node k = it->first;  // a copy: `it->` returns a temporary proxy
            if (!k.IsScalar()) fail(at(k, path), fmt::format("{}: a key must be a plain name, got {}", what, describe(k)));
            const std::string key = k.Scalar();
            Entry e{key, path.empty() ? key : path + "." + key, k, it->second};
            for (const auto& seen : entries)
                if (seen.key == key)
                    fail(at(k, e.path), fmt::format("{}: key '{}' appears twice (first at {})", what, key, at(seen.key_node, seen.path).str()));
            if (!allowed.empty() && !contains(allowed, key))
                fail(at(k, e.path), fmt::format("unknown key '{}' in {} (known: {}){}", key, what, join(allowed), did_you_mean(key, allowed)));
            entries.push_back(std::move(e));
        }
        return entries;
    }

    std::vector<YAML::Node> list(const YAML::Node& node, const std::string& path, const std::string& what) const {
        if (!node.IsSequence()) fail(at(node, path), fmt::format("{} must be a list, got {}", what, describe(node)));
        return {node.begin(), node.end()};
    }

    // Scalars. A quoted value is always a string: "10" is not a number.
    std::string string(const YAML::Node& n, const std::string& path, const std::string& what) const {
        if (!n.IsScalar()) fail(at(n, path), fmt::format("{} must be a string, got {}", what, describe(n)));
        return n.Scalar();
    }
    std::int64_t integer(const YAML::Node& n, const std::string& path, const std::string& what) const {
        if (auto v = as_integer(n)) return *v;
        if (as_number(n)) fail(at(n, path), fmt::format("{} must be an integer, got {}", what, n.Scalar()));
        fail(at(n, path), fmt::format("{} must be an integer, got {}", what, describe(n)));
    }
    std::int64_t positive(const YAML::Node& n, const std::string& path, const std::string& what) const {
        const std::int64_t v = integer(n, path, what);
        if (v <= 0) fail(at(n, path), fmt::format("{} must be a positive integer, got {}", what, v));
        return v;
    }
    std::int64_t non_negative(const YAML::Node& n, const std::string& path, const std::string& what) const {
        const std::int64_t v = integer(n, path, what);
        if (v < 0) fail(at(n, path), fmt::format("{} must be a non-negative integer, got {}", what, v));
        return v;
    }
    double number(const YAML::Node& n, const std::string& path, const std::string& what) const {
        if (auto v = as_number(n)) return *v;
        fail(at(n, path), fmt::format("{} must be a number, got {}", what, describe(n)));
    }
    // A number between lo and hi, each end open or closed; hi = HUGE_VAL: no upper bound.
    double in_range(const YAML::Node& n, const std::string& path, const std::string& what, double lo, bool lo_open, double hi,
                    bool hi_open) const {
        const double v = number(n, path, what);
        if (!((lo_open ? v <= lo : v < lo) || (hi_open ? v >= hi : v > hi))) return v;
        if (std::isinf(hi)) fail(at(n, path), fmt::format("{} must be {} {}, got {}", what, lo_open ? ">" : ">=", lo, v));
        fail(at(n, path), fmt::format("{} must be in {}{}, {}{}, got {}", what, lo_open ? "(" : "[", lo, hi, hi_open ? ")" : "]", v));
    }
    bool boolean(const YAML::Node& n, const std::string& path, const std::string& what) const {
        if (auto v = as_boolean(n)) return *v;
        fail(at(n, path), fmt::format("{} must be true or false, got {}", what, describe(n)));
    }

    // A node attribute keeps the type its text has: 64 an integer, 0.5 a number,
    // true a boolean, anything else a string; the op's schema checks it later.
    AttrValue attribute(const YAML::Node& n, const std::string& path, const std::string& what) const {
        if (!n.IsScalar()) fail(at(n, path), fmt::format("{} must be a single value, got {}", what, describe(n)));
        if (auto v = as_integer(n)) return *v;
        if (auto v = as_number(n)) return *v;
        if (auto v = as_boolean(n)) return *v;
        return n.Scalar();
    }

private:
    static bool plain(const YAML::Node& n) { return n.IsScalar() && n.Tag() != "!"; }
    static std::optional<std::int64_t> as_integer(const YAML::Node& n) {
        if (!plain(n)) return std::nullopt;
        const std::string& s = n.Scalar();
        const char* begin = s.data() + (s.starts_with('+') ? 1 : 0);
        std::int64_t v = 0;
        const auto [end, ec] = std::from_chars(begin, s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size() || begin == end) return std::nullopt;
        return v;
    }
    static std::optional<double> as_number(const YAML::Node& n) {
        if (!plain(n) || n.Scalar().empty()) return std::nullopt;
        const std::string& s = n.Scalar();
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        // strtod reads "inf", "nan" and hex floats too: a spec has no use for them.
        if (end != s.c_str() + s.size() || !std::isfinite(v) || s.find_first_of("xXnN") != std::string::npos) return std::nullopt;
        return v;
    }
    static std::optional<bool> as_boolean(const YAML::Node& n) {
        if (!plain(n)) return std::nullopt;
        const std::string& s = n.Scalar();
        if (s == "true" || s == "True" || s == "TRUE") return true;
        if (s == "false" || s == "False" || s == "FALSE") return false;
        return std::nullopt;
    }

    std::string file_;
    std::set<std::string> overridden_;
};

const Entry* find(const std::vector<Entry>& entries, const std::string& key) {
    for (const auto& e : entries)
        if (e.key == key) return &e;
    return nullptr;
}

DType read_dtype(const Reader& r, const Entry& e, const std::string& what) {
    const std::string s = r.string(e.value, e.path, what);
    if (s == "int32") return DType::i32;
    if (s == "int64") return DType::i64;
    if (s == "float32") return DType::f32;
    const Keys known{"int32", "int64", "float32"};
    r.fail(r.at(e), fmt::format("{} must be one of {}, got '{}'{}", what, join(known), s, did_you_mean(s, known)));
}

InputSpec read_input(const Reader& r, const YAML::Node& n) {
    InputSpec in;
    in.loc = r.at(n, "inputs");
    // The name first: the other keys' paths (for --set) contain it.
    std::string name;
    if (n.IsMap() && n["name"]) name = r.string(n["name"], "inputs", "an input's name");
    const std::string path = "inputs." + name;
    const auto entries = r.map(n, "inputs", "an input", kInputKeys);
    const Entry* name_entry = find(entries, "name");
    if (!name_entry) r.fail(in.loc, "an input needs a name");
    check_name(r.at(name_entry->value, name_entry->path), "input name", name);
    in.name = name;
    const std::string what = fmt::format("input '{}'", name);
    for (auto e : entries) {
        e.path = path + "." + e.key;
        if (e.key == "dtype") in.dtype = read_dtype(r, e, what + ": dtype");
        if (e.key == "shape") {
            for (const auto& d : r.list(e.value, e.path, what + ": shape"))
                in.shape.push_back(r.positive(d, e.path, what + ": every size of the shape"));
            check_size(r.at(e), what + ": shape", in.shape);
        }
    }
    if (!find(entries, "shape")) r.fail(in.loc, what + " needs a shape (without the batch; [] for one value per sample)");
    return in;
}

// A node takes any key as an attribute, so a misspelt `name` or `op` only shows as missing.
std::string misspelt(const std::vector<Entry>& entries, const std::string& key) {
    for (const auto& e : entries)
        if (near_miss(e.key, {key})) return fmt::format(" (is '{}' a misspelt '{}'?)", e.key, key);
    return "";
}

NodeSpec read_node(const Reader& r, const YAML::Node& n) {
    NodeSpec node;
    node.loc = r.at(n, "nodes");
    if (n.IsMap() && n["name"]) node.name = r.string(n["name"], "nodes", "a node's name");
    const std::string path = "nodes." + node.name;
    const auto entries = r.map(n, "nodes", "a node", {});
    const Entry* name_entry = find(entries, "name");
    if (!name_entry) r.fail(node.loc, "a node needs a name" + misspelt(entries, "name"));
    check_name(r.at(name_entry->value, name_entry->path), "node name", node.name);
    const std::string what = fmt::format("node '{}'", node.name);
    for (auto e : entries) {
        e.path = path + "." + e.key;
        if (e.key == "name") continue;
        if (e.key == "op") {
            node.op = r.string(e.value, e.path, what + ": op");
        } else if (e.key == "inputs") {
            for (const auto& i : r.list(e.value, e.path, what + ": inputs")) {
                node.inputs.push_back(r.string(i, e.path, what + ": an input"));
                node.input_locs.push_back(r.at(i, e.path));
            }
        } else {
            node.attrs.set(e.key, r.attribute(e.value, e.path, fmt::format("{}: attribute '{}'", what, e.key)));
            node.attr_locs[e.key] = r.at(e);
        }
    }
    if (!find(entries, "op")) r.fail(node.loc, what + " needs an op" + misspelt(entries, "op"));
    return node;
}

OptimizerSpec read_optimizer(const Reader& r, const Entry& section) {
    OptimizerSpec o;
    o.loc = r.at(section);
    const auto entries = r.map(section.value, section.path, "train.optimizer", kOptimizerKeys);
    if (const Entry* t = find(entries, "type")) {
        o.type = r.string(t->value, t->path, "train.optimizer.type");
        if (!contains(kOptimizers, o.type))
            r.fail(r.at(*t), fmt::format("unknown optimizer type '{}' (known: {}){}", o.type, join(kOptimizers), did_you_mean(o.type, kOptimizers)));
    }
    // A setting of another optimizer would be ignored without a word: refuse it.
    const Keys own = o.type == "sgd"     ? Keys{"type", "lr", "momentum"}
                     : o.type == "adamw" ? Keys{"type", "lr", "beta1", "beta2", "eps", "weight_decay"}
                                         : Keys{"type", "lr", "beta1", "beta2", "eps"};
    for (const auto& e : entries) {
        const std::string what = "train.optimizer." + e.key;
        // torch.optim.Adam's weight_decay is an L2 term in the gradient, AdamW's is not: say which one graphrun has.
        const std::string hint = e.key == "weight_decay" ? "; decoupled weight decay is type adamw" : "";
        if (!contains(own, e.key))
            r.fail(r.at(e.key_node, e.path), fmt::format("'{}' is not a setting of {} (it takes {}){}", e.key, o.type, join(own), hint));
        if (e.key == "lr") o.lr = r.in_range(e.value, e.path, what, 0, true, HUGE_VAL, false);
        if (e.key == "beta1") o.beta1 = r.in_range(e.value, e.path, what, 0, false, 1, true);
        if (e.key == "beta2") o.beta2 = r.in_range(e.value, e.path, what, 0, false, 1, true);
        if (e.key == "eps") o.eps = r.in_range(e.value, e.path, what, 0, true, HUGE_VAL, false);
        if (e.key == "momentum") o.momentum = r.in_range(e.value, e.path, what, 0, false, 1, true);
        if (e.key == "weight_decay") o.weight_decay = r.in_range(e.value, e.path, what, 0, false, HUGE_VAL, false);
    }
    return o;
}

// `lr`: train.optimizer.lr, which min_lr may not exceed (the rate decays to it).
ScheduleSpec read_schedule(const Reader& r, const Entry& section, double lr) {
    ScheduleSpec s;
    s.loc = r.at(section);
    const auto entries = r.map(section.value, section.path, "train.schedule", kScheduleKeys);
    for (const auto& e : entries) {
        if (e.key == "warmup") s.warmup = r.non_negative(e.value, e.path, "train.schedule.warmup (optimizer steps)");
        if (e.key == "decay") {
            s.decay = r.string(e.value, e.path, e.path);
            if (!contains(kDecays, s.decay))
                r.fail(r.at(e), fmt::format("train.schedule.decay must be one of {}, got '{}'{}", join(kDecays), s.decay, did_you_mean(s.decay, kDecays)));
        }
    }
    if (const Entry* m = find(entries, "min_lr")) {
        s.min_lr = r.in_range(m->value, m->path, m->path, 0, false, HUGE_VAL, false);
        // Refused rather than ignored, as a setting of another optimizer is.
        if (s.decay == "constant")
            r.fail(r.at(*m), "train.schedule.min_lr is the rate linear or cosine decay ends at; with decay constant it would be ignored "
                             "(set decay: linear or cosine, or remove min_lr)");
        if (s.min_lr > lr)
            r.fail(r.at(*m), fmt::format("train.schedule.min_lr must be at most train.optimizer.lr ({}), the rate it decays from, got {}", lr, s.min_lr));
    }
    return s;
}

TrainSpec read_train(const Reader& r, const Entry& section) {
    TrainSpec t;
    const auto entries = r.map(section.value, section.path, "train", kTrainKeys);
    for (const auto& e : entries) {
        const std::string what = e.path;
        t.locs[e.key] = r.at(e);
        if (e.key == "epochs") t.epochs = r.positive(e.value, e.path, what);
        if (e.key == "batch_size") t.batch_size = r.positive(e.value, e.path, what);
        if (e.key == "shuffle") t.shuffle = r.boolean(e.value, e.path, what);
        if (e.key == "seed") t.seed = static_cast<std::uint64_t>(r.non_negative(e.value, e.path, what));
        if (e.key == "negatives") t.negatives = r.non_negative(e.value, e.path, what);
        if (e.key == "validation") t.validation = r.in_range(e.value, e.path, what, 0, false, 1, true);
        if (e.key == "clip_norm") t.clip_norm = r.in_range(e.value, e.path, what, 0, false, HUGE_VAL, false);
        if (e.key == "optimizer") t.optimizer = read_optimizer(r, e);
        if (e.key == "max_steps") t.max_steps = r.non_negative(e.value, e.path, what);
        if (e.key == "select") t.select = r.string(e.value, e.path, what);
        if (e.key == "early_stopping") {
            const auto keys = r.map(e.value, e.path, e.path, kEarlyStoppingKeys);
            for (const auto& k : keys) {
                if (k.key == "metric") t.early_stopping_metric = r.string(k.value, k.path, k.path);
                if (k.key == "patience") t.patience = r.positive(k.value, k.path, k.path);
            }
            if (!find(keys, "patience")) r.fail(r.at(e), "train.early_stopping needs `patience`: the epochs without improvement before it stops");
        }
        if (e.key == "length_buckets") {
            // Present means on, with the defaults for what it leaves out.
            t.length_buckets.window = 50;
            for (const auto& k : r.map(e.value, e.path, e.path, kLengthBucketsKeys)) {
                if (k.key == "window") t.length_buckets.window = r.positive(k.value, k.path, fmt::format("{} (batches sorted by length together)", k.path));
                if (k.key == "multiple") t.length_buckets.multiple = r.positive(k.value, k.path, fmt::format("{} (tokens a cut length is rounded up to)", k.path));
                if (t.length_buckets.window > 1'000'000 || t.length_buckets.multiple > 1'000'000)
                    r.fail(r.at(k), fmt::format("{} must be at most 1000000, got {}", k.path, k.key == "window" ? t.length_buckets.window : t.length_buckets.multiple));
            }
        }
        if (e.key == "executor") {
            t.executor = r.string(e.value, e.path, what);
            if (!contains(kExecutors, t.executor))
                r.fail(r.at(e), fmt::format("train.executor must be one of {}, got '{}'{}", join(kExecutors), t.executor, did_you_mean(t.executor, kExecutors)));
        }
    }
    // After the loop: the schedule checks min_lr against the optimizer's lr, which may come later in the map.
    if (const Entry* s = find(entries, "schedule")) t.schedule = read_schedule(r, *s, t.optimizer.lr);
    return t;
}

// A data path is relative to the spec's folder; it is stored resolved so the
// trainer can open it from any working directory the spec was loaded from.
std::string resolve(const fs::path& folder, const std::string& p) {
    const fs::path path(p);
    return path.is_absolute() ? p : (folder / path).lexically_normal().string();
}

// data.inputs: every graph input from a source, the splits' TSV files beside it.
DataSpec read_columns(const Reader& r, const std::vector<Entry>& all, DataSpec d, const std::vector<InputSpec>& inputs, const fs::path& folder) {
    d.kind = DataSpec::Kind::columns;
    ColumnData& c = d.columns;
    for (const auto& e : all) {
        if (e.key == "synthetic" || e.key == "files" || e.key == "text")
            r.fail(r.at(e.key_node, e.path), fmt::format("data.{} and data.inputs are two ways to give the data: keep one", e.key));
        if (e.key == "train") c.train = resolve(folder, r.string(e.value, e.path, e.path));
        if (e.key == "validation") c.validation = resolve(folder, r.string(e.value, e.path, e.path));
        if (e.key == "test") c.test = resolve(folder, r.string(e.value, e.path, e.path));
    }
    Keys names;
    for (const auto& i : inputs) names.push_back(i.name);
    const Entry& in = *find(all, "inputs");
    bool any_column = false;
    for (const auto& f : r.map(in.value, in.path, "data.inputs", {})) {
        if (!contains(names, f.key))
            r.fail(r.at(f.key_node, f.path), fmt::format("data.inputs: no input named '{}' (inputs: {}){}", f.key, join(names), did_you_mean(f.key, names)));
        InputSource src;
        src.loc = r.at(f);
        const auto keys = r.map(f.value, f.path, f.path, kSourceKeys);
        const Entry* npy = find(keys, "npy");
        const Entry* column = find(keys, "column");
        const Entry* tokens = find(keys, "tokens");
        const Entry* classes = find(keys, "classes");
        const Entry* generate = find(keys, "generate");
        if (!generate)
            for (const char* k : {"low", "high", "mean", "std", "seed"})
                if (const Entry* e = find(keys, k)) r.fail(r.at(e->key_node, e->path), fmt::format("{}: `{}` goes with `generate`", f.path, k));
        if (generate) {
            if (npy || column || tokens || classes) r.fail(src.loc, fmt::format("{}: a generated source takes no column, tokens, classes or npy", f.path));
            src.kind = InputSource::Kind::generate;
            src.generate = r.string(generate->value, generate->path, generate->path);
            if (!contains(kGenerators, src.generate))
                r.fail(r.at(*generate), fmt::format("{} must be one of {}, got '{}'{}", generate->path, join(kGenerators), src.generate,
                                                   did_you_mean(src.generate, kGenerators)));
            const bool normal = src.generate == "normal";
            for (const auto& k : keys) {
                if ((k.key == "low" || k.key == "high") && normal)
                    r.fail(r.at(k.key_node, k.path), fmt::format("{}: generate: normal takes mean and std, not {}", f.path, k.key));
                if ((k.key == "mean" || k.key == "std") && !normal)
                    r.fail(r.at(k.key_node, k.path), fmt::format("{}: generate: {} takes low and high, not {}", f.path, src.generate, k.key));
                if (k.key == "low" || k.key == "high") {
                    const double v = src.generate == "integers" ? static_cast<double>(r.integer(k.value, k.path, k.path)) : r.number(k.value, k.path, k.path);
                    (k.key == "low" ? src.low : src.high) = v;
                }
                if (k.key == "mean") src.mean = r.number(k.value, k.path, k.path);
                if (k.key == "std") src.std = r.in_range(k.value, k.path, k.path, 0, true, HUGE_VAL, false);
                if (k.key == "seed") src.seed = static_cast<std::uint64_t>(r.non_negative(k.value, k.path, k.path));
            }
            if (src.generate == "uniform") {
                src.low = src.low.value_or(0.0);
                src.high = src.high.value_or(1.0);
            }
            if (src.low && src.high && !(*src.low < *src.high))
                r.fail(src.loc, fmt::format("{}: low must be below high (values are drawn from [low, high)), got low {} and high {}", f.path, *src.low, *src.high));
        } else if (npy) {
            if (column || tokens || classes) r.fail(src.loc, fmt::format("{}: an .npy source takes no column, tokens or classes", f.path));
            src.kind = InputSource::Kind::npy;
            src.npy = resolve(folder, r.string(npy->value, npy->path, npy->path));
        } else {
            if (!column) r.fail(src.loc, fmt::format("{} needs `column` (0-based, of the TSV), `npy` or `generate`", f.path));
            src.column = static_cast<int>(r.non_negative(column->value, column->path, column->path));
            if ((tokens != nullptr) == (classes != nullptr))
                r.fail(src.loc, fmt::format("{} needs one of `tokens: bytes` (text as byte ids) or `classes: [...]` (a label's index)", f.path));
            if (tokens) {
                src.kind = InputSource::Kind::tokens;
                const std::string t = r.string(tokens->value, tokens->path, tokens->path);
                if (t != "bytes") r.fail(r.at(*tokens), fmt::format("{} must be bytes, got '{}'", tokens->path, t));
            } else {
                src.kind = InputSource::Kind::classes;
                for (const auto& n : r.list(classes->value, classes->path, classes->path)) src.classes.push_back(r.string(n, classes->path, "a class"));
                if (src.classes.empty()) r.fail(r.at(*classes), fmt::format("{} must list at least one class", classes->path));
            }
            any_column = true;
        }
        c.inputs[f.key] = src;
    }
    for (const auto& name : names)
        if (!c.inputs.count(name)) r.fail(r.at(in), fmt::format("data.inputs gives no source for the input '{}'", name));
    if (any_column && c.train.empty()) r.fail(d.loc, "data.inputs reads TSV columns, so data needs `train`: the training TSV file");
    const bool any_npy = std::any_of(c.inputs.begin(), c.inputs.end(), [](const auto& kv) { return kv.second.kind == InputSource::Kind::npy; });
    const Entry* samples = find(all, "samples");
    if (!any_column && !any_npy) {
        // Every input is generated: data.samples says how many rows.
        if (!samples) r.fail(r.at(in), "every input is generated, so data needs `samples`: how many rows to generate");
        c.samples = r.positive(samples->value, samples->path, samples->path);
        for (const char* split : {"train", "validation", "test"})
            if (const Entry* e = find(all, split))
                r.fail(r.at(e->key_node, e->path), fmt::format("data.{} is a TSV file, but no input reads a column (every input is generated)", split));
    } else if (samples) {
        r.fail(r.at(samples->key_node, samples->path), "data.samples sets the rows only when every input is generated; here the "
                                                       "rows are those of the TSV or .npy sources");
    }
    if (any_npy && (!c.validation.empty() || !c.test.empty()))
        r.fail(d.loc, "an .npy source has no validation or test file beside it: with .npy inputs, validation is a train.validation share "
                      "of the rows (drop data.validation and data.test)");
    return d;
}

DataSpec read_data(const Reader& r, const Entry& section, const std::vector<InputSpec>& inputs, const fs::path& folder) {
    DataSpec d;
    d.loc = r.at(section);
    const auto all = r.map(section.value, section.path, "data", kDataKeys);
    if (find(all, "inputs")) return read_columns(r, all, d, inputs, folder);
    for (const char* key : {"train", "validation", "test", "samples"})
        if (const Entry* e = find(all, key))
            r.fail(r.at(e->key_node, e->path), fmt::format("data.{} goes with data.inputs (the source of each input)", key));
    const auto& entries = all;
    if (entries.size() != 1)
    {
        std::vector<std::string> got;
        for (const auto& e : entries) got.push_back(e.key);
        r.fail(d.loc, fmt::format("data must hold exactly one of synthetic, files, text, inputs; got {}", got.empty() ? "none" : fmt::format("{}", fmt::join(got, " and "))));
    }
    const Entry& e = entries[0];
    if (e.key == "synthetic") {
        d.kind = DataSpec::Kind::synthetic;
        for (const auto& s : r.map(e.value, e.path, "data.synthetic", kSyntheticKeys)) {
            if (s.key == "samples") d.synthetic.samples = r.positive(s.value, s.path, s.path);
            if (s.key == "classes") d.synthetic.classes = r.positive(s.value, s.path, s.path);
            if (s.key == "class_tokens") d.synthetic.class_tokens = r.non_negative(s.value, s.path, s.path);
            if (s.key == "signal") d.synthetic.signal = r.in_range(s.value, s.path, s.path, 0, false, 1, false);
            if (s.key == "min_length") d.synthetic.min_length = r.in_range(s.value, s.path, s.path, 0, true, 1, false);
            if (s.key == "seed") d.synthetic.seed = static_cast<std::uint64_t>(r.non_negative(s.value, s.path, s.path));
        }
    } else if (e.key == "files") {
        d.kind = DataSpec::Kind::files;
        const auto files = r.map(e.value, e.path, "data.files", kFilesKeys);
        const Entry* in = find(files, "inputs");
        if (!in) r.fail(r.at(e), "data.files needs `inputs`: a map from input name to .npy file");
        Keys names;
        for (const auto& i : inputs) names.push_back(i.name);
        for (const auto& f : r.map(in->value, in->path, "data.files.inputs", {})) {
            if (!contains(names, f.key))
                r.fail(r.at(f.key_node, f.path), fmt::format("data.files.inputs: no input named '{}' (inputs: {}){}", f.key, join(names),
                                                              did_you_mean(f.key, names)));
            d.files.inputs[f.key] = resolve(folder, r.string(f.value, f.path, f.path));
        }
        if (const Entry* l = find(files, "labels")) d.files.labels = resolve(folder, r.string(l->value, l->path, l->path));
    } else {
        d.kind = DataSpec::Kind::text;
        const auto text = r.map(e.value, e.path, "data.text", kTextKeys);
        const Entry* p = find(text, "path");
        if (!p) r.fail(r.at(e), "data.text needs `path`: a TSV file");
        d.text.path = resolve(folder, r.string(p->value, p->path, p->path));
        if (const Entry* v = find(text, "validation")) d.text.validation = resolve(folder, r.string(v->value, v->path, v->path));
        if (const Entry* t = find(text, "test")) d.text.test = resolve(folder, r.string(t->value, t->path, t->path));
        if (const Entry* t = find(text, "tokenizer")) {
            spec::TokenizerSpec& tok = d.text.tokenizer;
            tok.loc = r.at(*t);
            for (const auto& k : r.map(t->value, t->path, t->path, kTokenizerKeys)) {
                if (k.key == "type") {
                    tok.type = r.string(k.value, k.path, k.path);
                    if (!contains(kTokenizerTypes, tok.type))
                        r.fail(r.at(k), fmt::format("{} must be one of {}, got '{}'{}", k.path, join(kTokenizerTypes), tok.type,
                                                    did_you_mean(tok.type, kTokenizerTypes)));
                }
                if (k.key == "vocab") tok.vocab = r.positive(k.value, k.path, k.path);
                if (k.key == "lowercase") tok.lowercase = r.boolean(k.value, k.path, k.path);
                if (k.key == "model") {
                    tok.model = r.string(k.value, k.path, k.path);
                    if (tok.model != "unigram" && tok.model != "bpe") r.fail(r.at(k), fmt::format("{} must be unigram or bpe, got '{}'", k.path, tok.model));
                }
            }
            if (tok.type == "bytes" && tok.vocab != 0 && tok.vocab != 257)
                r.fail(tok.loc, fmt::format("data.text.tokenizer: bytes have 257 ids (0 padding, 1..256 the bytes), got vocab {}", tok.vocab));
            if (tok.type != "sentencepiece" && find(r.map(t->value, t->path, t->path, kTokenizerKeys), "model"))
                r.fail(tok.loc, "data.text.tokenizer: `model` (unigram or bpe) is for type sentencepiece");
        }
    }
    return d;
}

Spec read_spec(const Reader& r, const YAML::Node& root, const std::string& path, const std::string& default_name, const fs::path& folder) {
    Spec spec;
    spec.path = path;
    spec.name = default_name;
    const auto top = r.map(root, "", "the spec", kTopKeys);
    for (const char* required : {"inputs", "nodes", "loss"})
        if (!find(top, required)) r.fail(r.file_start(), fmt::format("the spec needs a `{}` key (known keys: {})", required, join(kTopKeys)));
    // Inputs before data: data.files names inputs.
    for (const char* key : {"name", "inputs", "nodes", "outputs", "loss", "task", "train", "data", "run"}) {
        const Entry* e = find(top, key);
        if (!e) continue;
        const std::string k = key;
        if (k == "name") {
            spec.name = r.string(e->value, e->path, "name");
            check_name(r.at(*e), "name", spec.name);
        } else if (k == "inputs") {
            for (const auto& n : r.list(e->value, e->path, "inputs")) spec.inputs.push_back(read_input(r, n));
            if (spec.inputs.empty()) r.fail(r.at(*e), "inputs must list at least one input");
        } else if (k == "nodes") {
            for (const auto& n : r.list(e->value, e->path, "nodes")) spec.nodes.push_back(read_node(r, n));
        } else if (k == "outputs") {
            spec.outputs_loc = r.at(*e);
            for (const auto& n : r.list(e->value, e->path, "outputs")) spec.outputs.push_back(r.string(n, e->path, "an output"));
        } else if (k == "loss") {
            spec.loss_loc = r.at(*e);
            spec.loss = r.string(e->value, e->path, "loss");
        } else if (k == "task") {
            spec.task_loc = r.at(*e);
            spec.task = r.string(e->value, e->path, "task");
            if (!contains(kTasks, spec.task))
                r.fail(spec.task_loc, fmt::format("unknown task '{}' (known: {}){}", spec.task, join(kTasks), did_you_mean(spec.task, kTasks)));
        } else if (k == "train") {
            spec.train = read_train(r, *e);
        } else if (k == "data") {
            spec.data = read_data(r, *e, spec.inputs, folder);
        } else if (k == "run") {
            // What a training run found and wrote into its model.yaml.
            for (const auto& f : r.map(e->value, e->path, "run", kRunKeys)) {
                if (f.key == "threshold") spec.run.threshold = r.number(f.value, f.path, f.path);
                if (f.key == "tokenizer") spec.run.tokenizer = r.string(f.value, f.path, f.path);
                if (f.key == "checkpoint") spec.run.checkpoint = r.string(f.value, f.path, f.path);
            }
        }
    }
    check_unique_names(spec);
    return spec;
}

// --set KEY=VALUE. KEY is checked against the format's keys (and the spec's
// input and node names) before VALUE is written, so a typo is an error, never
// a new key that nothing reads. Returns the keys written.
std::set<std::string> apply_overrides(YAML::Node& root, const std::vector<std::string>& overrides, const std::string& file) {
    const Reader r(file, {});
    std::set<std::string> written;
    for (const auto& raw : overrides) {
        const auto eq = raw.find('=');
        const std::string key = raw.substr(0, eq);
        const Location where{file, 0, 0, key.empty() ? raw : key};
        if (eq == std::string::npos || key.empty()) throw SpecError(where, "expected KEY=VALUE, such as train.epochs=5");
        YAML::Node value;
        try {
            value = YAML::Load(raw.substr(eq + 1));
        } catch (const YAML::ParserException& e) {
            throw SpecError(where, "the value is not valid YAML: " + e.msg);
        }
        Keys seg;
        for (std::size_t start = 0;;) {
            const auto dot = key.find('.', start);
            seg.push_back(key.substr(start, dot - start));
            if (dot == std::string::npos) break;
            start = dot + 1;
        }
        for (const auto& s : seg)
            if (s.empty()) throw SpecError(where, "KEY must be a dotted path such as train.optimizer.lr");
        // An unknown segment i: name the known ones, and the whole corrected key when one is near.
        const auto unknown = [&](std::size_t i, const Keys& known, const std::string& what) {
            std::string message = fmt::format("{} '{}' (known: {})", what, seg[i], join(known));
            if (const auto near = near_miss(seg[i], known)) {
                Keys fixed = seg;
                fixed[i] = *near;
                message += fmt::format(" (did you mean '{}'?)", fmt::join(fixed, "."));
            }
            throw SpecError(where, message);
        };
        if (!contains(kTopKeys, seg[0])) unknown(0, kTopKeys, "unknown top-level key");
        const auto depth = [&](std::size_t n, const char* form) {
            if (seg.size() != n) throw SpecError(where, fmt::format("expected a key of the form {}", form));
        };
        if (seg[0] == "inputs" || seg[0] == "nodes") {
            // A list addressed by name: nodes.left_lstm.units.
            const bool nodes = seg[0] == "nodes";
            depth(3, nodes ? "nodes.<node name>.<key>" : "inputs.<input name>.<key>");
            if (!nodes && !contains(kInputKeys, seg[2])) unknown(2, kInputKeys, "unknown input key");
            if (seg[2] == "name") throw SpecError(where, "a name cannot be changed with --set: other nodes refer to it");
            Keys names;
            bool found = false;
            for (YAML::Node item : r.list(static_cast<const YAML::Node&>(root)[seg[0]], seg[0], seg[0])) {
                const YAML::Node& view = item;
                if (!view.IsMap() || !view["name"] || !view["name"].IsScalar()) continue;
                names.push_back(view["name"].Scalar());
                if (names.back() == seg[1] && !found) {
                    item[seg[2]] = value;
                    found = true;
                }
            }
            if (!found) unknown(1, names, nodes ? "no node named" : "no input named");
        } else {
            // Maps all the way down; every segment must be a key the format knows.
            std::string prefix;
            for (std::size_t i = 0; i < seg.size(); ++i) {
                // data.inputs.<input name> is a source, whatever the input's name.
                const bool source = i == 3 && seg[0] == "data" && seg[1] == "inputs";
                const auto it = kSections.find(source ? "data.inputs.*" : prefix);
                if (it == kSections.end()) throw SpecError(where, fmt::format("'{}' is a single value, with no keys below it", prefix));
                if (!it->second.empty() && !contains(it->second, seg[i]))
                    unknown(i, it->second, prefix.empty() ? "unknown top-level key" : "unknown " + prefix + " key");
                prefix += (prefix.empty() ? "" : ".") + seg[i];
            }
            // Copies of a Node refer to the same node; assignment would replace its content.
            std::vector<YAML::Node> chain{root};
            std::string path;
            for (std::size_t i = 0; i + 1 < seg.size(); ++i) {
                path += (path.empty() ? "" : ".") + seg[i];
                chain.push_back(chain.back()[seg[i]]);
                const YAML::Node& next = chain.back();
                if (next.IsDefined() && !next.IsNull() && !next.IsMap()) r.map(next, path, path, {});  // fails: not a map
            }
            chain.back()[seg.back()] = value;
        }
        written.insert(key);
    }
    return written;
}

// The spec as read, --set applied, every data path absolute: a run's
// model.yaml, which lives in the run's folder, not beside the spec.
std::string resolved_yaml(YAML::Node root, const Spec& spec) {
    root = YAML::Clone(root);
    const auto absolute = [](const std::string& p) { return fs::absolute(p).lexically_normal().string(); };
    YAML::Node data = root["data"];
    const DataSpec& d = spec.data;
    if (data.IsMap()) {
        if (d.kind == DataSpec::Kind::text) {
            for (const auto& [key, path] : {std::pair{"path", d.text.path}, {"validation", d.text.validation}, {"test", d.text.test}})
                if (!path.empty()) data["text"][key] = absolute(path);
        } else if (d.kind == DataSpec::Kind::files) {
            for (const auto& [name, path] : d.files.inputs) data["files"]["inputs"][name] = absolute(path);
            if (!d.files.labels.empty()) data["files"]["labels"] = absolute(d.files.labels);
        } else if (d.kind == DataSpec::Kind::columns) {
            for (const auto& [key, path] : {std::pair{"train", d.columns.train}, {"validation", d.columns.validation}, {"test", d.columns.test}})
                if (!path.empty()) data[key] = absolute(path);
            for (const auto& [name, source] : d.columns.inputs)
                if (source.kind == InputSource::Kind::npy) data["inputs"][name]["npy"] = absolute(source.npy);
        }
    }
    YAML::Emitter out;
    out << root;
    return std::string(out.c_str()) + "\n";
}

Spec load(const std::string& yaml, const std::string& file, const std::string& default_name, const fs::path& folder,
          const std::vector<std::string>& overrides) {
    YAML::Node root;
    try {
        root = YAML::Load(yaml);
    } catch (const YAML::ParserException& e) {
        throw SpecError(Location{file, e.mark.line + 1, e.mark.column + 1, ""}, "not valid YAML: " + e.msg);
    }
    const Reader plain(file, {});
    if (root.IsNull())
        throw SpecError(plain.file_start(), "the spec is empty (no YAML in it): expected a map with keys " + join(kTopKeys));
    plain.map(root, "", "the spec", {});  // a spec that is not a map fails here, before --set walks it
    const Reader r(file, apply_overrides(root, overrides, file));
    Spec spec = read_spec(r, root, file, default_name, folder);
    spec.resolved_yaml = resolved_yaml(root, spec);
    return spec;
}

}  // namespace

Spec load_spec_file(const std::string& path, const std::vector<std::string>& overrides) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) throw SpecError(Location{path, 0, 0, ""}, "no such file");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw SpecError(Location{path, 0, 0, ""}, "cannot open the file");
    std::stringstream yaml;
    yaml << in.rdbuf();
    return load(yaml.str(), path, fs::path(path).stem().string(), fs::path(path).parent_path(), overrides);
}

Spec load_spec_string(const std::string& yaml, const std::string& name, const std::vector<std::string>& overrides) {
    return load(yaml, "<string>", name, fs::path(), overrides);
}

std::string with_run(const Spec& spec, const Spec::Run& run) {
    YAML::Node root = YAML::Load(spec.resolved_yaml);
    YAML::Node r;
    if (!run.checkpoint.empty()) r["checkpoint"] = run.checkpoint;
    if (!run.tokenizer.empty()) r["tokenizer"] = run.tokenizer;
    if (run.threshold) r["threshold"] = *run.threshold;
    root["run"] = r;
    YAML::Emitter out;
    out << root;
    return std::string(out.c_str()) + "\n";
}

}  // namespace graphrun::spec
