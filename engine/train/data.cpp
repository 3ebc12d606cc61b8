#include "engine/train/data.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "engine/io/npy.hpp"
#include "engine/io/text_file.hpp"
#include "engine/text/tokenizer.hpp"

namespace graphrun::train {

void PairSet::append(const PairSet& other, std::int64_t row) {
    left.insert(left.end(), other.left.begin() + row * left_length, other.left.begin() + (row + 1) * left_length);
    right.insert(right.end(), other.right.begin() + row * right_length, other.right.begin() + (row + 1) * right_length);
    label.push_back(other.label[static_cast<std::size_t>(row)]);
    if (!other.left_tokens.empty()) {
        left_tokens.push_back(other.left_tokens[static_cast<std::size_t>(row)]);
        right_tokens.push_back(other.right_tokens[static_cast<std::size_t>(row)]);
    }
}

namespace {

PairSet empty_like(const PairShape& shape) {
    PairSet p;
    p.left_length = shape.left_length;
    p.right_length = shape.right_length;
    return p;
}

void draw_sequence(std::mt19937_64& rng, const spec::SyntheticData& config, std::int64_t cls, std::int64_t length, std::int64_t vocab,
                   std::vector<std::int32_t>& out) {
    // Real tokens are 1..vocab-1; class `cls` owns `class_tokens` of them (default: an equal slice).
    const std::int64_t usable = vocab - 1;
    const std::int64_t equal_share = std::max<std::int64_t>(1, usable / config.classes);
    const std::int64_t slice = config.class_tokens > 0 ? std::min(config.class_tokens, equal_share) : equal_share;
    const std::int64_t first = 1 + (cls * slice) % usable;
    std::uniform_int_distribution<std::int64_t> own(0, slice - 1), any(1, usable);
    std::bernoulli_distribution from_own(config.signal);
    const auto shortest = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(config.min_length * static_cast<double>(length))));
    const std::int64_t real = std::uniform_int_distribution<std::int64_t>(std::min(shortest, length), length)(rng);
    for (std::int64_t t = 0; t < length; ++t) {
        std::int64_t id = 0;
        if (t < real) id = from_own(rng) ? std::min(usable, first + own(rng)) : any(rng);
        out.push_back(static_cast<std::int32_t>(id));
    }
}

// Token ids as int32, checked against [0, vocab): the first few outside it are
// reported with their values, rows and columns.
std::vector<std::int32_t> ids_from(const Tensor& t, const std::string& path, std::int64_t length, std::int64_t vocab) {
    if (t.rank() != 2 || t.dim(1) != length)
        throw Error(fmt::format("{}: expected token ids of shape (count, {}), got {}", path, length, to_string(t.shape())));
    if (t.dtype() == DType::f32) throw Error(fmt::format("{}: expected int32 or int64 token ids, got float", path));
    std::vector<std::int32_t> out(static_cast<std::size_t>(t.numel()));
    std::string bad;
    std::int64_t found = 0;
    for (std::int64_t j = 0; j < t.numel(); ++j) {
        const std::int64_t v = t.dtype() == DType::i32 ? t.i32()[j] : t.i64()[j];
        if (v < 0 || v >= vocab) {
            if (found < 5) bad += fmt::format("{}id {} at row {}, column {}", found ? "; " : "", v, j / length, j % length);
            ++found;
            continue;
        }
        out[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(v);
    }
    if (found)
        throw Error(fmt::format("{}: {} token id{} outside the vocabulary [0, {}): {}{}", path, found, found == 1 ? "" : "s", vocab, bad,
                                found > 5 ? "; ..." : ""));
    return out;
}

}  // namespace

void append_byte_tokens(const std::string& text, std::int64_t length, std::vector<std::int32_t>& out) {
    for (std::int64_t t = 0; t < length; ++t)
        out.push_back(t < static_cast<std::int64_t>(text.size()) ? static_cast<std::int32_t>(static_cast<unsigned char>(text[static_cast<std::size_t>(t)])) + 1 : 0);
}

