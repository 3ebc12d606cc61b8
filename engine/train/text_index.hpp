// A searchable corpus (graphrun index / search): each line of a text file
// embedded by a pair model's right branch, found for a query embedded by its
// left branch, by the model's own similarity (cosine, or minus the euclidean
// or manhattan distance). Its folder:
//   index.json   the manifest: format, the model's run folder (a reference,
//                checked by the graph's structure hash and the weights' hash),
//                the metric, count, dimension, exact or approximate and HNSW's settings
//   texts.txt    the corpus, a line each, as given
//   vectors.npy  (count, dimension) float32: unit rows (cosine), the embeddings (distances)
//   hnsw.bin     approximate indexes only (hnswlib's file; its size and hash in the manifest)
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/text/vector_index.hpp"
#include "engine/train/pair_model.hpp"

namespace graphrun::train {

// Exact search up to this many vectors; approximate beyond, unless asked.
inline constexpr std::int64_t kExactSearchLimit = 200000;
// Whether an index of `lines` is approximate when not asked: beyond the limit,
// except for manhattan, which hnswlib cannot search (always exact).
bool approximate_by_default(const text::Metric& metric, std::int64_t lines);

class TextIndex {
public:
    // Embeds `texts` and writes the folder `dir` whole (built aside, then renamed
    // into place); `approximate` unset: approximate_by_default. An approximate
    // index of a manhattan model is an Error.
    static void build(const PairModel& model, const std::string& run_dir, const std::vector<std::string>& texts, const std::string& dir,
                      std::optional<bool> approximate);
    // Loads the folder and its model; an Error names the file and what is wrong
    // (cut short, another model's, not an index).
    static TextIndex load(const std::string& dir);

    struct Hit {
        std::int64_t line;  // 1-based line of texts.txt
        float similarity;
        const std::string* text;
    };
    std::vector<Hit> search(const std::string& query, std::int64_t k) const;
    std::vector<std::vector<Hit>> search(const std::vector<std::string>& queries, std::int64_t k) const;
    std::int64_t size() const;
    bool approximate() const;
    const PairModel& model() const;

    TextIndex(TextIndex&&) noexcept;
    ~TextIndex();

private:
    TextIndex(PairModel model, text::VectorIndex vectors, std::vector<std::string> texts);
    std::unique_ptr<PairModel> model_;
    std::unique_ptr<text::VectorIndex> vectors_;
    std::vector<std::string> texts_;
};

}  // namespace graphrun::train
