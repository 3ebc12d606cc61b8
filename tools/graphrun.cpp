// The graphrun command line. Exit status: 0 success; 2 a bad spec, argument or
// input file; 1 any other failure (a non-finite loss, an internal error).
#include <string>

#include <fmt/format.h>

#include "graphrun/error.hpp"
#include "engine/core/threads.hpp"
#include "graphrun/version.hpp"
#include "engine/train/communicator.hpp"
#include "engine/train/trainer.hpp"
#include "tools/cli.hpp"

int main(int argc, char** argv) {
    using namespace graphrun;
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
        if (args.command == "version") {
            const RuntimeInfo info = runtime_info();
            fmt::print("graphrun {}\noneDNN {}, instruction set {}\noneTBB {}\nthreads: {} by default (--threads N to change)\n{}\n", version(),
                       info.onednn, info.isa, info.onetbb, info.default_threads, train::mpi_description());
            return 0;
        }
        if (args.command == "help") {
            fmt::print("{}", cli::help_text(args.topic));
            return 0;
        }
        if (args.command == "completion") {
            fmt::print("{}", cli::bash_completion());
            return 0;
        }
        const ThreadBudget budget(args.threads);
        if (args.command == "check") return cli::run_check(args);
        if (args.command == "gradcheck") return cli::run_gradcheck(args);
        if (args.command == "predict") return cli::run_predict(args);
        if (args.command == "evaluate") return cli::run_evaluate(args);
        if (args.command == "score") return cli::run_score(args);
        if (args.command == "embed") return cli::run_embed(args);
        if (args.command == "index") return cli::run_index(args);
        if (args.command == "search") return cli::run_search(args);
        if (args.command == "dump") return cli::run_dump(args);
        if (args.command == "plot") return cli::run_plot(args);
        return cli::run_train(args);
    } catch (const cli::UsageError& e) {
        fmt::print(stderr, "{}: {}\n", who, e.what());
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