PairSet make_synthetic(const spec::SyntheticData& config, const PairShape& shape) {
    if (shape.left_vocab < 2 || shape.right_vocab < 2) throw Error("synthetic data needs a vocabulary of at least 2 ids (0 is padding)");
    PairSet p = empty_like(shape);
    std::mt19937_64 rng(config.seed);
    std::uniform_int_distribution<std::int64_t> cls(0, config.classes - 1);
    for (std::int64_t i = 0; i < config.samples; ++i) {
        const std::int64_t c = cls(rng);
        draw_sequence(rng, config, c, shape.left_length, shape.left_vocab, p.left);
        draw_sequence(rng, config, c, shape.right_length, shape.right_vocab, p.right);
        p.label.push_back(1.0f);
    }
    return p;
}

PairSet load_npy_pairs(const spec::FileData& files, const PairShape& shape) {
    PairSet p = empty_like(shape);
    for (const auto& name : {shape.left_name, shape.right_name})
        if (!files.inputs.count(name)) throw Error(fmt::format("data.files.inputs names no .npy file for input '{}'", name));
    const std::string& left_path = files.inputs.at(shape.left_name);
    const std::string& right_path = files.inputs.at(shape.right_name);
    p.left = ids_from(io::read_npy(left_path), left_path, shape.left_length, shape.left_vocab);
    p.right = ids_from(io::read_npy(right_path), right_path, shape.right_length, shape.right_vocab);
    const std::int64_t count = static_cast<std::int64_t>(p.left.size()) / shape.left_length;
    if (static_cast<std::int64_t>(p.right.size()) / shape.right_length != count)
        throw Error(fmt::format("{} has {} rows but {} has {}: each row is one pair", left_path, count, right_path,
                                static_cast<std::int64_t>(p.right.size()) / shape.right_length));
    if (files.labels.empty()) {
        p.label.assign(static_cast<std::size_t>(count), 1.0f);
        return p;
    }
    const Tensor labels = io::read_npy(files.labels);
    if (labels.rank() != 1 || labels.dim(0) != count)
        throw Error(fmt::format("{}: expected labels of shape ({},), one per pair, got {}", files.labels, count, to_string(labels.shape())));
    for (std::int64_t j = 0; j < count; ++j) {
        const double v = labels.dtype() == DType::f32 ? labels.f32()[j] : labels.dtype() == DType::i32 ? labels.i32()[j] : static_cast<double>(labels.i64()[j]);
        if (!std::isfinite(v) || (v != 0.0 && v != 1.0))
            throw Error(fmt::format("{}: label {} at row {}: labels must be 0 (dissimilar) or 1 (similar)", files.labels, v, j));
        p.label.push_back(static_cast<float>(v));
    }
    return p;
}

