// Nearest neighbours among a set of vectors by a pair model's metric
// (engine/text/metric.hpp), saved to and loaded from a folder:
//   cosine:    exact (the inner products of unit rows, in chunks) or approximate
//              (HNSW, Debian's hnswlib, inner-product space on the same unit rows)
//   euclidean: exact (every row's distance) or approximate (HNSW, L2 space on
//              the rows as given; the query is shifted by eps, so its squared L2
//              is the model's |q - v + eps|^2, and the hits' distances are then
//              computed as exact search computes them)
//   manhattan: exact only (hnswlib has no L1 space)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/text/metric.hpp"

namespace graphrun::text {

struct Neighbour {
    std::int64_t row;  // 0-based, in the order the vectors were given
    float similarity;  // the metric's: cosine, or minus the distance
};

// HNSW's settings: M links a node, ef_construction candidates while
// building, ef while searching (at least k).
struct HnswSettings {
    std::int64_t m = 16, ef_construction = 200, ef = 256;
};

class VectorIndex {
public:
    using Hnsw = HnswSettings;

    // `vectors`: n rows of `dimension` floats; for cosine each row is scaled to
    // unit length (a zero row stays zero and scores 0), for a distance kept as
    // given. With `approximate` an HNSW graph is built as well (one thread, a
    // fixed seed: the same graph every time); for manhattan that is an Error.
    VectorIndex(std::vector<float> vectors, std::int64_t dimension, bool approximate, Hnsw hnsw = {}, Metric metric = {});
    VectorIndex(VectorIndex&&) noexcept;
    ~VectorIndex();

    std::int64_t size() const;
    std::int64_t dimension() const;
    bool approximate() const;
    const Hnsw& hnsw() const;
    const Metric& metric() const;
    const std::vector<float>& rows() const;  // unit rows for cosine, else as given

    // The k most similar rows to `query` (any length), best first; ties by row.
    std::vector<Neighbour> search(const float* query, std::int64_t k) const;
    // Exact search however the index was built: the reference an approximate one is measured against.
    std::vector<Neighbour> search_exact(const float* query, std::int64_t k) const;

    // dir/vectors.npy (rows()) and, if approximate, dir/hnsw.bin; returns
    // hnsw.bin's size and FNV-1a hash for the caller's manifest (0, "" without).
    std::pair<std::int64_t, std::string> save(const std::string& dir) const;
    // What save() wrote; hnsw.bin must have the size and hash the manifest gave.
    static VectorIndex load(const std::string& dir, bool approximate, Hnsw hnsw, std::int64_t hnsw_bytes, const std::string& hnsw_hash,
                            Metric metric = {});

private:
    struct Impl;
    explicit VectorIndex(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// FNV-1a 64 of a file's bytes, 16 hex digits (to check a file is the one recorded).
std::string file_hash(const std::string& path);

}  // namespace graphrun::text
