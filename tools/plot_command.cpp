// Training pictures: OUT/training.svg, drawn by gnuplot from OUT/metrics.jsonl
// (loss and val_auc per epoch) and OUT/validation.tsv (the last epoch's
// validation similarities and labels, as histograms of similar and dissimilar
// pairs: the one picture that shows separation, or collapse). `graphrun plot
// OUT` redraws it; training writes it after the run. A cosine model's scores
// are drawn over [-1, 1]; a distance model's as the distance (minus its
// similarity), from 0 to the largest one drawn.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "graphrun/error.hpp"
#include "engine/io/atomic_file.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/siamese_task.hpp"
#include "ops/builtin.hpp"
#include "tools/cli.hpp"
#include "tools/external_program.hpp"

namespace graphrun::cli {

namespace fs = std::filesystem;

namespace {

bool on_path(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "");
    for (std::string dir; std::getline(dirs, dir, ':');)
        if (!dir.empty() && access((fs::path(dir) / program).c_str(), X_OK) == 0) return true;
    return false;
}

// The epochs' lines of metrics.jsonl as a gnuplot data block: epoch train_loss val_loss val_auc.
std::string epoch_rows(const fs::path& metrics) {
    std::ifstream in(metrics);
    if (!in) throw Error(fmt::format("{}: cannot open (is this a graphrun run folder?)", metrics.string()));
    std::string rows, line;
    int number = 0;
    while (std::getline(in, line)) {
        ++number;
        if (line.empty()) continue;
        const auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object() || !j.contains("epoch") || !j.contains("train_loss"))
            throw Error(fmt::format("{}:{}: expected a JSON object with epoch and train_loss", metrics.string(), number));
        auto value = [&](const char* key) {
            return j.contains(key) && j[key].is_number() ? fmt::format("{}", j[key].get<double>()) : std::string("NaN");
        };
        rows += fmt::format("{} {} {} {}\n", value("epoch"), value("train_loss"), value("val_loss"), value("val_auc"));
    }
    if (rows.empty()) throw Error(fmt::format("{}: no epochs yet", metrics.string()));
    return rows;
}

// The histograms' x axis: what is drawn (the cosine, or the distance: minus
// the similarity) and over which range, in 40 bins.
struct ScoreAxis {
    static constexpr int kBins = 40;
    bool distance = false;
    double low = -1, high = 1;
    std::string label = "cosine similarity of the two embeddings";

    double value(float similarity) const { return distance ? -static_cast<double>(similarity) : similarity; }
    double bin_width() const { return (high - low) / kBins; }
};

ScoreAxis score_axis(const text::Metric& metric, const std::vector<float>& similarity) {
    ScoreAxis axis;
    if (!metric.is_distance()) return axis;
    axis.distance = true;
    axis.low = 0;
    double largest = 0;
    for (const float s : similarity)
        if (std::isfinite(s)) largest = std::max(largest, -static_cast<double>(s));
    axis.high = largest > 0 ? largest * (1 + 1e-6) : 1;  // the largest distance falls in the last bin
    axis.label = metric.name() + " distance of the two embeddings (lower = more similar)";
    return axis;
}

// Histograms of the scores on `axis`, a row per bin: center, similar,
// dissimilar; counts, or with `shares` each class's share of its pairs.
std::string histogram_rows(const std::vector<float>& similarity, const std::vector<float>& label, bool shares, const ScoreAxis& axis) {
    constexpr int kBins = ScoreAxis::kBins;
    std::array<double, kBins> similar{}, dissimilar{};
    double n_similar = 0, n_dissimilar = 0;
    for (std::size_t k = 0; k < similarity.size(); ++k) {
        const int bin = std::clamp(static_cast<int>((axis.value(similarity[k]) - axis.low) / axis.bin_width()), 0, kBins - 1);
        (label[k] == 1.0f ? similar : dissimilar)[static_cast<std::size_t>(bin)] += 1;
        (label[k] == 1.0f ? n_similar : n_dissimilar) += 1;
    }
    const double per_similar = shares ? std::max(n_similar, 1.0) : 1.0, per_dissimilar = shares ? std::max(n_dissimilar, 1.0) : 1.0;
    std::string rows;
    for (int b = 0; b < kBins; ++b)
        rows += fmt::format("{:.6g} {} {}\n", axis.low + (b + 0.5) * axis.bin_width(), similar[static_cast<std::size_t>(b)] / per_similar,
                            dissimilar[static_cast<std::size_t>(b)] / per_dissimilar);
    return rows;
}

