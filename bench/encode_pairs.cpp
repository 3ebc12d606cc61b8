// A run's token ids for a TSV of text pairs, as .npy files, for reference
// implementations outside graphrun (bench/torch_packages.py) to train on
// exactly the ids graphrun trains on.
//
// usage: encode_pairs RUN_FOLDER TSV OUT_PREFIX
//   RUN_FOLDER  a run of `graphrun train` on text pairs (model.yaml, tokenizer.json [+ tokenizer.model])
//   TSV         `left <tab> right [<tab> 0|1]`, plain or .xz; without a third column every label is 1
//   writes OUT_PREFIX.left.npy and OUT_PREFIX.right.npy ((N, T) int32, T each input's
//   length in the run's model.yaml) and OUT_PREFIX.label.npy ((N) float32)
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
    "Exit status: 0 success, 2 a bad argument or input, 1 any other failure.\n";

Tensor ids_tensor(const std::vector<std::int32_t>& ids, std::int64_t length) {
    const auto rows = static_cast<std::int64_t>(ids.size()) / length;
    Tensor t({rows, length}, DType::i32);
    std::memcpy(t.i32(), ids.data(), ids.size() * sizeof(std::int32_t));
    return t;
}

}  // namespace

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
            fmt::print("{}", kUsage);
            return 0;
        }
    if (argc != 4) {
        fmt::print(stderr, "encode_pairs: expected 3 arguments, got {}\n{}", argc - 1, kUsage);
        return 2;
    }
    const std::string run = argv[1], tsv = argv[2], prefix = argv[3];
    try {
        namespace fs = std::filesystem;
        const fs::path yaml = fs::path(run) / "model.yaml";
        if (!fs::is_directory(run)) throw Error(fmt::format("{}: no such folder (a run's folder, the --out of graphrun train)", run));
        if (!fs::exists(yaml)) throw Error(fmt::format("{}: no model.yaml in it: not a run folder of graphrun train", run));
        const spec::Spec spec = spec::load_spec_file(yaml.string());
        if (spec.task != "siamese" || spec.data.kind != spec::DataSpec::Kind::text || spec.run.tokenizer.empty())
            throw Error(fmt::format("{}: not a pair model trained on text (task siamese with data.text): no tokenizer to encode with", yaml.string()));
        const BuiltGraph built = build_graph(spec, builtin_ops());
        const train::SiameseRoles roles = train::find_roles(built.graph);
        const auto tokenizer = text::load_tokenizer(run);
        const train::TextPairs texts = train::read_text_pairs(tsv);
        const train::PairSet pairs = train::encode_text_pairs(texts, roles.shape, *tokenizer);

        Tensor label({pairs.count()}, DType::f32);
        std::memcpy(label.f32(), pairs.label.data(), pairs.label.size() * sizeof(float));
        io::write_npy(prefix + ".left.npy", ids_tensor(pairs.left, pairs.left_length));
        io::write_npy(prefix + ".right.npy", ids_tensor(pairs.right, pairs.right_length));
        io::write_npy(prefix + ".label.npy", label);
        std::int64_t cut_left = 0, cut_right = 0;
        for (std::int64_t i = 0; i < pairs.count(); ++i) {
            cut_left += pairs.left_tokens[static_cast<std::size_t>(i)] > pairs.left_length;
            cut_right += pairs.right_tokens[static_cast<std::size_t>(i)] > pairs.right_length;
        }
        fmt::print(stderr, "encode_pairs: {} pairs ({} labelled similar); left ({}): {} ids, {} texts cut; right ({}): {} ids, {} texts cut; -> {}.{{left,right,label}}.npy\n",
                   pairs.count(), std::count(pairs.label.begin(), pairs.label.end(), 1.0f), roles.shape.left_name, pairs.left_length, cut_left,
                   roles.shape.right_name, pairs.right_length, cut_right, prefix);
    } catch (const Error& e) {
        fmt::print(stderr, "encode_pairs: {}\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        fmt::print(stderr, "encode_pairs: internal error: {}\n", e.what());
        return 1;
    }
    return 0;
}
