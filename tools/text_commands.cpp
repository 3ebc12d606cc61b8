// `graphrun score RUN TEXT_A TEXT_B` (or --data PAIRS.tsv, or standard input),
// `graphrun embed RUN --side left|right [--data TEXTS.txt] --out FILE.npy`,
// `graphrun index RUN --data CORPUS.txt --out INDEX` and
// `graphrun search INDEX [--k N] QUERY...` (or --data, or standard input):
// a trained pair model (engine/train/pair_model.hpp) used on texts. Results on
// stdout (score) or in --out (embed, never over an earlier file unless
// --overwrite); bad lines are exit 2 with file:line and what was expected.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "engine/io/npy.hpp"
#include "engine/io/text_file.hpp"
#include "engine/text/tokenizer.hpp"
#include "engine/train/pair_model.hpp"
#include "engine/train/text_index.hpp"
#include "tools/cli.hpp"

namespace graphrun::cli {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxTextBytes = 1 << 20;  // 1 MB: a longer line is a mistake, not a text

// The lines of --data, or of standard input: (where, text) each, checked.
struct Lines {
    std::string name;  // the file, or "standard input"
    std::vector<std::string> text;
    std::vector<std::int64_t> number;
};

Lines read_lines(const std::string& path) {
    Lines lines;
    lines.name = path.empty() ? "standard input" : path;
    std::string all;
    if (path.empty()) {
        std::ostringstream in;
        in << std::cin.rdbuf();
        all = in.str();
    } else {
        all = io::read_text_file(path);
    }
    std::istringstream in(all);
    std::string line;
    std::int64_t number = 0;
    while (std::getline(in, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.size() > kMaxTextBytes)
            throw Error(fmt::format("{}:{}: the line is {} bytes long; a text may be at most 1 MB", lines.name, number, line.size()));
        if (!text::valid_utf8(line)) throw Error(fmt::format("{}:{}: the line is not valid UTF-8", lines.name, number));
        lines.text.push_back(std::move(line));
        lines.number.push_back(number);
    }
    return lines;
}

}  // namespace

int run_score(const Args& args) {
    const train::PairModel model = train::PairModel::load_run(args.spec);
    const auto threshold = model.threshold();
    const text::Metric& metric = model.metric();
    const auto decision = [&](float s) { return threshold ? (s >= *threshold ? "similar" : "dissimilar") : "n/a"; };
    // A distance model's threshold is on minus the distance: shown as the distance it allows.
    const auto threshold_text = [&] {
        if (!threshold) return std::string(" (the run chose no threshold)");
        if (metric.is_distance()) return fmt::format(" (threshold: {} distance at most {:.4f})", metric.name(), -*threshold);
        return fmt::format(" (threshold {:+.4f})", *threshold);
    };
    if (args.texts.size() == 2) {
        for (std::size_t k = 0; k < 2; ++k) {
            if (!text::valid_utf8(args.texts[k])) throw Error(fmt::format("TEXT_{}: not valid UTF-8", k ? 'B' : 'A'));
            if (args.texts[k].size() > kMaxTextBytes) throw Error(fmt::format("TEXT_{}: {} bytes; a text may be at most 1 MB", k ? 'B' : 'A', args.texts[k].size()));
        }
        const auto left = model.embed(train::Side::left, {args.texts[0]}), right = model.embed(train::Side::right, {args.texts[1]});
        const float s = model.similarity(left.data(), right.data());
        if (metric.is_distance())
            fmt::print("similarity {:+.4f} ({})\ndistance   {:.4f} ({})\ndecision   {}{}\n", s, metric.similarity_meaning(), metric.distance_of(s),
                       metric.name(), decision(s), threshold_text());
        else
            fmt::print("similarity {:+.4f}\ndistance   {:.4f}\ndecision   {}{}\n", s, metric.distance_of(s), decision(s), threshold_text());
        return 0;
    }
    // Pairs, a line each: similarity <tab> distance <tab> decision (1 similar, 0 not);
    // the distance is 1 - cosine, or the model's own.
    const Lines lines = read_lines(args.data);
    std::vector<std::string> left, right;
    for (std::size_t k = 0; k < lines.text.size(); ++k) {
        const std::string& line = lines.text[k];
        const auto tab = line.find('\t');
        if (line.empty() || tab == std::string::npos)
            throw Error(fmt::format("{}:{}: expected a left and a right text separated by a tab{}", lines.name, lines.number[k],
                                    line.empty() ? ", found an empty line" : ", found no tab"));
        const auto tab2 = line.find('\t', tab + 1);
        left.push_back(line.substr(0, tab));
        right.push_back(line.substr(tab + 1, tab2 == std::string::npos ? std::string::npos : tab2 - tab - 1));
    }
    if (left.empty()) throw Error(fmt::format("{}: no pairs to score", lines.name));
    const auto l = model.embed(train::Side::left, left), r = model.embed(train::Side::right, right);
    const auto d = static_cast<std::size_t>(model.dimension());
    std::string out;
    for (std::size_t k = 0; k < left.size(); ++k) {
        const float s = model.similarity(l.data() + k * d, r.data() + k * d);
        out += fmt::format("{:.6f}\t{:.6f}\t{}\n", s, metric.distance_of(s), threshold ? (s >= *threshold ? "1" : "0") : "");
    }
    fmt::print("{}", out);
    return 0;
}

