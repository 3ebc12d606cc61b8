// A run's token ids for a TSV of text pairs, as .npy files, for reference
// implementations outside graphrun (bench/torch_packages.py) to train on
// exactly the ids graphrun trains on.
//
// usage: encode_pairs RUN_FOLDER TSV OUT_PREFIX
//        encode_pairs --split RUN_FOLDER OUT_PREFIX
//   RUN_FOLDER  a run of `graphrun train` on text pairs (model.yaml, tokenizer.json [+ tokenizer.model])
//   TSV         `left <tab> right [<tab> 0|1]`, plain or .xz; without a third column every label is 1
//   writes OUT_PREFIX.left.npy and OUT_PREFIX.right.npy ((N, T) int32, T each input's
//   length in the run's model.yaml) and OUT_PREFIX.label.npy ((N) float32)
//   --split: a run on data.synthetic or data.files (the seed's synthetic data):
//   the pairs it trained on (OUT_PREFIX.train.*: the split that train.validation
//   and train.seed of its model.yaml hold out, as SiameseTask splits) and the
//   pairs its validation AUC measured (OUT_PREFIX.valid.*: the held-out pairs and
//   the dissimilar ones drawn for them, labelled), the same three files each.
//
// The same functions as training: read_text_pairs reads the TSV (empty lines
// skipped, the same errors), the run's tokenizer is loaded as PairModel::load_run
// loads it, and encode_text_pairs cuts each text's tokens at its input's length
// and pads with 0 after them, as SiameseTask does. So the ids are graphrun's,
// bit for bit. The weights are not read.
//
// Exit status, as the graphrun command line: 0 success; 2 a bad argument or
// input file (the message names it); 1 any other failure.
#include <algorithm>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "engine/io/npy.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/text/tokenizer.hpp"
#include "engine/train/data.hpp"
#include "engine/train/siamese_task.hpp"
#include "graphrun/error.hpp"
#include "ops/builtin.hpp"

using namespace graphrun;

