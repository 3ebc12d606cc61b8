// How a pair model compares two embeddings, a (D) from the left branch and
// b (D) from the right, exactly as its graph's joining node does:
//   cosine:    a.b / (max(|a|, eps) max(|b|, eps))                 (op cosine)
//   euclidean: |a - b + eps|_2, F.pairwise_distance's eps          (composite euclidean)
//   manhattan: |a - b|_1                                            (composite manhattan)
// The similarity is higher for more similar pairs: the cosine itself, or
// minus the distance. What a user reads as a distance is 1 - cosine, or the
// distance itself.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace graphrun::text {

enum class MetricKind { cosine, euclidean, manhattan };

struct Metric {
    MetricKind kind = MetricKind::cosine;
    double eps = 1e-8;  // cosine: the norms' floor; euclidean: added to each difference; manhattan: unused

    bool is_distance() const { return kind != MetricKind::cosine; }
    std::string name() const { return kind == MetricKind::cosine ? "cosine" : kind == MetricKind::euclidean ? "euclidean" : "manhattan"; }
    // How the similarity reads, for output a user sees.
    std::string similarity_meaning() const { return is_distance() ? "minus the " + name() + " distance" : "the cosine of the two embeddings"; }
    double distance_of(double similarity) const { return is_distance() ? -similarity : 1.0 - similarity; }

    // The similarity of a (D) and b (D), step by step as the graph's nodes
    // compute it: float32 element-wise, each row's sum in double (sum_last).
    float similarity(const float* a, const float* b, std::int64_t d) const {
        double sum = 0;
        if (kind == MetricKind::euclidean) {
            const auto e = static_cast<float>(eps);
            for (std::int64_t k = 0; k < d; ++k) {
                const float shifted = (a[k] - b[k]) + e;
                sum += shifted * shifted;
            }
            return -std::sqrt(static_cast<float>(sum));
        }
        if (kind == MetricKind::manhattan) {
            for (std::int64_t k = 0; k < d; ++k) sum += std::fabs(a[k] - b[k]);
            return -static_cast<float>(sum);
        }
        double na = 0, nb = 0;
        for (std::int64_t k = 0; k < d; ++k) {
            sum += static_cast<double>(a[k]) * b[k];
            na += static_cast<double>(a[k]) * a[k];
            nb += static_cast<double>(b[k]) * b[k];
        }
        return static_cast<float>(sum / (std::max(std::sqrt(na), eps) * std::max(std::sqrt(nb), eps)));
    }
};

inline std::optional<MetricKind> metric_kind(std::string_view name) {
    if (name == "cosine") return MetricKind::cosine;
    if (name == "euclidean") return MetricKind::euclidean;
    if (name == "manhattan") return MetricKind::manhattan;
    return std::nullopt;
}

}  // namespace graphrun::text
