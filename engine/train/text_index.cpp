#include "engine/train/text_index.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/io/atomic_file.hpp"
#include "engine/io/text_file.hpp"

namespace graphrun::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
// 2 adds "metric" and "eps" (and vectors.npy holds the rows as embedded for a
// distance); a folder of format 1 is a cosine index and still loads.
constexpr const char* kFormat = "graphrun-index 2";
constexpr const char* kFormat1 = "graphrun-index 1";
}

TextIndex::TextIndex(PairModel model, text::VectorIndex vectors, std::vector<std::string> texts)
    : model_(std::make_unique<PairModel>(std::move(model))), vectors_(std::make_unique<text::VectorIndex>(std::move(vectors))), texts_(std::move(texts)) {}
TextIndex::TextIndex(TextIndex&&) noexcept = default;
TextIndex::~TextIndex() = default;

void TextIndex::build(const PairModel& model, const std::string& run_dir, const std::vector<std::string>& texts, const std::string& dir,
                      std::optional<bool> approximate) {
    if (texts.empty()) throw Error("the corpus has no lines: nothing to index");
    const text::Metric& metric = model.metric();
    if (approximate.value_or(false) && metric.kind == text::MetricKind::manhattan)
        throw Error(fmt::format("{}: the model's similarity is the manhattan distance, which hnswlib cannot search approximately "
                                "(it has inner-product and L2 spaces): build the index without --approximate, for exact search",
                                run_dir));
    const bool hnsw = approximate.value_or(approximate_by_default(metric, static_cast<std::int64_t>(texts.size())));
    const text::VectorIndex vectors(model.embed(Side::right, texts), model.dimension(), hnsw, {}, metric);

    // Everything into a folder beside the target, then one rename: a reader
    // never sees half an index, and a failure leaves none.
    fs::path target = fs::absolute(dir).lexically_normal();
    if (target.filename().empty()) target = target.parent_path();  // "idx/"
    const std::string name = target.filename().string();
    if (name.empty() || name == "." || name == ".." || target == target.root_path())
        throw Error(fmt::format("{}: not a folder name an index can be written to", dir));
    const fs::path aside = target.parent_path() / fmt::format(".{}.tmp.{}", name, getpid());
    std::error_code ec;
    fs::remove_all(aside, ec);
    fs::create_directories(aside, ec);
    if (ec) throw Error(fmt::format("{}: cannot create a folder beside it: {}", dir, ec.message()));
    try {
        std::string all;
        for (const auto& t : texts) all += t + "\n";
        io::write_file_atomically((aside / "texts.txt").string(), std::as_bytes(std::span(all.data(), all.size())));
        const auto [hnsw_bytes, hnsw_hash] = vectors.save(aside.string());
        json manifest{{"format", kFormat},
                      {"run", fs::absolute(run_dir).lexically_normal().string()},
                      {"model", {{"structure", model.structure()}, {"weights", text::file_hash(model.checkpoint())}}},
                      {"count", vectors.size()},
                      {"dimension", vectors.dimension()},
                      {"side", "right"},
                      {"metric", metric.name()},
                      {"eps", metric.eps},
                      {"similarity", metric.is_distance() ? "-distance" : "cosine"},
                      {"approximate", hnsw}};
        if (hnsw)
            manifest["hnsw"] = {{"m", vectors.hnsw().m},
                                {"ef_construction", vectors.hnsw().ef_construction},
                                {"ef", vectors.hnsw().ef},
                                {"bytes", hnsw_bytes},
                                {"hash", hnsw_hash}};
        const std::string text = manifest.dump(2) + "\n";
        io::write_file_atomically((aside / "index.json").string(), std::as_bytes(std::span(text.data(), text.size())));
        fs::remove_all(target, ec);
        if (!ec) fs::rename(aside, target, ec);
        if (ec) throw Error(fmt::format("{}: cannot put the index in place: {}", dir, ec.message()));
    } catch (...) {
        std::error_code ec;
        fs::remove_all(aside, ec);
        throw;
    }
}

