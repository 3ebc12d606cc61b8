// The graphrun command line. For now: `graphrun demo`, the built-in example,
// and `graphrun --version`; YAML specs (`graphrun SPEC`) come next.
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "engine/error.hpp"
#include "tools/demo.hpp"

namespace {
constexpr const char* kUsage =
    "usage: graphrun demo [--epochs N]   train the built-in Siamese LSTM example on synthetic pairs\n"
    "       graphrun --version\n";
}

int main(int argc, char** argv) {
    try {
        if (argc >= 2 && std::strcmp(argv[1], "--version") == 0) {
            fmt::print("graphrun {}\n", GRAPHRUN_VERSION);
            return 0;
        }
        if (argc >= 2 && std::strcmp(argv[1], "demo") == 0) {
            int epochs = 5;
            for (int i = 2; i < argc; ++i) {
                if (std::strcmp(argv[i], "--epochs") == 0 && i + 1 < argc) {
                    try {
                        epochs = std::stoi(argv[++i]);
                    } catch (const std::exception&) {
                        epochs = 0;
                    }
                    if (epochs < 1) {
                        fmt::print(stderr, "graphrun demo: --epochs expects a positive whole number, got '{}'\n", argv[i]);
                        return 2;
                    }
                } else {
                    fmt::print(stderr, "graphrun demo: unknown argument '{}'\n{}", argv[i], kUsage);
                    return 2;
                }
            }
            return graphrun::run_demo(epochs);
        }
        fmt::print(stderr, "{}", kUsage);
        return 2;
    } catch (const graphrun::Error& e) {
        fmt::print(stderr, "graphrun: {}\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        fmt::print(stderr, "graphrun: internal error: {}\n", e.what());
        return 1;
    }
}
