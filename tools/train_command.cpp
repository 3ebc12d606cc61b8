// `graphrun train`: the training run with its progress display.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/trainer.hpp"
#include "ops/builtin.hpp"
#include "tools/cli.hpp"

namespace graphrun::cli {

namespace {
std::string clock(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    const auto s = static_cast<long>(seconds + 0.5);
    return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) : fmt::format("{}:{:02}", s / 60, s % 60);
}

std::string metric(const std::optional<double>& v, const char* format = "{:.4f}") {
    return v ? fmt::format(fmt::runtime(format), *v) : std::string("n/a");
}
}  // namespace

int run_train(const Args& args) {
    const spec::Spec spec = spec::load_spec_file(args.spec, args.overrides);
    const BuiltGraph built = build_graph(spec, builtin_ops());
    train::TrainOptions options;
    options.out_dir = args.out.empty() ? (std::filesystem::path("runs") / spec.name).string() : args.out;
    options.resume = args.resume;
    options.init_checkpoint = args.init;
    options.allow_positive_only = args.allow_positive_only;

    // A bar redrawn in place on a terminal; plain lines, ten an epoch, otherwise.
    const bool terminal = isatty(fileno(stderr));
    std::int64_t last_line = -1;
    options.on_step = [&](const train::Progress& p) {
        if (terminal) {
            const int width = 24, filled = static_cast<int>(width * p.step / p.steps);
            fmt::print(stderr, "\repoch {}/{} [{}{}] {}/{}  loss {:.4f}  {:.0f} samples/s  ETA {}   ", p.epoch, p.epochs, std::string(filled, '#'),
                       std::string(width - filled, ' '), p.step, p.steps, p.loss, p.samples_per_s, clock(p.eta_s));
        } else {
            const std::int64_t tenth = p.step * 10 / p.steps;
            if (tenth != last_line && (tenth > 0 || p.step == 1)) {
                last_line = tenth;
                fmt::print(stderr, "epoch {}/{} step {}/{}  loss {:.4f}  {:.0f} samples/s  ETA {}\n", p.epoch, p.epochs, p.step, p.steps, p.loss,
                           p.samples_per_s, clock(p.eta_s));
            }
        }
    };
    options.on_warning = [&](const std::string& message) { fmt::print(stderr, "{}warning: {}\n", terminal ? "\n" : "", message); };
    options.on_epoch = [&](const train::EpochMetrics& m) {
        if (terminal) fmt::print(stderr, "\n");
        fmt::print("epoch {}  train_loss {:.4f}  val_loss {}  val_auc {}  pos_sim {}  neg_sim {}  spread {}  {:.0f} samples/s\n", m.epoch,
                   m.train_loss, metric(m.val_loss), metric(m.val_auc, "{:.3f}"), metric(m.pos_sim, "{:+.3f}"), metric(m.neg_sim, "{:+.3f}"),
                   metric(m.spread, "{:.3f}"), m.samples_per_s);
        std::fflush(stdout);
    };

    fmt::print("graphrun: training {} ({} parameters) -> {}\n", spec.path, built.graph.parameter_count(), options.out_dir);
    const auto history = train::train(spec, built, options);
    if (history.empty()) {
        fmt::print("graphrun: nothing to do: the checkpoint in {} has finished all {} epochs\n", options.out_dir, spec.train.epochs);
        return 0;
    }
    fmt::print("graphrun: done; final val_auc {}; checkpoint {}/checkpoint.safetensors, metrics {}/metrics.jsonl\n",
               metric(history.back().val_auc, "{:.3f}"), options.out_dir, options.out_dir);
    return 0;
}

}  // namespace graphrun::cli
