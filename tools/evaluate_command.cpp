// `graphrun evaluate RUN [--data FILE] [--out FILE.json]` (or SPEC --checkpoint
// CKPT): a trained model's figures on held-out data (its data.test by
// default): a table on stdout and a JSON file (RUN/eval.json unless --out;
// written whole or not at all). For pair models, the ranking figures and
// RUN/eval.svg besides.
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/io/atomic_file.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/pair_model.hpp"
#include "engine/train/trainer.hpp"
#include "ops/builtin.hpp"
#include "tools/cli.hpp"

namespace graphrun::cli {

namespace {

namespace fs = std::filesystem;

void write_json(const std::string& path, const nlohmann::json& j) {
    const std::string text = j.dump(2) + "\n";
    io::write_file_atomically(path, std::as_bytes(std::span(text)));
    fmt::print(stderr, "graphrun: wrote {}\n", path);
}

// A pair model's run: the figures of held-out pairs, ranking included.
int evaluate_pair_run(const Args& args, const train::PairModel& model) {
    const spec::Spec& spec = model.spec();
    const std::string data = args.data.empty() ? spec.data.text.test : args.data;
    if (data.empty()) throw Error(fmt::format("{}: the model names no test data (data.text.test): give --data FILE", args.spec));
    const train::TextPairs pairs = train::read_text_pairs(data);
    const train::PairEvaluation e = train::evaluate_pairs(model, pairs, args.candidates, spec.train.seed);
    nlohmann::json j;
    j["run"] = args.spec;
    j["checkpoint"] = spec.run.checkpoint;
    j["data"] = data;
    // What the similarity, the threshold and the ranking are on.
    const text::Metric& metric = model.metric();
    j["metric"] = metric.name();
    j["similarity"] = metric.similarity_meaning();
    fmt::print("{:<18} {} (similarity: {})\n", "metric", metric.name(), metric.similarity_meaning());
    const auto put = [&](const char* name, const std::optional<double>& v, const char* format) {
        j[name] = v ? nlohmann::json(*v) : nlohmann::json(nullptr);
        fmt::print("{:<18} {}\n", name, v ? fmt::format(fmt::runtime(format), *v) : "n/a");
    };
    fmt::print("{:<18} {} ({} similar, {} dissimilar{})\n", "pairs", e.pairs, e.similar, e.pairs - e.similar,
               static_cast<std::size_t>(e.pairs) > pairs.label.size() ? " by random pairing" : "");
    j["pairs"] = e.pairs;
    j["similar"] = e.similar;
    put("auc", e.auc, "{:.4f}");
    put("average_precision", e.average_precision, "{:.4f}");
    put("threshold", e.threshold, "{:+.4f}");
    // A distance model's threshold as the distance it allows: similar at or below it.
    if (metric.is_distance() && e.threshold) put("threshold_distance", metric.distance_of(*e.threshold), "{:.4f}");
    put("accuracy", e.accuracy, "{:.4f}");
    put("precision", e.precision, "{:.4f}");
    put("recall", e.recall, "{:.4f}");
    put("f1", e.f1, "{:.4f}");
    put("recall_at_1", e.recall_at_1, "{:.4f}");
    put("recall_at_5", e.recall_at_5, "{:.4f}");
    put("recall_at_10", e.recall_at_10, "{:.4f}");
    put("mrr", e.mrr, "{:.4f}");
    fmt::print("{:<18} {}\n", "candidates", e.candidates);
    j["candidates"] = e.candidates;
    write_json(args.out.empty() ? (fs::path(args.spec) / "eval.json").string() : args.out, j);
    const std::string svg = (fs::path(args.spec) / "eval.svg").string();
    const std::string note = draw_evaluation_svg(svg, e.similarity, e.label, fmt::format("{} on {}", fs::path(args.spec).filename().string(), fs::path(data).filename().string()), metric);
    fmt::print(stderr, "graphrun: {}\n", note.empty() ? "wrote " + svg : note);
    return 0;
}

}  // namespace

int run_evaluate(const Args& args) {
    const bool run = fs::is_directory(args.spec);
    if (run && !args.checkpoint.empty()) throw UsageError("evaluate RUN takes the run's own weights; --checkpoint goes with a SPEC");
    if (run && !args.overrides.empty()) throw UsageError("evaluate RUN evaluates the model as trained; --set goes with a SPEC");
    if (run) {
        const spec::Spec probe = spec::load_spec_file((fs::path(args.spec) / "model.yaml").string());
        if (probe.task == "siamese" && probe.data.kind == spec::DataSpec::Kind::text) return evaluate_pair_run(args, train::PairModel::load_run(args.spec));
    }
    if (!run && args.checkpoint.empty()) throw UsageError("evaluate needs a run's folder, or a SPEC with --checkpoint CKPT");
    const spec::Spec spec = spec::load_spec_file(run ? (fs::path(args.spec) / "model.yaml").string() : args.spec, args.overrides);
    const std::string checkpoint = run ? (fs::path(args.spec) / (spec.run.checkpoint.empty() ? "checkpoint.safetensors" : spec.run.checkpoint)).string() : args.checkpoint;
    const BuiltGraph built = build_graph(spec, builtin_ops());
    const train::EpochMetrics m = train::evaluate(spec, built, checkpoint, args.data);
    // The figures lose validation's "val_" prefix: here they are the held-out data's.
    const auto plain = [](const std::string& name) { return name.starts_with("val_") ? name.substr(4) : name; };
    nlohmann::json j;
    j["checkpoint"] = checkpoint;
    j["data"] = args.data.empty() ? spec.data.columns.test : args.data;
    j["loss"] = m.val_loss ? nlohmann::json(*m.val_loss) : nlohmann::json(nullptr);
    fmt::print("{:<12} {}\n", "loss", m.val_loss ? fmt::format("{:.4f}", *m.val_loss) : "n/a");
    for (const auto& f : m.metrics) {
        j[plain(f.name)] = f.value ? nlohmann::json(*f.value) : nlohmann::json(nullptr);
        fmt::print("{:<12} {}\n", plain(f.name), f.value ? fmt::format(fmt::runtime(f.format), *f.value) : "n/a");
    }
    // The confusion matrix: a row per true class, a column per predicted one.
    if (!m.val_confusion.empty()) {
        const std::size_t k = m.val_classes.size();
        std::size_t width = 5;
        for (const auto& c : m.val_classes) width = std::max(width, c.size() + 1);
        fmt::print("confusion (rows: true class, columns: predicted)\n{:>{}}", "", width);
        for (const auto& c : m.val_classes) fmt::print("{:>{}}", c, width);
        fmt::print("\n");
        nlohmann::json rows = nlohmann::json::array();
        for (std::size_t t = 0; t < k; ++t) {
            fmt::print("{:>{}}", m.val_classes[t], width);
            nlohmann::json row = nlohmann::json::array();
            for (std::size_t p = 0; p < k; ++p) {
                const auto count = static_cast<std::int64_t>(m.val_confusion[t * k + p]);
                fmt::print("{:>{}}", count, width);
                row.push_back(count);
            }
            fmt::print("\n");
            rows.push_back(row);
        }
        j["classes"] = m.val_classes;
        j["confusion"] = rows;
    }
    if (!args.out.empty() || run) write_json(args.out.empty() ? (fs::path(args.spec) / "eval.json").string() : args.out, j);
    return 0;
}

}  // namespace graphrun::cli
