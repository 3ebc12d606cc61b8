#include "engine/text/vector_index.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <queue>

#include <fmt/format.h>
#include <hnswlib/hnswlib.h>

#include "engine/io/npy.hpp"
#include "graphrun/error.hpp"

namespace graphrun::text {

namespace fs = std::filesystem;

struct VectorIndex::Impl {
    std::int64_t n = 0, d = 0;
    std::vector<float> rows;  // unit rows for cosine, else as given
    bool approximate = false;
    Hnsw settings;
    Metric metric;
    std::unique_ptr<hnswlib::SpaceInterface<float>> space;
    std::unique_ptr<hnswlib::HierarchicalNSW<float>> hnsw;
};

namespace {

void to_unit(float* v, std::int64_t d) {
    double norm = 0;
    for (std::int64_t k = 0; k < d; ++k) norm += static_cast<double>(v[k]) * v[k];
    if (norm == 0) return;
    const auto scale = static_cast<float>(1.0 / std::sqrt(norm));
    for (std::int64_t k = 0; k < d; ++k) v[k] *= scale;
}

void refuse_approximate(const Metric& metric) {
    if (metric.kind == MetricKind::manhattan)
        throw Error("an approximate (HNSW) index cannot search by the manhattan distance: hnswlib has inner-product and L2 spaces, no L1; "
                    "build the index without --approximate (exact search)");
}

std::unique_ptr<hnswlib::SpaceInterface<float>> make_space(const Metric& metric, std::int64_t d) {
    if (metric.kind == MetricKind::euclidean) return std::make_unique<hnswlib::L2Space>(static_cast<std::size_t>(d));
    return std::make_unique<hnswlib::InnerProductSpace>(static_cast<std::size_t>(d));
}

// Best first; equal similarities by row, so results never depend on the order work was done in.
bool better(const Neighbour& a, const Neighbour& b) { return a.similarity != b.similarity ? a.similarity > b.similarity : a.row < b.row; }

}  // namespace

VectorIndex::VectorIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VectorIndex::VectorIndex(VectorIndex&&) noexcept = default;
VectorIndex::~VectorIndex() = default;

VectorIndex::VectorIndex(std::vector<float> vectors, std::int64_t dimension, bool approximate, Hnsw hnsw, Metric metric)
    : impl_(std::make_unique<Impl>()) {
    if (dimension <= 0 || vectors.size() % static_cast<std::size_t>(dimension) != 0)
        throw Error(fmt::format("an index needs rows of {} floats; got {} floats", dimension, vectors.size()));
    Impl& m = *impl_;
    m.d = dimension;
    m.n = static_cast<std::int64_t>(vectors.size()) / dimension;
    m.rows = std::move(vectors);
    m.metric = metric;
    if (!metric.is_distance())
        for (std::int64_t r = 0; r < m.n; ++r) to_unit(m.rows.data() + r * m.d, m.d);
    m.approximate = approximate;
    m.settings = hnsw;
    if (!approximate) return;
    refuse_approximate(metric);
    m.space = make_space(metric, m.d);
    m.hnsw = std::make_unique<hnswlib::HierarchicalNSW<float>>(m.space.get(), static_cast<std::size_t>(std::max<std::int64_t>(m.n, 1)),
                                                               static_cast<std::size_t>(hnsw.m), static_cast<std::size_t>(hnsw.ef_construction), 100);
    for (std::int64_t r = 0; r < m.n; ++r) m.hnsw->addPoint(m.rows.data() + r * m.d, static_cast<hnswlib::labeltype>(r));
    m.hnsw->setEf(static_cast<std::size_t>(hnsw.ef));
}

std::int64_t VectorIndex::size() const { return impl_->n; }
std::int64_t VectorIndex::dimension() const { return impl_->d; }
bool VectorIndex::approximate() const { return impl_->approximate; }
const VectorIndex::Hnsw& VectorIndex::hnsw() const { return impl_->settings; }
const Metric& VectorIndex::metric() const { return impl_->metric; }
const std::vector<float>& VectorIndex::rows() const { return impl_->rows; }

std::vector<Neighbour> VectorIndex::search_exact(const float* query, std::int64_t k) const {
    const Impl& m = *impl_;
    k = std::min(k, m.n);
    if (k <= 0) return {};
    std::vector<float> q(query, query + m.d);
    if (!m.metric.is_distance()) to_unit(q.data(), m.d);
    // A min-heap of the k best so far (its top is the worst of them).
    const auto worse = [](const Neighbour& a, const Neighbour& b) { return better(a, b); };
    std::priority_queue<Neighbour, std::vector<Neighbour>, decltype(worse)> best(worse);
    constexpr std::int64_t kChunk = 4096;  // rows whose products are formed together, in cache
    std::vector<float> scores(kChunk);
    for (std::int64_t first = 0; first < m.n; first += kChunk) {
        const std::int64_t rows = std::min(kChunk, m.n - first);
        for (std::int64_t r = 0; r < rows; ++r) {
            const float* v = m.rows.data() + (first + r) * m.d;
            if (m.metric.is_distance()) {
                scores[static_cast<std::size_t>(r)] = m.metric.similarity(q.data(), v, m.d);
                continue;
            }
            float dot = 0;
            for (std::int64_t j = 0; j < m.d; ++j) dot += q[static_cast<std::size_t>(j)] * v[j];
            scores[static_cast<std::size_t>(r)] = dot;
        }
        for (std::int64_t r = 0; r < rows; ++r) {
            const Neighbour cand{first + r, scores[static_cast<std::size_t>(r)]};
            if (static_cast<std::int64_t>(best.size()) < k) best.push(cand);
            else if (better(cand, best.top())) {
                best.pop();
                best.push(cand);
            }
        }
    }
    std::vector<Neighbour> out;
    while (!best.empty()) {
        out.push_back(best.top());
        best.pop();
    }
    std::reverse(out.begin(), out.end());
    return out;
}

std::vector<Neighbour> VectorIndex::search(const float* query, std::int64_t k) const {
    const Impl& m = *impl_;
    if (!m.approximate) return search_exact(query, k);
    k = std::min(k, m.n);
    if (k <= 0) return {};
    std::vector<float> q(query, query + m.d);
    if (m.metric.kind == MetricKind::euclidean) {
        // L2 space ranks by |q' - v|^2; with q' = q + eps that is the model's |q - v + eps|^2.
        for (float& x : q) x += static_cast<float>(m.metric.eps);
    } else {
        to_unit(q.data(), m.d);
    }
    // hnswlib searches with max(ef, k) candidates: never fewer than k.
    auto found = m.hnsw->searchKnn(q.data(), static_cast<std::size_t>(k));
    std::vector<Neighbour> out;
    while (!found.empty()) {
        const auto row = static_cast<std::int64_t>(found.top().second);
        // hnswlib's inner-product distance is 1 - dot; a euclidean hit's distance is computed as exact search does.
        const float similarity = m.metric.kind == MetricKind::euclidean ? m.metric.similarity(query, m.rows.data() + row * m.d, m.d)
                                                                         : 1.0f - found.top().first;
        out.push_back({row, similarity});
        found.pop();
    }
    std::sort(out.begin(), out.end(), better);
    return out;
}

std::string file_hash(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(fmt::format("{}: cannot open", path));
    std::uint64_t h = 14695981039346656037ull;
    char buffer[1 << 16];
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
        for (std::streamsize i = 0; i < in.gcount(); ++i) h = (h ^ static_cast<unsigned char>(buffer[i])) * 1099511628211ull;
        if (!in) break;
    }
    return fmt::format("{:016x}", h);
}

