// What the loader and the builder share and that needs no YAML: how a
// location prints, near-miss suggestions, and the size checks that must run
// before anything is allocated.
#include "engine/spec/spec.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "engine/spec/loader.hpp"

namespace graphrun::spec {

std::string Location::str() const {
    if (!override_key.empty()) return "--set " + override_key;
    if (line > 0) return fmt::format("{}:{}:{}", file, line, column);
    return file.empty() ? "<spec>" : file;
}

namespace {
// Optimal string alignment distance: Levenshtein plus the swap of two
// neighbouring letters, the most common typo ("epcohs").
std::size_t edit_distance(const std::string& a, const std::string& b) {
    const std::size_t n = a.size(), m = b.size();
    std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
    for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= n; ++i)
        for (std::size_t j = 1; j <= m; ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[n][m];
}
}  // namespace

std::optional<std::string> near_miss(const std::string& word, const std::vector<std::string>& candidates) {
    std::optional<std::string> best;
    std::size_t best_distance = 3;  // suggest only within 2 edits
    for (const auto& c : candidates) {
        const std::size_t d = edit_distance(word, c);
        if (d < best_distance && c != word) {
            best = c;
            best_distance = d;
        }
    }
    return best;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
    const auto best = near_miss(word, candidates);
    return best ? fmt::format(" (did you mean '{}'?)", *best) : "";
}

std::string join(const std::vector<std::string>& words) {
    return fmt::format("{}", fmt::join(words, ", "));
}

void check_name(const Location& where, const std::string& what, const std::string& name) {
    bool ok = !name.empty();
    for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
    if (!ok)
        throw SpecError(where, fmt::format("{} '{}' must be letters, digits, '_' or '-' ('.' and '/' are kept for parameter and "
                                           "generated node names)", what, name));
}

void check_unique_names(const Spec& spec) {
    std::map<std::string, std::pair<Location, const char*>> seen;  // name -> where first, "an input" or "a node"
    const auto claim = [&](const std::string& name, const Location& loc, const char* kind, const char* as) {
        const auto [it, fresh] = seen.emplace(name, std::make_pair(loc, as));
        if (!fresh) throw SpecError(loc, fmt::format("{} '{}' is defined twice (first as {} at {})", kind, name, it->second.second, it->second.first.str()));
    };
    for (const auto& i : spec.inputs) claim(i.name, i.loc, "input", "an input");
    for (const auto& n : spec.nodes) claim(n.name, n.loc, "node", "a node");
}

std::int64_t checked_elements(const std::vector<std::int64_t>& dims) {
    // Multiply in long double so 10^9 x 10^3 x ... cannot wrap around first.
    long double count = 1;
    for (auto d : dims) count *= static_cast<long double>(d);
    if (count > static_cast<long double>(kMaxElements)) return -1;
    return static_cast<std::int64_t>(count);
}

void check_size(const Location& where, const std::string& what, const std::vector<std::int64_t>& dims) {
    if (checked_elements(dims) >= 0) return;
    long double count = 1;
    for (auto d : dims) count *= static_cast<long double>(d);
    throw SpecError(where, fmt::format("{} {} is too large: {:.0f} elements (at most 2^31 = {})", what, to_string(Shape(dims)),
                                       static_cast<double>(count), kMaxElements));
}

}  // namespace graphrun::spec
