// The graphrun command line: parsed arguments, and one function per command.
#pragma once

#include <map>
#include <string>
#include <vector>

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
    std::string init, checkpoint, out;     // --init, --checkpoint, --out
    bool resume = false, allow_positive_only = false;
    int threads = 0;                       // 0: every core
    std::vector<std::pair<std::string, std::string>> inputs;  // --input NAME=FILE.npy
    std::vector<std::string> outputs;      // --output NODE
};

Args parse_args(int argc, char** argv);
extern const char* const kUsage;

int run_train(const Args& args);
int run_check(const Args& args);
int run_gradcheck(const Args& args);
int run_predict(const Args& args);

}  // namespace graphrun::cli
