// `graphrun train`: the training run with its progress display.
#include <signal.h>
#include <unistd.h>

#include <atomic>

#include <algorithm>
#include <cmath>
#include <map>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tools/graph_json.hpp"
#include "engine/io/atomic_file.hpp"
#include "engine/spec/builder.hpp"
#include "engine/spec/loader.hpp"
#include "engine/train/siamese_task.hpp"
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

// The training steps a profile covers: the most calls of any node's backward.
std::int64_t steps_profiled(const Executor& ex) {
    std::int64_t steps = 0;
    for (const auto& t : ex.profile()) steps = std::max(steps, t.backward_calls);
    return steps;
}

// The ops by total time over the profiled steps, forward and backward apart,
// with their share, calls and GFLOP/s where the op counts its FLOPs.
void print_profile(const Executor& ex) {
    struct Row {
        std::string op;
        double seconds = 0, flops = 0;
        std::int64_t calls = 0;
    };
    std::map<std::string, Row> rows;
    double total = 0;
    const auto& nodes = ex.graph().nodes();
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        const auto& t = ex.profile()[i];
        for (const bool forward : {true, false}) {
            const std::string key = nodes[i].op_name + (forward ? " forward" : " backward");
            Row& r = rows[key];
            r.op = key;
            r.seconds += forward ? t.forward_s : t.backward_s;
            r.flops += forward ? t.forward_flops : t.backward_flops;
            r.calls += forward ? t.forward_calls : t.backward_calls;
            total += forward ? t.forward_s : t.backward_s;
        }
    }
    std::vector<Row> sorted;
    for (auto& [key, r] : rows)
        if (r.calls) sorted.push_back(r);
    std::sort(sorted.begin(), sorted.end(), [](const Row& a, const Row& b) { return a.seconds > b.seconds; });
    fmt::print("\nprofile of {} training steps (each node's own time; nodes that ran at once overlap):\n", steps_profiled(ex));
    fmt::print("{:<28} {:>10} {:>7} {:>9} {:>9}\n", "op", "total s", "share", "calls", "GFLOP/s");
    for (const Row& r : sorted)
        fmt::print("{:<28} {:>10.3f} {:>6.1f}% {:>9} {:>9}\n", r.op, r.seconds, total > 0 ? 100 * r.seconds / total : 0.0, r.calls,
                   r.flops > 0 && r.seconds > 0 ? fmt::format("{:.1f}", r.flops / r.seconds * 1e-9) : std::string("-"));
}

std::string metric(const std::optional<double>& v, const char* format = "{:.4f}") {
    return v ? fmt::format(fmt::runtime(format), *v) : std::string("n/a");
}
}  // namespace

namespace {
// SIGINT (Ctrl-C) asks the run to stop after the current step with a
// checkpoint; a second one ends the process at once (SA_RESETHAND). SIGUSR1
// does the same: mpirun passes SIGUSR1 on to the ranks, not SIGINT.
std::atomic<bool> interrupt_requested{false};
extern "C" void on_interrupt(int) { interrupt_requested.store(true); }

void catch_interrupts() {
    struct sigaction action {};
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGUSR1, &action, nullptr);
}
}  // namespace

namespace {
// A folder that already holds a run is the user's earlier work: training into
// it again must be asked for. A run is a checkpoint or a metrics.jsonl with an
// epoch in it (a run stopped before its first epoch leaves an empty one).
// --overwrite removes the run's own files, so a failed new run leaves no mix of
// the two; anything else in the folder stays. Under MPI rank 0 decides: it alone
// writes there, and the other ranks would see the files it starts writing.
const char* const kRunFiles[] = {"checkpoint.safetensors", "best.safetensors", "metrics.jsonl", "validation.tsv", "training.svg"};

void refuse_to_overwrite(const std::string& out_dir, const Args& args) {
    namespace fs = std::filesystem;
    if (args.resume || (communicator && communicator->rank() != 0)) return;
    std::vector<std::string> found;
    std::error_code ec;
    const fs::path dir(out_dir);
    if (fs::exists(dir / "checkpoint.safetensors", ec)) found.push_back("checkpoint.safetensors");
    if (fs::file_size(dir / "metrics.jsonl", ec) > 0 && !ec) found.push_back("metrics.jsonl");
    if (found.empty()) return;
    if (!args.overwrite)
        throw UsageError(fmt::format("{} already holds a run ({}); continue it with --resume, replace it with --overwrite, or choose another --out",
                                     out_dir, fmt::join(found, ", ")));
    for (const char* name : kRunFiles) fs::remove(dir / name, ec);
    fmt::print(stderr, "graphrun: --overwrite: replacing the run in {}\n", out_dir);
}
}  // namespace