TextIndex TextIndex::load(const std::string& dir) {
    const fs::path folder(dir);
    const std::string manifest_path = (folder / "index.json").string();
    if (!fs::is_directory(folder)) throw Error(fmt::format("{}: no such folder (an index, the --out of graphrun index)", dir));
    std::ifstream in(manifest_path, std::ios::binary);
    if (!in) throw Error(fmt::format("{}: cannot open: not an index folder of graphrun index", manifest_path));
    json m;
    try {
        m = json::parse(in);
    } catch (const json::exception& e) {
        throw Error(fmt::format("{}: not valid JSON (cut short?): {}", manifest_path, e.what()));
    }
    try {
        const std::string format = m.value("format", "");
        if (format != kFormat && format != kFormat1)
            throw Error(fmt::format("{}: expected \"format\": \"{}\" (or \"{}\")", manifest_path, kFormat, kFormat1));
        // Format 1 knew cosine alone.
        const std::string metric_name = format == kFormat1 ? "cosine" : m.at("metric").get<std::string>();
        const auto kind = text::metric_kind(metric_name);
        if (!kind) throw Error(fmt::format("{}: unknown \"metric\": \"{}\" (cosine, euclidean or manhattan)", manifest_path, metric_name));
        const std::string run = m.at("run").get<std::string>();
        PairModel model = PairModel::load_run(run);
        // Vectors searched by one metric and queries scored by another would rank by neither.
        if (*kind != model.metric().kind)
            throw Error(fmt::format("{}: the index was built for a model whose similarity is {}, but the model in {} uses {}: "
                                    "build the index again with graphrun index",
                                    manifest_path, metric_name, run, model.metric().name()));
        // The corpus was embedded by one model: queries embedded by another would be compared with vectors of another space.
        const std::string structure = m.at("model").at("structure").get<std::string>(), weights = m.at("model").at("weights").get<std::string>();
        if (structure != model.structure() || weights != text::file_hash(model.checkpoint()))
            throw Error(fmt::format("{}: the index was built by another model than the one now in {} (structure {} and weights {} then, {} and {} now): "
                                    "build the index again with graphrun index",
                                    manifest_path, run, structure, weights, model.structure(), text::file_hash(model.checkpoint())));
        const bool approximate = m.at("approximate").get<bool>();
        text::HnswSettings settings;
        std::int64_t bytes = 0;
        std::string hash;
        if (approximate) {
            const json& h = m.at("hnsw");
            settings = {h.at("m").get<std::int64_t>(), h.at("ef_construction").get<std::int64_t>(), h.at("ef").get<std::int64_t>()};
            bytes = h.at("bytes").get<std::int64_t>();
            hash = h.at("hash").get<std::string>();
        }
        text::VectorIndex vectors = text::VectorIndex::load(dir, approximate, settings, bytes, hash, model.metric());
        const auto count = m.at("count").get<std::int64_t>();
        if (vectors.size() != count || vectors.dimension() != model.dimension())
            throw Error(fmt::format("{}: holds {} vectors of {}, the manifest says {} of {} (the model's: {})", (folder / "vectors.npy").string(),
                                    vectors.size(), vectors.dimension(), count, m.at("dimension").get<std::int64_t>(), model.dimension()));
        const std::string texts_path = (folder / "texts.txt").string();
        std::istringstream lines(io::read_text_file(texts_path));
        std::vector<std::string> texts;
        for (std::string line; std::getline(lines, line);) texts.push_back(std::move(line));
        if (static_cast<std::int64_t>(texts.size()) != count)
            throw Error(fmt::format("{}: {} lines, but the index holds {} vectors: the file is cut short or replaced", texts_path, texts.size(), count));
        return TextIndex(std::move(model), std::move(vectors), std::move(texts));
    } catch (const json::exception& e) {
        throw Error(fmt::format("{}: {}", manifest_path, e.what()));
    }
}

std::vector<std::vector<TextIndex::Hit>> TextIndex::search(const std::vector<std::string>& queries, std::int64_t k) const {
    const std::vector<float> q = model_->embed(Side::left, queries);
    const auto d = static_cast<std::size_t>(model_->dimension());
    std::vector<std::vector<Hit>> out;
    for (std::size_t i = 0; i < queries.size(); ++i) {
        std::vector<Hit> hits;
        for (const auto& n : vectors_->search(q.data() + i * d, k))
            hits.push_back({n.row + 1, n.similarity, &texts_[static_cast<std::size_t>(n.row)]});
        out.push_back(std::move(hits));
    }
    return out;
}

std::vector<TextIndex::Hit> TextIndex::search(const std::string& query, std::int64_t k) const { return search(std::vector<std::string>{query}, k).front(); }
std::int64_t TextIndex::size() const { return vectors_->size(); }
bool TextIndex::approximate() const { return vectors_->approximate(); }
bool approximate_by_default(const text::Metric& metric, std::int64_t lines) {
    return lines > kExactSearchLimit && metric.kind != text::MetricKind::manhattan;
}
const PairModel& TextIndex::model() const { return *model_; }

}  // namespace graphrun::train
