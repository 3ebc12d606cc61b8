#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "engine/train/metrics.hpp"

namespace graphrun::train {

std::optional<double> roc_auc(std::span<const float> score, std::span<const float> label) {
    // Mann-Whitney U from ranks, with tied scores sharing their mean rank.
    std::vector<std::size_t> order(score.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return score[a] < score[b]; });
    double positive_rank_sum = 0, positives = 0;
    for (std::size_t i = 0; i < order.size();) {
        std::size_t j = i;
        while (j < order.size() && score[order[j]] == score[order[i]]) ++j;
        const double mean_rank = (static_cast<double>(i) + static_cast<double>(j) + 1) / 2;  // ranks are 1-based
        for (std::size_t k = i; k < j; ++k)
            if (label[order[k]] == 1.0f) {
                positive_rank_sum += mean_rank;
                positives += 1;
            }
        i = j;
    }
    const double negatives = static_cast<double>(score.size()) - positives;
    if (positives == 0 || negatives == 0) return std::nullopt;
    return (positive_rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

std::optional<double> embedding_spread(const float* rows, std::int64_t n, std::int64_t d) {
    if (n < 2) return std::nullopt;
    std::vector<double> sum(static_cast<std::size_t>(d), 0.0);
    std::int64_t unit_rows = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        double norm = 0;
        for (std::int64_t k = 0; k < d; ++k) norm += static_cast<double>(rows[i * d + k]) * rows[i * d + k];
        norm = std::sqrt(norm);
        if (norm < 1e-12) continue;  // a zero embedding has no direction
        for (std::int64_t k = 0; k < d; ++k) sum[static_cast<std::size_t>(k)] += rows[i * d + k] / norm;
        ++unit_rows;
    }
    if (unit_rows < 2) return std::nullopt;
    double squared = 0;
    for (double s : sum) squared += s * s;
    const double m = static_cast<double>(unit_rows);
    return (squared - m) / (m * (m - 1));
}

}  // namespace graphrun::train