int run_train(const Args& args) {
    const spec::Spec spec = spec::load_spec_file(args.spec, args.overrides);
    const BuiltGraph built = build_graph(spec, builtin_ops());
    train::TrainOptions options;
    options.out_dir = args.out.empty() ? (std::filesystem::path("runs") / spec.name).string() : args.out;
    options.resume = args.resume;
    refuse_to_overwrite(options.out_dir, args);
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
        if (!m.val_similarity.empty()) write_validation_tsv(options.out_dir, m.val_similarity, m.val_label);
        std::string figures;
        for (const auto& f : m.metrics) figures += fmt::format("  {} {}", f.name, metric(f.value, f.format.c_str()));
        fmt::print("epoch {}  train_loss {:.4f}  val_loss {}{}  lr {:.3g}  {:.0f} samples/s\n", m.epoch, m.train_loss, metric(m.val_loss), figures, m.lr,
                   m.samples_per_s);
        std::fflush(stdout);
    };

    options.profile = args.profile;
    options.stop = &interrupt_requested;
    options.communicator = communicator;
    const bool lead = !communicator || communicator->rank() == 0;  // rank 0 alone reports
    catch_interrupts();
    options.on_finish = [&](const Executor& ex) {
        if (!lead) return;
        if (args.profile) print_profile(ex);
        if (!args.dump.empty()) {
            GraphDumpInfo info = dump_info(spec, built);
            if (args.profile) {
                info.profile = &ex.profile();
                info.steps = ex.profile().empty() ? 0 : steps_profiled(ex);
            }
            const std::string text = graph_to_json(built.graph, info);
            io::write_file_atomically(args.dump, std::as_bytes(std::span(text)));
            fmt::print("graphrun: wrote the graph{} to {}\n", args.profile ? " and its profile" : "", args.dump);
        }
    };

    if (lead)  // progress, not a result: on stderr, so it comes before the bar
        fmt::print(stderr, "graphrun: training {} ({} parameters) -> {}{}\n", spec.path, built.graph.parameter_count(), options.out_dir,
                   communicator && communicator->size() > 1 ? fmt::format(" on {} ranks", communicator->size()) : "");
    std::vector<train::EpochMetrics> history;
    try {
        history = train::train(spec, built, options);
    } catch (const train::TrainingInterrupted& e) {
        // The same command with --resume continues: the same --set overrides and folder.
        std::string again = (communicator && communicator->size() > 1 ? fmt::format("mpirun -np {} ", communicator->size()) : "") + "graphrun train " + args.spec;
        for (const auto& kv : args.overrides) again += " --set " + kv;
        if (args.threads > 0) again += fmt::format(" --threads {}", args.threads);
        throw train::TrainingInterrupted(fmt::format("{}; continue with: {} --resume --out {}", e.what(), again, options.out_dir), e.checkpoint());
    }
    if (!lead) return 0;
    if (history.empty()) {
        if (spec.train.max_steps > 0)
            fmt::print("graphrun: done: train.max_steps = {} reached before an epoch ended; checkpoint {}/checkpoint.safetensors\n", spec.train.max_steps,
                       options.out_dir);
        else
            fmt::print("graphrun: nothing to do: the checkpoint in {} has finished all {} epochs\n", options.out_dir, spec.train.epochs);
        return 0;
    }
    const train::Metric& first = history.back().metrics.front();
    const std::string best = options.out_dir + "/best.safetensors";
    fmt::print("graphrun: done; final {} {}; checkpoint {}/checkpoint.safetensors{}, metrics {}/metrics.jsonl\n", first.name,
               metric(first.value, first.format.c_str()), options.out_dir, std::filesystem::exists(best) ? fmt::format(" (best {})", best) : "",
               options.out_dir);
    // The picture is a convenience: its failure must not fail a finished run.
    try {
        const std::string note =
            draw_training_svg(options.out_dir, spec.name, spec.task == "siamese" ? train::find_roles(built.graph).metric : text::Metric{});
        if (note.empty()) fmt::print("graphrun: picture {}/training.svg\n", options.out_dir);
        else fmt::print(stderr, "graphrun: {}\n", note);
    } catch (const Error& e) {
        fmt::print(stderr, "graphrun: no training picture: {}\n", e.what());
    }
    return 0;
}

}  // namespace graphrun::cli
