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

std::optional<double> embedding_spread(const float* rows, std::int64_t n, std::int64_t d, SpreadOf of) {
    if (n < 2) return std::nullopt;
    std::vector<double> sum(static_cast<std::size_t>(d), 0.0);
    std::int64_t counted = 0;
    double squared_norms = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        double norm = 0;
        for (std::int64_t k = 0; k < d; ++k) norm += static_cast<double>(rows[i * d + k]) * rows[i * d + k];
        if (of == SpreadOf::directions) {
            norm = std::sqrt(norm);
            if (norm < 1e-12) continue;  // a zero embedding has no direction
            for (std::int64_t k = 0; k < d; ++k) sum[static_cast<std::size_t>(k)] += rows[i * d + k] / norm;
            squared_norms += 1;
        } else {
            for (std::int64_t k = 0; k < d; ++k) sum[static_cast<std::size_t>(k)] += rows[i * d + k];
            squared_norms += norm;
        }
        ++counted;
    }
    if (counted < 2) return std::nullopt;
    if (squared_norms < 1e-24) return 1.0;  // (points) every row at the origin: one point
    double squared = 0;
    for (double s : sum) squared += s * s;
    return (squared - squared_norms) / (static_cast<double>(counted - 1) * squared_norms);
}

namespace {
// Rows ordered by score, highest first.
std::vector<std::size_t> by_score_descending(std::span<const float> score) {
    std::vector<std::size_t> order(score.size());
    std::iota(order.begin(), order.end(), 0);
    // NaN sorts last, as the lowest score: a strict weak order, and every tie run below has a first element.
    const auto key = [&](std::size_t i) { return std::isnan(score[i]) ? -HUGE_VALF : score[i]; };
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key(a) > key(b); });
    return order;
}
}  // namespace

std::optional<double> average_precision(std::span<const float> score, std::span<const float> label) {
    const auto order = by_score_descending(score);
    const double positives = static_cast<double>(std::count(label.begin(), label.end(), 1.0f));
    if (positives == 0) return std::nullopt;
    double ap = 0, true_positives = 0, previous_recall = 0;
    for (std::size_t k = 0; k < order.size();) {
        // A run of tied scores is one step of the curve.
        std::size_t end = k;
        do true_positives += label[order[end++]] == 1.0f;
        while (end < order.size() && score[order[end]] == score[order[k]]);
        const double recall = true_positives / positives, precision = true_positives / static_cast<double>(end);
        ap += (recall - previous_recall) * precision;
        previous_recall = recall;
        k = end;
    }
    return ap;
}

std::optional<ThresholdChoice> best_accuracy_threshold(std::span<const float> score, std::span<const float> label) {
    if (score.empty()) return std::nullopt;
    auto order = by_score_descending(score);
    std::reverse(order.begin(), order.end());  // lowest first
    // Cut below everything: all predicted 1, right = the positives; moving the
    // cut above each run of tied scores turns those rows to 0.
    double right = static_cast<double>(std::count(label.begin(), label.end(), 1.0f));
    const double n = static_cast<double>(score.size());
    ThresholdChoice best{static_cast<double>(score[order.front()]) - 1e-6, right / n};
    for (std::size_t k = 0; k < order.size();) {
        std::size_t end = k;
        do right += label[order[end++]] == 1.0f ? -1 : 1;
        while (end < order.size() && score[order[end]] == score[order[k]]);
        const double cut = end < order.size() ? 0.5 * (static_cast<double>(score[order[k]]) + score[order[end]]) : static_cast<double>(score[order[k]]) + 1e-6;
        if (right / n > best.accuracy) best = {cut, right / n};
        k = end;
    }
    return best;
}

Decisions decide(std::span<const float> score, std::span<const float> label, double threshold) {
    double tp = 0, fp = 0, fn = 0, tn = 0;
    for (std::size_t i = 0; i < score.size(); ++i) {
        const bool predicted = score[i] >= threshold, truth = label[i] == 1.0f;
        (predicted ? (truth ? tp : fp) : (truth ? fn : tn)) += 1;
    }
    Decisions d;
    const double n = tp + fp + fn + tn;
    if (n > 0) d.accuracy = (tp + tn) / n;
    if (tp + fp > 0) d.precision = tp / (tp + fp);
    if (tp + fn > 0) d.recall = tp / (tp + fn);
    if (2 * tp + fp + fn > 0) d.f1 = 2 * tp / (2 * tp + fp + fn);
    return d;
}

}  // namespace graphrun::train