// OUT/validation.tsv as write_validation_tsv wrote it (none: no pairs).
void read_validation_tsv(const fs::path& validation, std::vector<float>& similarity, std::vector<float>& label) {
    std::ifstream in(validation);
    for (double sim = 0, y = 0; in >> sim >> y;) {
        similarity.push_back(static_cast<float>(sim));
        label.push_back(static_cast<float>(y));
    }
}

// How the run in `dir` compares its pairs: its model.yaml's joining node (a
// pair model), else cosine (no validation similarities to draw then).
text::Metric run_metric(const fs::path& dir) {
    const fs::path yaml = dir / "model.yaml";
    if (!fs::exists(yaml)) return {};
    const spec::Spec spec = spec::load_spec_file(yaml.string());
    if (spec.task != "siamese") return {};
    return train::find_roles(build_graph(spec, builtin_ops()).graph).metric;
}

// A gnuplot string literal: single quotes, a quote inside doubled.
std::string gnuplot_quoted(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
    return q + "'";
}

}  // namespace

void write_validation_tsv(const std::string& out_dir, const std::vector<float>& similarity, const std::vector<float>& label) {
    std::string text;
    for (std::size_t k = 0; k < similarity.size(); ++k) text += fmt::format("{}\t{}\n", similarity[k], label[k]);
    io::write_file_atomically((fs::path(out_dir) / "validation.tsv").string(), std::as_bytes(std::span(text)));
}

std::string draw_training_svg(const std::string& out_dir, const std::string& title, const text::Metric& metric) {
    const fs::path dir(out_dir);
    std::vector<float> similarity, label;
    read_validation_tsv(dir / "validation.tsv", similarity, label);
    const ScoreAxis axis = score_axis(metric, similarity);
    const std::string epochs = epoch_rows(dir / "metrics.jsonl"), histogram = histogram_rows(similarity, label, false, axis);
    if (!on_path("gnuplot")) return "no training picture: gnuplot is not installed (apt-get install gnuplot-nox), then: graphrun plot " + out_dir;
    const fs::path svg = dir / "training.svg";
    const std::string script = fmt::format(R"(
$epochs << EOD
{}EOD
$hist << EOD
{}EOD
set terminal svg size 1100,420 dynamic noenhanced font "sans,11" background rgb "white"
set output '{{out}}'
set multiplot layout 1,2 title {}
set title "loss and validation AUC per epoch"
set xlabel "epoch"
set xtics 1
set offsets 0.25, 0.25, 0, 0
set ylabel "loss"
set y2label "validation ROC AUC"
set y2range [0.4:1]
set ytics nomirror
set y2tics
set key bottom left
set grid
plot $epochs using 1:2 with linespoints lw 2 title "train loss", \
     $epochs using 1:3 with linespoints lw 2 title "validation loss", \
     $epochs using 1:4 axes x1y2 with linespoints lw 2 dt 2 title "validation AUC"
set title "validation similarity at the last epoch"
set xlabel {}
set ylabel "pairs"
unset y2label
unset y2tics
set ytics mirror
set xrange [{}:{}]
set xtics auto
set offsets 0, 0, 0, 0
set key top {}
set style fill transparent solid 0.5 noborder
set boxwidth {}
plot $hist using 1:2 with boxes lc rgb "#1f77b4" title "similar pairs", \
     $hist using 1:3 with boxes lc rgb "#d62728" title "dissimilar pairs"
unset multiplot
)",
                                           epochs, histogram, gnuplot_quoted(title), gnuplot_quoted(axis.label), axis.low, axis.high,
                                           axis.distance ? "right" : "left", axis.bin_width());
    // gnuplot draws into a temporary file; its own output (font warnings and
    // the like) stays out of ours, and when it fails its first line says why.
    const Drawing drawing = draw_with("gnuplot", script);
    if (!drawing.ok) throw Error(fmt::format("gnuplot failed ({}) drawing {}", drawing.complaint, svg.string()));
    io::write_file_atomically(svg.string(), std::as_bytes(std::span(drawing.bytes)));
    return "";
}

