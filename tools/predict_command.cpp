// `graphrun predict`: run a trained graph on .npy inputs and write the
// outputs asked for (branch embeddings, the similarity) as .npy files.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "graphrun/model.hpp"
#include "engine/io/npy.hpp"
#include "tools/cli.hpp"

namespace graphrun::cli {

namespace {
// Rows [first, first + count) of a tensor whose first dimension is the batch.
Tensor rows_of(const Tensor& t, std::int64_t first, std::int64_t count) {
    Shape shape = t.shape();
    shape[0] = count;
    Tensor out(shape, t.dtype());
    const std::size_t row_bytes = t.bytes() / static_cast<std::size_t>(t.dim(0));
    std::memcpy(out.raw(), static_cast<const std::byte*>(t.raw()) + static_cast<std::size_t>(first) * row_bytes, static_cast<std::size_t>(count) * row_bytes);
    return out;
}

// Token ids come as int32 or int64 whatever the input declares, as NumPy makes
// either by default; a value int32 cannot hold is an error, not a wrapped id.
Tensor ids_as(const Tensor& t, DType want, const std::string& path) {
    Tensor out(t.shape(), want);
    for (std::int64_t j = 0; j < t.numel(); ++j) {
        const std::int64_t v = t.dtype() == DType::i32 ? t.i32()[j] : t.i64()[j];
        if (want == DType::i64) out.i64()[j] = v;
        else if (v < INT32_MIN || v > INT32_MAX) throw Error(fmt::format("{}: token id {} at index {} does not fit int32", path, v, j));
        else out.i32()[j] = static_cast<std::int32_t>(v);
    }
    return out;
}
}  // namespace

int run_predict(const Args& args) {
    if (args.checkpoint.empty()) throw UsageError("predict needs --checkpoint CKPT");
    if (args.inputs.empty()) throw UsageError("predict needs at least one --input NAME=FILE.npy");
    if (args.outputs.empty()) throw UsageError("predict needs at least one --output NODE");
    if (args.out.empty()) throw UsageError("predict needs --out DIR");
    // Through the library's API, as a user's program would.
    Model model = Model::from_file(args.spec, args.overrides);
    model.load(args.checkpoint);
    const Graph& g = model.graph();

    std::vector<ValueRef> targets;
    for (const auto& name : args.outputs) {
        const auto index = g.find(name);
        if (!index) throw Error(fmt::format("--output {}: no node of that name in {}", name, args.spec));
        targets.push_back({*index, 0});
    }
    std::vector<std::pair<std::string, Tensor>> feeds;
    std::int64_t rows = -1;
    for (const auto& [name, path] : args.inputs) {
        const auto index = g.find(name);
        if (!index || g.node(*index).kind != NodeKind::input) throw Error(fmt::format("--input {}: {} has no input of that name", name, args.spec));
        Tensor t = io::read_npy(path);
        const TensorType& want = g.node(*index).outputs[0];
        if (t.rank() == 0 || !shapes_agree(t.shape(), want.shape))
            throw Error(fmt::format("{}: input '{}' expects shape {}, got {}", path, name, to_string(want.shape), to_string(t.shape())));
        if (t.dtype() != want.dtype && t.dtype() != DType::f32 && want.dtype != DType::f32) t = ids_as(t, want.dtype, path);
        if (t.dtype() != want.dtype) throw Error(fmt::format("{}: input '{}' expects {}, got {}", path, name, dtype_name(want.dtype), dtype_name(t.dtype())));
        if (rows >= 0 && t.dim(0) != rows) throw Error(fmt::format("{}: {} rows, but another input has {}", path, t.dim(0), rows));
        rows = t.dim(0);
        feeds.emplace_back(name, std::move(t));
    }

    // In chunks, so a large file does not need all its activations at once.
    const std::int64_t chunk = 256;
    std::vector<std::vector<Tensor>> parts(targets.size());
    for (std::int64_t first = 0; first < rows; first += chunk) {
        const std::int64_t n = std::min(chunk, rows - first);
        std::map<std::string, Tensor> inputs;
        for (const auto& [name, t] : feeds) inputs[name] = rows_of(t, first, n);
        const auto outputs = model.run(inputs, args.outputs);
        for (std::size_t k = 0; k < targets.size(); ++k) parts[k].push_back(outputs.at(args.outputs[k]));
    }
    std::filesystem::create_directories(args.out);
    for (std::size_t k = 0; k < targets.size(); ++k) {
        Shape shape = parts[k].empty() ? g.type(targets[k]).shape : parts[k][0].shape();
        if (shape.empty()) throw Error(fmt::format("--output {}: a scalar has no rows to predict", args.outputs[k]));
        shape[0] = std::max<std::int64_t>(rows, 0);
        Tensor all(shape, g.type(targets[k]).dtype);
        std::size_t offset = 0;
        for (const auto& part : parts[k]) {
            std::memcpy(static_cast<std::byte*>(all.raw()) + offset, part.raw(), part.bytes());
            offset += part.bytes();
        }
        std::string file = args.outputs[k];
        std::replace(file.begin(), file.end(), '/', '_');
        const std::string path = (std::filesystem::path(args.out) / (file + ".npy")).string();
        io::write_npy(path, all);
        fmt::print("{}: {} {}\n", path, dtype_name(all.dtype()), to_string(all.shape()));
    }
    return 0;
}

}  // namespace graphrun::cli
