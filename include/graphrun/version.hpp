// graphrun's version, semantic versioning (MAJOR.MINOR.PATCH). Its one source
// is project(VERSION ...) in CMakeLists.txt.
#pragma once

#include <string>

namespace graphrun {

std::string version();  // e.g. "0.1.0"

// What this process runs on, as `graphrun --version` prints it: the libraries
// loaded at run time (which may differ from the headers built against).
struct RuntimeInfo {
    std::string onednn;   // e.g. "2.6.0 (ea2bda3)"
    std::string onetbb;   // e.g. "2021.8.0"
    std::string isa;      // the instruction set oneDNN's kernels dispatch to on this CPU, e.g. "avx512_core_bf16"
    int default_threads;  // threads a run uses without --threads: every core this process may run on
};
RuntimeInfo runtime_info();

}  // namespace graphrun