std::string draw_evaluation_svg(const std::string& path, const std::vector<float>& similarity, const std::vector<float>& label, const std::string& title,
                                const text::Metric& metric) {
    if (!on_path("gnuplot")) return "no evaluation picture: gnuplot is not installed (apt-get install gnuplot-nox)";
    const ScoreAxis axis = score_axis(metric, similarity);
    const std::string hist = histogram_rows(similarity, label, true, axis);
    double n_similar = 0, n_dissimilar = 0;
    for (const float y : label) (y == 1.0f ? n_similar : n_dissimilar) += 1;
    // ROC: the rates as the threshold falls past each score (at most ~1000 points).
    std::vector<std::size_t> order(similarity.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return similarity[a] > similarity[b]; });
    std::string roc = "0 0\n";
    double tp = 0, fp = 0;
    const std::size_t every = std::max<std::size_t>(1, order.size() / 1000);
    for (std::size_t k = 0; k < order.size(); ++k) {
        (label[order[k]] == 1.0f ? tp : fp) += 1;
        if (k % every == 0 || k + 1 == order.size()) roc += fmt::format("{} {}\n", fp / std::max(n_dissimilar, 1.0), tp / std::max(n_similar, 1.0));
    }
    const std::string script = fmt::format(R"(
$hist << EOD
{}EOD
$roc << EOD
{}EOD
set terminal svg size 1100,420 dynamic noenhanced font "sans,11" background rgb "white"
set output '{{out}}'
set multiplot layout 1,2 title {}
set title "similarity of held-out pairs"
set xlabel {}
set ylabel "share of the class's pairs"
set xrange [{}:{}]
set key top {}
set grid
set style fill transparent solid 0.5 noborder
set boxwidth {}
plot $hist using 1:2 with boxes lc rgb "#1f77b4" title "similar pairs", \
     $hist using 1:3 with boxes lc rgb "#d62728" title "dissimilar pairs"
set title "ROC curve"
set xlabel "false positive rate"
set ylabel "true positive rate"
set xrange [0:1]
set yrange [0:1]
set size ratio -1
set key bottom right
plot $roc using 1:2 with lines lw 2 lc rgb "#1f77b4" title "model", x with lines dt 2 lc rgb "gray" title "chance"
unset multiplot
)",
                                           hist, roc, gnuplot_quoted(title), gnuplot_quoted(axis.label), axis.low, axis.high,
                                           axis.distance ? "right" : "left", axis.bin_width());
    const Drawing drawing = draw_with("gnuplot", script);
    if (!drawing.ok) throw Error(fmt::format("gnuplot failed ({}) drawing {}", drawing.complaint, path));
    io::write_file_atomically(path, std::as_bytes(std::span(drawing.bytes)));
    return "";
}

int run_plot(const Args& args) {
    const std::string dir = args.spec;  // `graphrun plot OUT`: the run folder
    if (!fs::is_directory(dir)) throw Error(fmt::format("{}: not a folder; expected a run folder holding metrics.jsonl", dir));
    const std::string note = draw_training_svg(dir, fs::path(dir).filename().string(), run_metric(dir));
    if (!note.empty()) {
        fmt::print(stderr, "graphrun: {}\n", note);
        return 1;
    }
    fmt::print("graphrun: wrote {}\n", (fs::path(dir) / "training.svg").string());
    return 0;
}

}  // namespace graphrun::cli
