// Nearest neighbours by cosine similarity among a set of vectors: exact (the
// inner products of unit rows, in chunks) or approximate (HNSW, Debian's
// hnswlib, on the same unit rows), saved to and loaded from a folder.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace graphrun::text {

struct Neighbour {
    std::int64_t row;  // 0-based, in the order the vectors were given
    float similarity;  // cosine
};

// HNSW's settings: M links a node, ef_construction candidates while
// building, ef while searching (at least k).
struct HnswSettings {
    std::int64_t m = 16, ef_construction = 200, ef = 256;
};

class VectorIndex {
public:
    using Hnsw = HnswSettings;

    // `vectors`: n rows of `dimension` floats; each row is scaled to unit length
    // (a zero row stays zero and scores 0). With `approximate` an HNSW graph is
    // built as well (one thread, a fixed seed: the same graph every time).
    VectorIndex(std::vector<float> vectors, std::int64_t dimension, bool approximate, Hnsw hnsw = {});
    VectorIndex(VectorIndex&&) noexcept;
    ~VectorIndex();

    std::int64_t size() const;
    std::int64_t dimension() const;
    bool approximate() const;
    const Hnsw& hnsw() const;
    const std::vector<float>& unit_rows() const;

    // The k most similar rows to `query` (any length), best first; ties by row.
    std::vector<Neighbour> search(const float* query, std::int64_t k) const;
    // Exact search however the index was built: the reference an approximate one is measured against.
    std::vector<Neighbour> search_exact(const float* query, std::int64_t k) const;

    // dir/vectors.npy (the unit rows) and, if approximate, dir/hnsw.bin; returns
    // hnsw.bin's size and FNV-1a hash for the caller's manifest (0, "" without).
    std::pair<std::int64_t, std::string> save(const std::string& dir) const;
    // What save() wrote; hnsw.bin must have the size and hash the manifest gave.
    static VectorIndex load(const std::string& dir, bool approximate, Hnsw hnsw, std::int64_t hnsw_bytes, const std::string& hnsw_hash);

private:
    struct Impl;
    explicit VectorIndex(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// FNV-1a 64 of a file's bytes, 16 hex digits (to check a file is the one recorded).
std::string file_hash(const std::string& path);

}  // namespace graphrun::text
