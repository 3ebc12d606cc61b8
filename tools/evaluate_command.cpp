// `graphrun evaluate SPEC --checkpoint CKPT [--data FILE] [--out FILE.json]`:
// a trained checkpoint's figures on held-out data (the spec's data.test by
// default), as the task measures them in validation: a table on stdout, and
// with --out a JSON file (written whole or not at all).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/io/atomic_file.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/trainer.hpp"
#include "ops/builtin.hpp"
#include "tools/cli.hpp"

namespace graphrun::cli {

int run_evaluate(const Args& args) {
    if (args.checkpoint.empty()) throw UsageError("evaluate needs --checkpoint CKPT (a run's best.safetensors or checkpoint.safetensors)");
    const spec::Spec spec = spec::load_spec_file(args.spec, args.overrides);
    const BuiltGraph built = build_graph(spec, builtin_ops());
    const train::EpochMetrics m = train::evaluate(spec, built, args.checkpoint, args.data);
    // The figures lose validation's "val_" prefix: here they are the held-out data's.
    const auto plain = [](const std::string& name) { return name.starts_with("val_") ? name.substr(4) : name; };
    nlohmann::json j;
    j["checkpoint"] = args.checkpoint;
    j["data"] = args.data.empty() ? spec.data.columns.test : args.data;
    j["loss"] = m.val_loss ? nlohmann::json(*m.val_loss) : nlohmann::json(nullptr);
    fmt::print("{:<12} {}\n", "loss", m.val_loss ? fmt::format("{:.4f}", *m.val_loss) : "n/a");
    for (const auto& f : m.metrics) {
        j[plain(f.name)] = f.value ? nlohmann::json(*f.value) : nlohmann::json(nullptr);
        fmt::print("{:<12} {}\n", plain(f.name), f.value ? fmt::format(fmt::runtime(f.format), *f.value) : "n/a");
    }
    if (!args.out.empty()) {
        const std::string text = j.dump(2) + "\n";
        io::write_file_atomically(args.out, std::as_bytes(std::span(text)));
        fmt::print(stderr, "graphrun: wrote {}\n", args.out);
    }
    return 0;
}

}  // namespace graphrun::cli