TextPairs read_text_pairs(const std::string& path) {
    std::istringstream in(io::read_text_file(path));  // plain or .xz
    TextPairs p;
    p.path = path;
    std::string line;
    std::int64_t number = 0;
    while (std::getline(in, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        if (!text::valid_utf8(line)) throw Error(fmt::format("{}:{}: the line is not valid UTF-8", path, number));
        const auto tab1 = line.find('\t');
        if (tab1 == std::string::npos) throw Error(fmt::format("{}:{}: expected two texts separated by a tab, found no tab", path, number));
        const auto tab2 = line.find('\t', tab1 + 1);
        p.left.push_back(line.substr(0, tab1));
        p.right.push_back(line.substr(tab1 + 1, tab2 == std::string::npos ? std::string::npos : tab2 - tab1 - 1));
        float label = 1.0f;
        if (tab2 != std::string::npos) {
            const std::string field = line.substr(tab2 + 1);
            if (field != "0" && field != "1")
                throw Error(fmt::format("{}:{}: the third column is the label and must be 0 or 1, got '{}'", path, number, field));
            label = field == "1" ? 1.0f : 0.0f;
        }
        p.label.push_back(label);
    }
    if (p.label.empty()) throw Error(fmt::format("{}: the text data file holds no pairs", path));
    return p;
}

PairSet encode_text_pairs(const TextPairs& texts, const PairShape& shape, const text::Tokenizer& tokenizer) {
    PairSet p = empty_like(shape);
    const std::size_t count = texts.label.size();
    p.left.resize(count * static_cast<std::size_t>(shape.left_length));
    p.right.resize(count * static_cast<std::size_t>(shape.right_length));
    p.left_tokens.resize(count);
    p.right_tokens.resize(count);
    std::vector<std::int32_t> scratch;
    for (std::size_t i = 0; i < count; ++i) {
        p.left_tokens[i] = text::encode_to_length(tokenizer, texts.left[i], shape.left_length, p.left.data() + i * static_cast<std::size_t>(shape.left_length), scratch);
        p.right_tokens[i] =
            text::encode_to_length(tokenizer, texts.right[i], shape.right_length, p.right.data() + i * static_cast<std::size_t>(shape.right_length), scratch);
    }
    p.label = texts.label;
    return p;
}

std::unique_ptr<text::Tokenizer> make_text_tokenizer(const spec::TokenizerSpec& config, const PairShape& shape,
                                                     const std::vector<std::string>& training_texts) {
    const std::int64_t fits = std::min(shape.left_vocab, shape.right_vocab);
    text::TokenizerConfig c{config.type, config.vocab, config.lowercase, config.model};
    if (c.type == "bytes") c.vocab = 257;
    if (c.vocab == 0) c.vocab = fits;  // words, sentencepiece: as many ids as the embedding has
    if (c.vocab > fits)
        throw spec::SpecError(config.loc.file.empty() ? spec::Location{} : config.loc,
                              fmt::format("the {} tokenizer's vocab is {}, but the embeddings reading '{}' and '{}' have vocab {} and {}: "
                                          "ids must be below both (set data.text.tokenizer.vocab, or the embeddings' vocab)",
                                          c.type, c.vocab, shape.left_name, shape.right_name, shape.left_vocab, shape.right_vocab));
    return text::make_tokenizer(c, training_texts);
}

PairSet load_pairs(const spec::DataSpec& data, const PairShape& shape) {
    switch (data.kind) {
        case spec::DataSpec::Kind::synthetic: return make_synthetic(data.synthetic, shape);
        case spec::DataSpec::Kind::files: return load_npy_pairs(data.files, shape);
        case spec::DataSpec::Kind::text: {
            // Every pair of the file, tokenized as data.text.tokenizer says,
            // learned from all of them (the task learns it from the training split alone).
            const TextPairs texts = read_text_pairs(data.text.path);
            std::vector<std::string> all(texts.left);
            all.insert(all.end(), texts.right.begin(), texts.right.end());
            return encode_text_pairs(texts, shape, *make_text_tokenizer(data.text.tokenizer, shape, all));
        }
        case spec::DataSpec::Kind::columns: break;  // not pairs: task classify reads it
    }
    throw Error("pairs come from data.synthetic, data.files or data.text (data.inputs is for task classify)");
}

std::vector<char> validation_rows(std::int64_t count, double fraction, std::uint64_t seed) {
    std::vector<std::int64_t> rows(static_cast<std::size_t>(count));
    std::iota(rows.begin(), rows.end(), 0);
    std::mt19937_64 rng(seed ^ 0x5eed5eedULL);
    std::shuffle(rows.begin(), rows.end(), rng);
    const auto held = static_cast<std::int64_t>(std::llround(fraction * static_cast<double>(count)));
    std::vector<char> is_validation(rows.size(), 0);
    for (std::int64_t k = 0; k < held; ++k) is_validation[static_cast<std::size_t>(rows[static_cast<std::size_t>(k)])] = 1;
    return is_validation;
}

Split split_validation(const PairSet& pairs, double fraction, std::uint64_t seed) {
    Split split;
    split.train.left_length = split.validation.left_length = pairs.left_length;
    split.train.right_length = split.validation.right_length = pairs.right_length;
    // Keep each part in the data's own order: the split picks rows, not an order.
    const std::vector<char> is_validation = validation_rows(pairs.count(), fraction, seed);
    for (std::int64_t r = 0; r < pairs.count(); ++r) (is_validation[static_cast<std::size_t>(r)] ? split.validation : split.train).append(pairs, r);
    return split;
}

std::vector<Sample> plan_epoch(const PairSet& pairs, std::int64_t negatives, bool shuffle, std::mt19937_64& rng) {
    std::vector<Sample> samples;
    const std::int64_t count = pairs.count();
    samples.reserve(static_cast<std::size_t>(count * (1 + negatives)));
    for (std::int64_t i = 0; i < count; ++i) samples.push_back({i, i, pairs.label[static_cast<std::size_t>(i)]});
    if (count > 1) {
        std::uniform_int_distribution<std::int64_t> other(0, count - 2);
        for (std::int64_t i = 0; i < count; ++i)
            for (std::int64_t k = 0; k < negatives; ++k) {
                std::int64_t j = other(rng);
                if (j >= i) ++j;  // uniform over every row but i
                samples.push_back({i, j, 0.0f});
            }
    }
    if (shuffle) std::shuffle(samples.begin(), samples.end(), rng);
    return samples;
}

namespace {
// FNV-1a of a row of ids: two texts with the same ids are the same text.
std::uint64_t row_hash(const std::vector<std::int32_t>& ids, std::int64_t row, std::int64_t length) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (std::int64_t t = 0; t < length; ++t) {
        h ^= static_cast<std::uint32_t>(ids[static_cast<std::size_t>(row * length + t)]);
        h *= 0x100000001b3ULL;
    }
    return h;
}
}  // namespace