int run_embed(const Args& args) {
    if (fs::exists(args.out) && !args.overwrite)
        throw Error(fmt::format("{} exists: give --overwrite to replace it, or another --out", args.out));
    const train::PairModel model = train::PairModel::load_run(args.spec);
    const Lines lines = read_lines(args.data);
    if (lines.text.empty()) throw Error(fmt::format("{}: no lines to embed (one text a line)", lines.name));
    for (std::size_t k = 0; k < lines.text.size(); ++k)
        if (lines.text[k].empty()) throw Error(fmt::format("{}:{}: an empty line; every line is a text to embed", lines.name, lines.number[k]));
    const train::Side side = args.side == "left" ? train::Side::left : train::Side::right;
    const auto vectors = model.embed(side, lines.text);
    Tensor t(Shape{static_cast<std::int64_t>(lines.text.size()), model.dimension()});
    std::copy(vectors.begin(), vectors.end(), t.f32());
    io::write_npy(args.out, t);
    fmt::print(stderr, "graphrun: wrote {} ({} x {} float32, the {} branch)\n", args.out, lines.text.size(), model.dimension(), args.side);
    return 0;
}

int run_index(const Args& args) {
    if (fs::exists(args.out) && !args.overwrite) throw Error(fmt::format("{} exists: give --overwrite to replace it, or another --out", args.out));
    const train::PairModel model = train::PairModel::load_run(args.spec);
    const Lines lines = read_lines(args.data);
    if (lines.text.empty()) throw Error(fmt::format("{}: the corpus has no lines (one text a line)", lines.name));
    for (std::size_t k = 0; k < lines.text.size(); ++k)
        if (lines.text[k].empty()) throw Error(fmt::format("{}:{}: an empty line; every line of the corpus is a text", lines.name, lines.number[k]));
    train::TextIndex::build(model, args.spec, lines.text, args.out, args.approximate ? std::optional<bool>(true) : std::nullopt);
    const auto count = static_cast<std::int64_t>(lines.text.size());
    const bool approximate = args.approximate || train::approximate_by_default(model.metric(), count);
    fmt::print(stderr, "graphrun: wrote {}: {} lines, {} search by {}{}\n", args.out, count, approximate ? "approximate (HNSW)" : "exact",
               model.metric().is_distance() ? "the " + model.metric().name() + " distance" : "cosine",
               !approximate && count > train::kExactSearchLimit ? " (hnswlib cannot search by it approximately)" : "");
    return 0;
}

int run_search(const Args& args) {
    const train::TextIndex index = train::TextIndex::load(args.spec);
    std::vector<std::string> queries = args.texts;
    if (queries.empty()) {
        const Lines lines = read_lines(args.data);
        for (std::size_t k = 0; k < lines.text.size(); ++k) {
            if (lines.text[k].empty()) throw Error(fmt::format("{}:{}: an empty line; every line is a query", lines.name, lines.number[k]));
            queries.push_back(lines.text[k]);
        }
        if (queries.empty()) throw Error(fmt::format("{}: no queries", lines.name));
    }
    for (std::size_t q = 0; q < queries.size(); ++q) {
        if (!text::valid_utf8(queries[q])) throw Error(fmt::format("query {}: not valid UTF-8", q + 1));
        if (queries[q].size() > kMaxTextBytes) throw Error(fmt::format("query {}: {} bytes; a text may be at most 1 MB", q + 1, queries[q].size()));
    }
    const auto results = index.search(queries, args.k);
    // Each hit's cosine, or for a distance model its distance, named: nearest first either way.
    const text::Metric& metric = index.model().metric();
    const auto score = [&](float similarity) {
        return metric.is_distance() ? fmt::format("{} {:.4f}", metric.name(), metric.distance_of(similarity)) : fmt::format("{:+.4f}", similarity);
    };
    std::string out;
    for (std::size_t q = 0; q < queries.size(); ++q) {
        out += fmt::format("{}query {}: {}\n", q ? "\n" : "", q + 1, queries[q]);
        std::int64_t rank = 0;
        for (const auto& hit : results[q]) out += fmt::format("{:>4}  {}  line {}: {}\n", ++rank, score(hit.similarity), hit.line, *hit.text);
    }
    fmt::print("{}", out);
    return 0;
}

}  // namespace graphrun::cli
