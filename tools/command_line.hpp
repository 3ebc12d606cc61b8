// The graphrun command line's grammar (tools/command_line.cpp): the commands,
// their options, and what a parse gives.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace graphrun::cli {

// A bad argument; the CLI prints it and exits 2.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct Args {
    std::string command;                   // train, check, gradcheck, predict, evaluate, dump, plot, help, completion, version
    std::string spec;                      // the YAML file (plot: the run folder)
    std::string topic;                     // help: the command asked about; completion: the shell
    std::vector<std::string> overrides;    // --set K=V
    std::string init, checkpoint, out;     // --init, --checkpoint, --out (-o for dump)
    std::string data;                      // evaluate --data FILE
    std::string dump;                      // --dump FILE: the graph (and profile) after training
    bool profile = false;                  // --profile: per-op times after training
    bool resume = false, overwrite = false, allow_positive_only = false;
    bool version = false;                  // --version
    int threads = 0;                       // 0: every core
    std::vector<std::string> input_texts;  // --input as given
    std::vector<std::pair<std::string, std::string>> inputs;  // --input NAME=FILE.npy
    std::vector<std::string> outputs;      // --output NODE
    std::int64_t candidates = 1000;        // evaluate --candidates N
    std::string side;                      // embed --side left|right
    std::vector<std::string> texts;        // score TEXT_A TEXT_B, search QUERY...
    std::int64_t k = 10;                   // search --k
    bool approximate = false;              // index --approximate
};

// argv as main() has it. Throws UsageError for anything it cannot take; asks
// for help (command "help") when -h or --help stands anywhere.
Args parse_args(int argc, char** argv);

// `graphrun --help` (command ""), or one command's options with their defaults.
std::string help_text(const std::string& command);

// A bash completion script made from the parser's definitions.
std::string bash_completion();

}  // namespace graphrun::cli