std::vector<std::int32_t> row_lengths(const std::vector<std::int32_t>& ids, std::int64_t length) {
    std::vector<std::int32_t> out(ids.size() / static_cast<std::size_t>(std::max<std::int64_t>(length, 1)), 0);
    for (std::size_t row = 0; row < out.size(); ++row)
        for (std::int64_t t = length; t-- > 0;)
            if (ids[row * static_cast<std::size_t>(length) + static_cast<std::size_t>(t)] != 0) {
                out[row] = static_cast<std::int32_t>(t + 1);
                break;
            }
    return out;
}

std::int64_t bucket_length(std::int64_t longest, std::int64_t multiple, std::int64_t declared) {
    const std::int64_t rounded = (std::max<std::int64_t>(longest, 1) + multiple - 1) / multiple * multiple;
    return std::min(rounded, declared);
}

void sort_windows_by_length(std::vector<Sample>& samples, const PairSet& pairs, const std::vector<std::int32_t>& left_lengths,
                            const std::vector<std::int32_t>& right_lengths, std::int64_t batch_size, std::int64_t window, std::int64_t multiple) {
    const bool right_first = pairs.right_length >= pairs.left_length;
    const auto key = [&](const Sample& s) {
        const std::int64_t l = bucket_length(left_lengths[static_cast<std::size_t>(s.left_row)], multiple, pairs.left_length);
        const std::int64_t r = bucket_length(right_lengths[static_cast<std::size_t>(s.right_row)], multiple, pairs.right_length);
        return right_first ? std::pair{r, l} : std::pair{l, r};
    };
    const auto span = static_cast<std::ptrdiff_t>(batch_size * window);
    for (std::ptrdiff_t at = 0; at < static_cast<std::ptrdiff_t>(samples.size()); at += span) {
        const auto end = samples.begin() + std::min(at + span, static_cast<std::ptrdiff_t>(samples.size()));
        std::stable_sort(samples.begin() + at, end, [&](const Sample& a, const Sample& b) { return key(a) > key(b); });
    }
}

void shuffle_batches(std::vector<Sample>& samples, std::int64_t batch_size, std::mt19937_64& rng) {
    const std::size_t full = samples.size() / static_cast<std::size_t>(batch_size);
    std::vector<std::size_t> batches(full);
    std::iota(batches.begin(), batches.end(), std::size_t{0});
    std::shuffle(batches.begin(), batches.end(), rng);
    std::vector<Sample> out;
    out.reserve(samples.size());
    const auto size = static_cast<std::ptrdiff_t>(batch_size);
    for (std::size_t b : batches)
        out.insert(out.end(), samples.begin() + static_cast<std::ptrdiff_t>(b) * size, samples.begin() + static_cast<std::ptrdiff_t>(b + 1) * size);
    out.insert(out.end(), samples.begin() + static_cast<std::ptrdiff_t>(full) * size, samples.end());
    samples = std::move(out);
}

