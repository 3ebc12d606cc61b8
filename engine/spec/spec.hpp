// A graph spec as plain data: what a YAML file (or a string) says, with where
// it said it, so every later error can name file:line:column. The YAML loader
// (loader.hpp) makes one; the builder (builder.hpp) turns one into a Graph.
// Nothing here knows YAML.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/attrs.hpp"
#include "graphrun/error.hpp"
#include "graphrun/tensor.hpp"

namespace graphrun::spec {

// Where a value came from: a file position (1-based), or a --set override.
struct Location {
    std::string file;
    int line = 0, column = 0;
    std::string override_key;  // "train.epochs" when the value came from --set
    // "graphs/siamese.yaml:14:5", "--set train.epochs", or the file alone.
    std::string str() const;
};

// An error in a spec; its message starts with the location.
class SpecError : public Error {
public:
    SpecError(const Location& where, const std::string& message) : Error(where.str() + ": " + message) {}
};

struct InputSpec {
    std::string name;
    DType dtype = DType::f32;
    Shape shape;  // without the batch
    Location loc;
};

struct NodeSpec {
    std::string name;
    std::string op;
    std::vector<std::string> inputs;  // node or input names
    Attrs attrs;                      // every key of the node other than name, op, inputs
    Location loc;                     // the node's map
    std::vector<Location> input_locs; // one per input
    std::map<std::string, Location> attr_locs;
};

struct SyntheticData {
    std::int64_t samples = 10000;   // positive pairs
    std::int64_t classes = 16;      // latent classes; a positive pair shares one
    std::int64_t class_tokens = 8;  // ids each class owns; 0: an equal share of the vocabulary
    double signal = 0.7;            // share of a sequence's tokens drawn from its class's own ids
    double min_length = 0.5;        // each sequence's length is uniform in [min_length * T, T]; the rest is padding (id 0)
    std::uint64_t seed = 1;
};

struct FileData {
    std::map<std::string, std::string> inputs;  // input name -> .npy path (relative to the spec's folder)
    std::string labels;                         // .npy path, or empty: every pair is similar (y = 1)
};

// How text becomes ids (engine/text turns this into a tokenizer).
struct TokenizerSpec {
    std::string type = "bytes";     // bytes | words | sentencepiece
    std::int64_t vocab = 0;         // words, sentencepiece: ids in all (padding, unknown included); 0: the embedding's vocab
    bool lowercase = false;
    std::string model = "unigram";  // sentencepiece: unigram | bpe
    Location loc;
};

struct TextData {
    std::string path;              // TSV: text1 <tab> text2 [<tab> label]; the training split
    std::string validation, test;  // the same format; validation empty: a train.validation share of path's pairs
    TokenizerSpec tokenizer;
};

// Where one graph input's values come from, row by row (data.inputs).
struct InputSource {
    enum class Kind {
        tokens,   // a TSV column's text as UTF-8 byte ids (byte b -> b + 1, 0 = padding), cut to the input's length
        classes,  // a TSV column's label as its index in `classes`
        npy,      // an .npy file with one row per sample
        generate, // random values, as torch.randint / torch.rand / torch.randn
    } kind = Kind::tokens;
    int column = 0;                    // 0-based TSV column
    std::vector<std::string> classes;  // kind classes
    std::string npy;                   // kind npy: path, resolved
    // kind generate: `integers` in [low, high), `uniform` in [low, high), or
    // `normal` (mean, std). An integer source's bounds are filled in by the
    // task, which knows the graph (the embedding's vocab, the logits' classes).
    std::string generate;
    std::optional<double> low, high;
    double mean = 0.0, std = 1.0;
    std::uint64_t seed = 1;
    Location loc;
};

// The general mapping: each graph input from a column of the split's TSV
// file, an .npy file or a generator (with no TSV, validation is a
// train.validation share of the rows).
struct ColumnData {
    std::string train, validation, test;  // TSV paths, resolved; validation and test may be empty
    std::int64_t samples = 0;             // data.samples: the rows when every input is generated
    std::map<std::string, InputSource> inputs;
};

struct DataSpec {
    // synthetic, files and text are pair data (task siamese); columns is data.inputs.
    enum class Kind { synthetic, files, text, columns } kind = Kind::synthetic;
    SyntheticData synthetic;
    FileData files;
    TextData text;
    ColumnData columns;
    Location loc;
};

struct OptimizerSpec {
    std::string type = "adam";  // adam | adamw | sgd
    double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, momentum = 0.0;
    double weight_decay = 0.01;  // adamw's (torch.optim.AdamW's default), decoupled from the gradient
    Location loc;
};

// train.schedule: the learning rate of each optimizer step, as a multiple of
// train.optimizer.lr (engine/train/schedule.hpp has the formula).
struct ScheduleSpec {
    std::int64_t warmup = 0;         // optimizer steps of linear warm-up from 0
    std::string decay = "constant";  // constant | linear | cosine, after the warm-up
    double min_lr = 0.0;             // the rate linear and cosine decay end at, on the run's last step
    Location loc;
};

struct TrainSpec {
    std::int64_t epochs = 2, batch_size = 32;
    bool shuffle = true;
    std::uint64_t seed = 0;
    std::int64_t negatives = 1;  // dissimilar pairs drawn per positive pair, fresh each epoch
    double validation = 0.1;     // held-out share of the pairs
    OptimizerSpec optimizer;
    ScheduleSpec schedule;
    double clip_norm = 0.0;      // clip gradients to this global norm; 0: off
    std::int64_t max_steps = 0;  // stop after this many optimizer steps (counted over the whole run), checkpoint written; 0: off
    std::string select;          // the validation metric that picks OUT/best.safetensors; empty: the task's first
    std::string executor = "tasks";  // tasks (oneTBB task graph) | sequential: the same plan, the same results
    // train.early_stopping: stop when `metric` (empty: select's) has not improved for `patience` epochs; 0: off.
    std::string early_stopping_metric;
    std::int64_t patience = 0;
    // train.length_buckets: batches cut to their longest text. Each window of
    // `window` batches' samples is sorted by length and cut into batches, the
    // batches are shuffled, and each batch's token inputs are cut to its
    // longest row rounded up to a multiple of `multiple` (one plan per length).
    // window 0: off, every batch runs the declared length.
    struct LengthBuckets {
        std::int64_t window = 0, multiple = 16;
    } length_buckets;
    std::map<std::string, Location> locs;  // "negatives" -> where it was set
};

struct Spec {
    std::string path;  // the file, or "<string>"
    std::string name;  // the file's stem: runs go to runs/<name>
    std::vector<InputSpec> inputs;
    std::vector<NodeSpec> nodes;  // in the file's order (any order is allowed)
    std::vector<std::string> outputs;
    std::string loss;
    std::string task = "siamese";  // what training feeds and measures: siamese | classify
    Location outputs_loc, loss_loc, task_loc;
    DataSpec data;
    TrainSpec train;
    // What a training run found (a run's model.yaml): the decision threshold
    // on the similarity, the tokenizer's file, the checkpoint to use.
    struct Run {
        std::optional<double> threshold;
        std::string tokenizer, checkpoint;
    } run;
    std::string resolved_yaml;  // the spec as read, --set applied, data paths absolute
};

}  // namespace graphrun::spec
