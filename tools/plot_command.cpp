// Training pictures: OUT/training.svg, drawn by gnuplot from OUT/metrics.jsonl
// (loss and val_auc per epoch) and OUT/validation.tsv (the last epoch's
// validation similarities and labels, as histograms of similar and dissimilar
// pairs: the one picture that shows separation, or collapse). `graphrun plot
// OUT` redraws it; training writes it after the run.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "graphrun/error.hpp"
#include "engine/io/atomic_file.hpp"
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

// Histograms of similarity, bins of 0.05 over [-1, 1], a row per bin: center,
// similar, dissimilar; counts, or with `shares` each class's share of its pairs.
std::string histogram_rows(const std::vector<float>& similarity, const std::vector<float>& label, bool shares) {
    constexpr int kBins = 40;
    std::array<double, kBins> similar{}, dissimilar{};
    double n_similar = 0, n_dissimilar = 0;
    for (std::size_t k = 0; k < similarity.size(); ++k) {
        const int bin = std::clamp(static_cast<int>((similarity[k] + 1.0) / 2.0 * kBins), 0, kBins - 1);
        (label[k] == 1.0f ? similar : dissimilar)[static_cast<std::size_t>(bin)] += 1;
        (label[k] == 1.0f ? n_similar : n_dissimilar) += 1;
    }
    const double per_similar = shares ? std::max(n_similar, 1.0) : 1.0, per_dissimilar = shares ? std::max(n_dissimilar, 1.0) : 1.0;
    std::string rows;
    for (int b = 0; b < kBins; ++b)
        rows += fmt::format("{:.3f} {} {}\n", -1.0 + (b + 0.5) * 2.0 / kBins, similar[static_cast<std::size_t>(b)] / per_similar,
                            dissimilar[static_cast<std::size_t>(b)] / per_dissimilar);
    return rows;
}

// OUT/validation.tsv as written by write_validation_tsv (none: empty histograms).
std::string histogram_rows(const fs::path& validation) {
    std::vector<float> similarity, label;
    std::ifstream in(validation);
    for (double sim = 0, y = 0; in >> sim >> y;) {
        similarity.push_back(static_cast<float>(sim));
        label.push_back(static_cast<float>(y));
    }
    return histogram_rows(similarity, label, false);
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

std::string draw_training_svg(const std::string& out_dir, const std::string& title) {
    const fs::path dir(out_dir);
    const std::string epochs = epoch_rows(dir / "metrics.jsonl"), histogram = histogram_rows(dir / "validation.tsv");
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
set xlabel "cosine similarity of the two embeddings"
set ylabel "pairs"
unset y2label
unset y2tics
set ytics mirror
set xrange [-1:1]
set xtics auto
set offsets 0, 0, 0, 0
set key top left
set style fill transparent solid 0.5 noborder
set boxwidth 0.05
plot $hist using 1:2 with boxes lc rgb "#1f77b4" title "similar pairs", \
     $hist using 1:3 with boxes lc rgb "#d62728" title "dissimilar pairs"
unset multiplot
)",
                                           epochs, histogram, gnuplot_quoted(title));
    // gnuplot draws into a temporary file; its own output (font warnings and
    // the like) stays out of ours, and when it fails its first line says why.
    const Drawing drawing = draw_with("gnuplot", script);
    if (!drawing.ok) throw Error(fmt::format("gnuplot failed ({}) drawing {}", drawing.complaint, svg.string()));
    io::write_file_atomically(svg.string(), std::as_bytes(std::span(drawing.bytes)));
    return "";
}

std::string draw_evaluation_svg(const std::string& path, const std::vector<float>& similarity, const std::vector<float>& label, const std::string& title) {
    if (!on_path("gnuplot")) return "no evaluation picture: gnuplot is not installed (apt-get install gnuplot-nox)";
    const std::string hist = histogram_rows(similarity, label, true);
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
set xlabel "cosine similarity of the two embeddings"
set ylabel "share of the class's pairs"
set xrange [-1:1]
set key top left
set grid
set style fill transparent solid 0.5 noborder
set boxwidth 0.05
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
                                           hist, roc, gnuplot_quoted(title));
    const Drawing drawing = draw_with("gnuplot", script);
    if (!drawing.ok) throw Error(fmt::format("gnuplot failed ({}) drawing {}", drawing.complaint, path));
    io::write_file_atomically(path, std::as_bytes(std::span(drawing.bytes)));
    return "";
}

int run_plot(const Args& args) {
    const std::string dir = args.spec;  // `graphrun plot OUT`: the run folder
    if (!fs::is_directory(dir)) throw Error(fmt::format("{}: not a folder; expected a run folder holding metrics.jsonl", dir));
    const std::string note = draw_training_svg(dir, fs::path(dir).filename().string());
    if (!note.empty()) {
        fmt::print(stderr, "graphrun: {}\n", note);
        return 1;
    }
    fmt::print("graphrun: wrote {}\n", (fs::path(dir) / "training.svg").string());
    return 0;
}

}  // namespace graphrun::cli
