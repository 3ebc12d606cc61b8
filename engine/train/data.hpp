// Pairs of token sequences with a label (1 = similar, 0 = dissimilar), where
// they come from (a synthetic generator, .npy files, a TSV of text pairs), the
// validation split, and each epoch's order with freshly sampled negatives.
//
// Sequences are stored padded: id 0 after the real tokens, to the input's length.
#pragma once

#include <cstdint>
#include <memory>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/spec/spec.hpp"
#include "engine/text/tokenizer.hpp"
#include "graphrun/tensor.hpp"

namespace graphrun::train {

struct PairSet {
    std::int64_t left_length = 0, right_length = 0;  // T of each branch's input
    std::vector<std::int32_t> left, right;            // (count, T) row-major ids
    std::vector<float> label;                         // (count)
    // Text data: each text's token count before the cut to T (else empty).
    std::vector<std::int64_t> left_tokens, right_tokens;

    std::int64_t count() const { return static_cast<std::int64_t>(label.size()); }
    void append(const PairSet& other, std::int64_t row);
};

// What the data must fit: the two id inputs' lengths and their vocabularies.
struct PairShape {
    std::string left_name, right_name;
    std::int64_t left_length = 0, right_length = 0;
    std::int64_t left_vocab = 0, right_vocab = 0;
};

// Positive pairs with learnable structure: each pair belongs to one of
// `classes` latent classes, and each class draws a `signal` share of its tokens
// from the `class_tokens` ids it owns (the rest uniformly). Lengths vary,
// padding fills the rest. Every label is 1: dissimilar pairs come from
// negative sampling, as they would for real data.
PairSet make_synthetic(const spec::SyntheticData& config, const PairShape& shape);

// .npy files: one (count, T) int32/int64 array per id input, and an optional
// (count) label array (float or int, 0 or 1). Ids outside the vocabulary, a
// count mismatch or a non-finite label is an Error naming the file.
PairSet load_npy_pairs(const spec::FileData& files, const PairShape& shape);

// A TSV of text pairs, `text1 <tab> text2 [<tab> label]` (label 1 = similar,
// 0 = dissimilar; without it every pair is similar), as read.
struct TextPairs {
    std::string path;
    std::vector<std::string> left, right;
    std::vector<float> label;
};
TextPairs read_text_pairs(const std::string& path);
// The pairs as ids: each text's tokens cut to its input's length, then padding.
PairSet encode_text_pairs(const TextPairs& texts, const PairShape& shape, const text::Tokenizer& tokenizer);
// The tokenizer data.text asks for, learned from `training_texts` where its type
// learns; its vocabulary must fit both embeddings (an Error names both numbers).
std::unique_ptr<text::Tokenizer> make_text_tokenizer(const spec::TokenizerSpec& config, const PairShape& shape,
                                                     const std::vector<std::string>& training_texts);

PairSet load_pairs(const spec::DataSpec& data, const PairShape& shape);

// Text as byte tokens: byte b is id b + 1 (1..256), then 0 (padding) up to
// `length`; longer texts are cut. Appends `length` ids.
void append_byte_tokens(const std::string& text, std::int64_t length, std::vector<std::int32_t>& out);

struct Split {
    PairSet train, validation;
};
// Which of `count` rows a train.validation `fraction` holds out (1), drawn from `seed`.
std::vector<char> validation_rows(std::int64_t count, double fraction, std::uint64_t seed);
// Holds out a `fraction` of the pairs (chosen at random from `seed`), never trained on.
Split split_validation(const PairSet& pairs, double fraction, std::uint64_t seed);

// One epoch's samples: pair i of `pairs` as given, then `negatives` dissimilar
// pairs (left[i], right[j]) with j != i drawn at random for each, all shuffled.
struct Sample {
    std::int64_t left_row, right_row;
    float label;
};
std::vector<Sample> plan_epoch(const PairSet& pairs, std::int64_t negatives, bool shuffle, std::mt19937_64& rng);

// One epoch for an objective whose negatives are the other pairs of its batch
// (in_batch_softmax, triplet_loss): the pairs labelled similar, shuffled, then
// packed into consecutive batches of `batch_size` in which no two pairs share
// a left text or a right text, since each would be a false negative of the
// other. A pair that meets a text already in the batch waits for a later one
// (as sentence-transformers' NoDuplicatesDataLoader); pairs still waiting when
// only they are left sit this epoch out (`left_out`). Every batch but the last is full.
struct BatchNegativesEpoch {
    std::vector<Sample> samples;
    std::int64_t left_out = 0;
};
// With `sort_by_length` (length bucketing) the shuffled pairs are sorted by it
// before packing, and the packed batches are shuffled after (shuffle_batches)
// when `shuffle`.
BatchNegativesEpoch plan_batch_negatives_epoch(const PairSet& pairs, std::int64_t batch_size, bool shuffle, std::mt19937_64& rng,
                                               const std::function<void(std::vector<Sample>&)>& sort_by_length = {});

// Length bucketing (train.length_buckets). Each row's length: 1 + the index of
// its last non-zero id (what the recurrent ops read), 0 for an empty row.
std::vector<std::int32_t> row_lengths(const std::vector<std::int32_t>& ids, std::int64_t length);
// Sorts each window of `window * batch_size` consecutive samples by the
// rounded-up lengths of its texts, longest first: the side with the longer
// declared length decides, the other breaks ties. The sort is stable, so
// equal keys keep their shuffled order.
void sort_windows_by_length(std::vector<Sample>& samples, const PairSet& pairs, const std::vector<std::int32_t>& left_lengths,
                            const std::vector<std::int32_t>& right_lengths, std::int64_t batch_size, std::int64_t window, std::int64_t multiple);
// Shuffles whole batches of `batch_size` (a last smaller batch stays last), so
// an epoch does not run from long to short texts within each window.
void shuffle_batches(std::vector<Sample>& samples, std::int64_t batch_size, std::mt19937_64& rng);
// The length a batch's input is cut to: its longest row rounded up to a
// multiple of `multiple`, at most `declared`, at least 1.
std::int64_t bucket_length(std::int64_t longest, std::int64_t multiple, std::int64_t declared);

// Length statistics of one side, for `graphrun check`.
struct LengthStats {
    std::int64_t min = 0, median = 0, max = 0;
    double padding_share = 0;  // padding ids / all ids
};
LengthStats length_stats(const std::vector<std::int32_t>& ids, std::int64_t length);

// Fills a batch's id tensors and labels from samples [first, first + count);
// each row's first `tensor.shape()[1]` ids (the rest must be padding).
void fill_batch(const PairSet& pairs, const std::vector<Sample>& samples, std::int64_t first, std::int64_t count, Tensor& left,
                Tensor& right, Tensor& label);

}  // namespace graphrun::train