namespace {

constexpr const char* kUsage =
    "usage: encode_pairs RUN_FOLDER TSV OUT_PREFIX\n"
    "\n"
    "Token ids of a TSV of text pairs as a graphrun run encodes them (its tokenizer, each\n"
    "text cut or padded with 0 to its input's length in RUN_FOLDER/model.yaml).\n"
    "Writes OUT_PREFIX.left.npy, OUT_PREFIX.right.npy ((N, T) int32) and\n"
    "OUT_PREFIX.label.npy ((N) float32; 1 for every pair of a two-column TSV).\n"
    "\n"
    "usage: encode_pairs --split RUN_FOLDER OUT_PREFIX\n"
    "\n"
    "For a run on data.synthetic or data.files: the training split it trained on as\n"
    "OUT_PREFIX.train.{left,right,label}.npy and the validation pairs (with the dissimilar\n"
    "pairs drawn for them, label 0) its val_auc measured as OUT_PREFIX.valid.*.\n"
    "Exit status: 0 success, 2 a bad argument or input, 1 any other failure.\n";

Tensor ids_tensor(const std::vector<std::int32_t>& ids, std::int64_t length) {
    const auto rows = static_cast<std::int64_t>(ids.size()) / length;
    Tensor t({rows, length}, DType::i32);
    std::memcpy(t.i32(), ids.data(), ids.size() * sizeof(std::int32_t));
    return t;
}

void write_pairs(const train::PairSet& pairs, const std::string& prefix) {
    Tensor label({pairs.count()}, DType::f32);
    std::memcpy(label.f32(), pairs.label.data(), pairs.label.size() * sizeof(float));
    io::write_npy(prefix + ".left.npy", ids_tensor(pairs.left, pairs.left_length));
    io::write_npy(prefix + ".right.npy", ids_tensor(pairs.right, pairs.right_length));
    io::write_npy(prefix + ".label.npy", label);
}

spec::Spec load_run_spec(const std::string& run) {
    namespace fs = std::filesystem;
    const fs::path yaml = fs::path(run) / "model.yaml";
    if (!fs::is_directory(run)) throw Error(fmt::format("{}: no such folder (a run's folder, the --out of graphrun train)", run));
    if (!fs::exists(yaml)) throw Error(fmt::format("{}: no model.yaml in it: not a run folder of graphrun train", run));
    spec::Spec spec = spec::load_spec_file(yaml.string());
    if (spec.task != "siamese") throw Error(fmt::format("{}: task '{}', not siamese: not a pair model", yaml.string(), spec.task));
    return spec;
}

void encode_tsv(const std::string& run, const std::string& tsv, const std::string& prefix) {
    const spec::Spec spec = load_run_spec(run);
    if (spec.data.kind != spec::DataSpec::Kind::text || spec.run.tokenizer.empty())
        throw Error(fmt::format("{}/model.yaml: not a pair model trained on text (data.text): no tokenizer to encode with (--split writes "
                                "the pairs of a run on data.synthetic or data.files)",
                                run));
    const BuiltGraph built = build_graph(spec, builtin_ops());
    const train::SiameseRoles roles = train::find_roles(built.graph);
    const auto tokenizer = text::load_tokenizer(run);
    const train::TextPairs texts = train::read_text_pairs(tsv);
    const train::PairSet pairs = train::encode_text_pairs(texts, roles.shape, *tokenizer);
    write_pairs(pairs, prefix);
    std::int64_t cut_left = 0, cut_right = 0;
    for (std::int64_t i = 0; i < pairs.count(); ++i) {
        cut_left += pairs.left_tokens[static_cast<std::size_t>(i)] > pairs.left_length;
        cut_right += pairs.right_tokens[static_cast<std::size_t>(i)] > pairs.right_length;
    }
    fmt::print(stderr, "encode_pairs: {} pairs ({} labelled similar); left ({}): {} ids, {} texts cut; right ({}): {} ids, {} texts cut; -> {}.{{left,right,label}}.npy\n",
               pairs.count(), std::count(pairs.label.begin(), pairs.label.end(), 1.0f), roles.shape.left_name, pairs.left_length, cut_left,
               roles.shape.right_name, pairs.right_length, cut_right, prefix);
}

// The training and validation pairs of a run on data.synthetic or data.files,
// split and drawn by the functions SiameseTask calls, from the run's own seed.
void write_split(const std::string& run, const std::string& prefix) {
    const spec::Spec spec = load_run_spec(run);
    if (spec.data.kind == spec::DataSpec::Kind::text)
        throw Error(fmt::format("{}/model.yaml: data.text: encode its TSV files with `encode_pairs RUN TSV OUT_PREFIX` (--split is for "
                                "data.synthetic and data.files)",
                                run));
    const BuiltGraph built = build_graph(spec, builtin_ops());
    const train::SiameseRoles roles = train::find_roles(built.graph);
    const train::Split split = train::split_validation(train::load_pairs(spec.data, roles.shape), spec.train.validation, spec.train.seed);
    // A ranking objective trains without sampled negatives (SiameseTask), so its validation draws one per pair.
    const std::int64_t negatives = train::ranking_objective(built).empty() ? spec.train.negatives : 0;
    const std::vector<train::Sample> samples = train::plan_validation(split.validation, negatives, spec.train.seed);
    train::PairSet validation;
    validation.left_length = split.validation.left_length;
    validation.right_length = split.validation.right_length;
    for (const train::Sample& s : samples) {
        const auto row = [](std::int64_t r, std::int64_t length, const std::vector<std::int32_t>& ids) {
            return ids.begin() + r * length;
        };
        validation.left.insert(validation.left.end(), row(s.left_row, validation.left_length, split.validation.left),
                               row(s.left_row + 1, validation.left_length, split.validation.left));
        validation.right.insert(validation.right.end(), row(s.right_row, validation.right_length, split.validation.right),
                                row(s.right_row + 1, validation.right_length, split.validation.right));
        validation.label.push_back(s.label);
    }
    write_pairs(split.train, prefix + ".train");
    write_pairs(validation, prefix + ".valid");
    fmt::print(stderr, "encode_pairs: {} training pairs -> {}.train.*; {} validation pairs ({} similar, seed {}) -> {}.valid.*\n", split.train.count(), prefix,
               validation.count(), std::count(validation.label.begin(), validation.label.end(), 1.0f), spec.train.seed, prefix);
}

}  // namespace

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
            fmt::print("{}", kUsage);
            return 0;
        }
    const bool split = argc > 1 && std::strcmp(argv[1], "--split") == 0;
    if (argc != 4) {
        fmt::print(stderr, "encode_pairs: expected 3 arguments, got {}\n{}", argc - 1, kUsage);
        return 2;
    }
    try {
        if (split)
            write_split(argv[2], argv[3]);
        else
            encode_tsv(argv[1], argv[2], argv[3]);
    } catch (const Error& e) {
        fmt::print(stderr, "encode_pairs: {}\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        fmt::print(stderr, "encode_pairs: internal error: {}\n", e.what());
        return 1;
    }
    return 0;
}
