// The graphrun command line. Exit status: 0 success; 2 a bad spec, argument or
// input file; 1 any other failure (a non-finite loss, an internal error).
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "engine/error.hpp"
#include "engine/threads.hpp"
#include "engine/version.hpp"
#include "engine/train/communicator.hpp"
#include "engine/train/trainer.hpp"
#include "tools/cli.hpp"

namespace graphrun::cli {

const char* const kUsage =
    "usage:\n"
    "  graphrun SPEC                       same as: graphrun train SPEC\n"
    "  graphrun train SPEC [--set K=V]... [--init CKPT] [--resume] [--out DIR] [--threads N] [--allow-positive-only]\n"
    "                 [--profile] [--dump FILE]  per-op times after the run; the graph with its times as JSON\n"
    "  graphrun check SPEC [--set K=V]...  validate; print the summary table and the data's lengths\n"
    "  graphrun gradcheck SPEC             each parameter's gradient against finite differences on a small batch\n"
    "  graphrun predict SPEC --checkpoint CKPT --input NAME=FILE.npy ... --output NODE ... --out DIR\n"
    "  graphrun dump SPEC [-o FILE]        the graph as JSON (docs/graph-dump.md), for tools/graphviz_export\n"
    "  graphrun plot OUT                   redraw OUT/training.svg from a run's metrics (needs gnuplot)\n"
    "  graphrun --version\n";

namespace {
std::string value_of(int& i, int argc, char** argv) {
    if (i + 1 >= argc) throw UsageError(fmt::format("{} expects a value", argv[i]));
    return argv[++i];
}

std::pair<std::string, std::string> split_pair(const std::string& flag, const std::string& text) {
    const auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
        throw UsageError(fmt::format("{} expects NAME=VALUE, got '{}'", flag, text));
    return {text.substr(0, eq), text.substr(eq + 1)};
}
}  // namespace

Args parse_args(int argc, char** argv) {
    Args a;
    int i = 1;
    if (i < argc && (std::strcmp(argv[i], "train") == 0 || std::strcmp(argv[i], "check") == 0 || std::strcmp(argv[i], "gradcheck") == 0 ||
                     std::strcmp(argv[i], "predict") == 0 || std::strcmp(argv[i], "dump") == 0 || std::strcmp(argv[i], "plot") == 0))
        a.command = argv[i++];
    else
        a.command = "train";
    for (; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--set") {
            const std::string kv = value_of(i, argc, argv);
            split_pair("--set", kv);
            a.overrides.push_back(kv);
        } else if (arg == "--init") a.init = value_of(i, argc, argv);
        else if (arg == "--checkpoint") a.checkpoint = value_of(i, argc, argv);
        else if (arg == "--out" || (arg == "-o" && a.command == "dump")) a.out = value_of(i, argc, argv);
        else if (arg == "--dump") a.dump = value_of(i, argc, argv);
        else if (arg == "--profile") a.profile = true;
        else if (arg == "--resume") a.resume = true;
        else if (arg == "--allow-positive-only") a.allow_positive_only = true;
        else if (arg == "--threads") {
            const std::string v = value_of(i, argc, argv);
            try {
                std::size_t used = 0;
                a.threads = std::stoi(v, &used);
                if (used != v.size() || a.threads < 1) throw std::invalid_argument(v);
            } catch (const std::exception&) {
                throw UsageError(fmt::format("--threads expects a positive whole number, got '{}'", v));
            }
        } else if (arg == "--input") a.inputs.push_back(split_pair("--input", value_of(i, argc, argv)));
        else if (arg == "--output") a.outputs.push_back(value_of(i, argc, argv));
        else if (arg.rfind("-", 0) == 0) throw UsageError(fmt::format("unknown option '{}'", arg));
        else if (a.spec.empty()) a.spec = arg;
        else throw UsageError(fmt::format("unexpected argument '{}' (the spec is '{}')", arg, a.spec));
    }
    if (a.spec.empty()) throw UsageError(a.command == "plot" ? "no run folder given (graphrun plot OUT)" : "no spec given");
    if (a.resume && !a.init.empty()) throw UsageError("--resume and --init exclude each other: --resume continues from OUT/checkpoint.safetensors");
    return a;
}

}  // namespace graphrun::cli

int main(int argc, char** argv) {
    using namespace graphrun;
    if (argc >= 2 && (std::strcmp(argv[1], "--version") == 0)) {
        fmt::print("graphrun {}\n{}\n", graphrun::version(), train::mpi_description());
        return 0;
    }
    if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
        fmt::print("{}", cli::kUsage);
        return 0;
    }
    // Under mpirun, one of the ranks of a data-parallel run.
    std::unique_ptr<train::Communicator> ranks;
    try {
        ranks = train::start_mpi_if_launched(&argc, &argv);
    } catch (const Error& e) {
        fmt::print(stderr, "graphrun: {}\n", e.what());
        return 1;
    }
    const std::string who = ranks && ranks->size() > 1 ? fmt::format("graphrun (rank {} of {})", ranks->rank(), ranks->size()) : "graphrun";
    cli::communicator = ranks.get();
    int status = 0;
    try {
        const cli::Args args = cli::parse_args(argc, argv);
        const ThreadBudget budget(args.threads);
        if (args.command == "check") return cli::run_check(args);
        if (args.command == "gradcheck") return cli::run_gradcheck(args);
        if (args.command == "predict") return cli::run_predict(args);
        if (args.command == "dump") return cli::run_dump(args);
        if (args.command == "plot") return cli::run_plot(args);
        return cli::run_train(args);
    } catch (const cli::UsageError& e) {
        fmt::print(stderr, "{}: {}\n{}", who, e.what(), cli::kUsage);
        status = 2;
    } catch (const train::TrainingInterrupted& e) {  // before Error, which it is
        if (!ranks || ranks->rank() == 0) fmt::print(stderr, "\n{}: interrupted: {}\n", who, e.what());  // the ranks agree: one says it
        status = 130;  // as a shell reports a process ended by SIGINT
    } catch (const train::TrainingFailure& e) {  // before Error, which it is
        fmt::print(stderr, "{}: training failed: {}\n", who, e.what());
        status = 1;
    } catch (const Error& e) {
        fmt::print(stderr, "{}: {}\n", who, e.what());
        status = 2;
    } catch (const std::exception& e) {
        fmt::print(stderr, "{}: internal error: {}\n", who, e.what());
        status = 1;
    }
    // A rank that fails ends them all: the others would wait for it forever.
    // Not after an interrupt: every rank stopped at the same step, and rank 0
    // may still be writing the checkpoint.
    std::fflush(stderr);
    if (status != 130) train::abort_all_ranks(ranks.get(), status);
    return status;
}