BatchNegativesEpoch plan_batch_negatives_epoch(const PairSet& pairs, std::int64_t batch_size, bool shuffle, std::mt19937_64& rng,
                                               const std::function<void(std::vector<Sample>&)>& sort_by_length) {
    std::vector<std::int64_t> order;
    for (std::int64_t i = 0; i < pairs.count(); ++i)
        if (pairs.label[static_cast<std::size_t>(i)] == 1.0f) order.push_back(i);
    if (shuffle) std::shuffle(order.begin(), order.end(), rng);
    if (sort_by_length) {
        std::vector<Sample> as_samples;
        for (std::int64_t i : order) as_samples.push_back({i, i, 1.0f});
        sort_by_length(as_samples);
        for (std::size_t k = 0; k < order.size(); ++k) order[k] = as_samples[k].left_row;
    }
    BatchNegativesEpoch epoch;
    std::deque<std::int64_t> waiting;
    std::size_t next = 0;
    std::set<std::uint64_t> lefts, rights;  // the texts of the batch being packed
    std::size_t in_batch = 0;
    const auto try_add = [&](std::int64_t i) {
        const std::uint64_t l = row_hash(pairs.left, i, pairs.left_length), r = row_hash(pairs.right, i, pairs.right_length);
        if (lefts.count(l) || rights.count(r)) return false;
        lefts.insert(l);
        rights.insert(r);
        epoch.samples.push_back({i, i, 1.0f});
        ++in_batch;
        return true;
    };
    const auto full = [&] { return static_cast<std::int64_t>(in_batch) == batch_size; };
    for (;;) {
        lefts.clear();
        rights.clear();
        in_batch = 0;
        // Pairs that waited go first, in the order they were put aside.
        for (auto it = waiting.begin(); it != waiting.end() && !full();) it = try_add(*it) ? waiting.erase(it) : std::next(it);
        while (!full() && next < order.size()) {
            const std::int64_t i = order[next++];
            if (!try_add(i)) waiting.push_back(i);
        }
        if (!full()) break;  // the last batch: what still waits clashes with it
    }
    epoch.left_out = static_cast<std::int64_t>(waiting.size());
    if (sort_by_length && shuffle) shuffle_batches(epoch.samples, batch_size, rng);
    return epoch;
}

LengthStats length_stats(const std::vector<std::int32_t>& ids, std::int64_t length) {
    std::vector<std::int32_t> lengths = row_lengths(ids, length);
    std::int64_t padding = 0;
    for (const std::int32_t real : lengths) padding += length - real;
    LengthStats s;
    if (lengths.empty()) return s;
    std::sort(lengths.begin(), lengths.end());
    s.min = lengths.front();
    s.max = lengths.back();
    s.median = lengths[lengths.size() / 2];
    s.padding_share = static_cast<double>(padding) / static_cast<double>(ids.size());
    return s;
}

void fill_batch(const PairSet& pairs, const std::vector<Sample>& samples, std::int64_t first, std::int64_t count, Tensor& left,
                Tensor& right, Tensor& label) {
    auto copy_row = [](const std::vector<std::int32_t>& from, std::int64_t row, std::int64_t length, Tensor& to, std::int64_t at) {
        const std::int32_t* src = from.data() + row * length;
        const std::int64_t width = to.shape().at(1);  // length, or less when the batch is cut to its longest row
        if (to.dtype() == DType::i32) std::copy_n(src, width, to.i32() + at * width);
        else std::copy_n(src, width, to.i64() + at * width);
    };
    for (std::int64_t k = 0; k < count; ++k) {
        const Sample& s = samples[static_cast<std::size_t>(first + k)];
        copy_row(pairs.left, s.left_row, pairs.left_length, left, k);
        copy_row(pairs.right, s.right_row, pairs.right_length, right, k);
        label.f32()[k] = s.label;
    }
}

}  // namespace graphrun::train
