// The graphrun command line: parsed arguments, and one function per command.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/inspect/graph_json.hpp"
#include "engine/spec/builder.hpp"
#include "engine/train/communicator.hpp"

namespace graphrun::cli {

// A bad argument; the CLI prints it with the usage and exits 2.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct Args {
    std::string command;                   // train, check, gradcheck, predict
    std::string spec;                      // the YAML file
    std::vector<std::string> overrides;    // --set K=V
    std::string init, checkpoint, out;     // --init, --checkpoint, --out (-o for dump)
    std::string dump;                      // --dump FILE: the graph (and profile) after training
    bool profile = false;                  // --profile: per-op times after training
    bool resume = false, allow_positive_only = false;
    int threads = 0;                       // 0: every core
    std::vector<std::pair<std::string, std::string>> inputs;  // --input NAME=FILE.npy
    std::vector<std::string> outputs;      // --output NODE
};

Args parse_args(int argc, char** argv);

// The ranks of a data-parallel run under mpirun; nullptr for one process.
inline train::Communicator* communicator = nullptr;

// What a graph dump says of the spec it came from (name, outputs, loss).
GraphDumpInfo dump_info(const spec::Spec& spec, const BuiltGraph& built);
extern const char* const kUsage;

int run_train(const Args& args);
int run_dump(const Args& args);
int run_plot(const Args& args);

// OUT/validation.tsv: one line per validation pair, similarity <tab> label.
void write_validation_tsv(const std::string& out_dir, const std::vector<float>& similarity, const std::vector<float>& label);
// Draws OUT/training.svg with gnuplot. Returns "" or, without gnuplot, a one-line note.
std::string draw_training_svg(const std::string& out_dir, const std::string& title);
int run_check(const Args& args);
int run_gradcheck(const Args& args);
int run_predict(const Args& args);

}  // namespace graphrun::cli