std::pair<std::int64_t, std::string> VectorIndex::save(const std::string& dir) const {
    const Impl& m = *impl_;
    Tensor rows(Shape{m.n, m.d});
    std::copy(m.rows.begin(), m.rows.end(), rows.f32());
    io::write_npy((fs::path(dir) / "vectors.npy").string(), rows);
    if (!m.approximate) return {0, ""};
    const std::string path = (fs::path(dir) / "hnsw.bin").string();
    m.hnsw->saveIndex(path);
    return {static_cast<std::int64_t>(fs::file_size(path)), file_hash(path)};
}

VectorIndex VectorIndex::load(const std::string& dir, bool approximate, Hnsw hnsw, std::int64_t hnsw_bytes, const std::string& hnsw_hash,
                              Metric metric) {
    const std::string vectors_path = (fs::path(dir) / "vectors.npy").string();
    const Tensor rows = io::read_npy(vectors_path);
    if (rows.rank() != 2 || rows.dtype() != DType::f32)
        throw Error(fmt::format("{}: expected a (count, dimension) float32 array, got {}", vectors_path, to_string(rows.type())));
    auto impl = std::make_unique<Impl>();
    impl->n = rows.dim(0);
    impl->d = rows.dim(1);
    impl->rows.assign(rows.f32(), rows.f32() + rows.numel());
    impl->approximate = approximate;
    impl->settings = hnsw;
    impl->metric = metric;
    if (approximate) {
        refuse_approximate(metric);
        const std::string path = (fs::path(dir) / "hnsw.bin").string();
        std::error_code ec;
        const auto bytes = static_cast<std::int64_t>(fs::file_size(path, ec));
        if (ec) throw Error(fmt::format("{}: cannot read the approximate index: {}", path, ec.message()));
        // hnswlib reads what it is given without checking: check it is what was written.
        if (bytes != hnsw_bytes)
            throw Error(fmt::format("{}: {} bytes, but the index was written with {}: the file is cut short or replaced", path, bytes, hnsw_bytes));
        if (file_hash(path) != hnsw_hash) throw Error(fmt::format("{}: its bytes are not the ones the index was written with", path));
        impl->space = make_space(metric, impl->d);
        impl->hnsw = std::make_unique<hnswlib::HierarchicalNSW<float>>(impl->space.get(), path, false, static_cast<std::size_t>(impl->n));
        impl->hnsw->setEf(static_cast<std::size_t>(hnsw.ef));
    }
    return VectorIndex(std::move(impl));
}

}  // namespace graphrun::text
