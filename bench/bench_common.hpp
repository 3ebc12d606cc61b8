// What the benchmark programs share: their arguments, the median, peak memory
// and the process's thread count.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/resource.h>

namespace bench {

struct Args {
    std::string mode = "train";  // train | infer
    int threads = 1, steps = 20, warmup = 3;
    long batch = 0;  // 0: 32 to train, 256 to infer
    std::string precision = "f32";  // graphrun's lstm: f32 | bf16
    std::string impl = "graphrun";  // graphrun's lstm: graphrun (its own, the default) | dnnl (oneDNN's primitive)
    bool data = false;               // --data: the spec's training data, as the trainer batches it
    std::vector<std::string> sets;   // --set KEY=VALUE, as graphrun train's
    std::string save_batches;        // --save-batches PREFIX: the timed batches' ids as .npy
    bool training() const { return mode == "train"; }
};

// --help or -h among the arguments: the program prints its usage on stdout and exits 0.
struct HelpRequested {};

inline long parse_number(const std::string& option, const std::string& value) {
    std::size_t used = 0;
    long n = 0;
    try {
        n = std::stol(value, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != value.size()) throw std::invalid_argument(option + " expects a whole number, got '" + value + "'");
    return n;
}

// --mode train|infer --threads P [--batch N] [--steps S] [--warmup W] [--precision f32|bf16] [--impl dnnl|graphrun], from argv[first].
// `data_options`: the program takes --data, --set and --save-batches (bench_siamese).
inline Args parse_args(int argc, char** argv, int first, bool data_options = false) {
    Args a;
    for (int i = 1; i < argc; ++i)
        if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") throw HelpRequested{};
    for (int i = first; i < argc; i += 2) {
        const std::string k = argv[i];
        if (!data_options && (k == "--data" || k == "--set" || k == "--save-batches"))
            throw std::invalid_argument("unknown option '" + k + "' (bench_siamese takes it)");
        if (k == "--data") {  // a flag: no value
            a.data = true;
            --i;
            continue;
        }
        if (i + 1 >= argc) throw std::invalid_argument(k + " expects a value");
        const std::string v = argv[i + 1];
        if (k == "--mode") a.mode = v;
        else if (k == "--threads") a.threads = static_cast<int>(parse_number(k, v));
        else if (k == "--batch") a.batch = parse_number(k, v);
        else if (k == "--steps") a.steps = static_cast<int>(parse_number(k, v));
        else if (k == "--warmup") a.warmup = static_cast<int>(parse_number(k, v));
        else if (k == "--precision") a.precision = v;
        else if (k == "--impl") a.impl = v;
        else if (k == "--set") a.sets.push_back(v);
        else if (k == "--save-batches") a.save_batches = v;
        else throw std::invalid_argument("unknown option '" + k + "'");
    }
    if (a.mode != "train" && a.mode != "infer") throw std::invalid_argument("--mode is train or infer, not '" + a.mode + "'");
    if (a.precision != "f32" && a.precision != "bf16") throw std::invalid_argument("--precision is f32 or bf16, not '" + a.precision + "'");
    if (a.impl != "dnnl" && a.impl != "graphrun") throw std::invalid_argument("--impl is dnnl or graphrun, not '" + a.impl + "'");
    if (a.threads < 1 || a.steps < 1 || a.warmup < 0 || a.batch < 0)
        throw std::invalid_argument("expected --threads P >= 1, --steps S >= 1, --warmup W >= 0, --batch N >= 1");
    if ((!a.sets.empty() || !a.save_batches.empty()) && !a.data) throw std::invalid_argument("--set and --save-batches go with --data");
    if (a.data && !a.training()) throw std::invalid_argument("--data times training steps: use it with --mode train");
    if (a.batch == 0) a.batch = a.training() ? 32 : 256;
    return a;
}

// The JSON line of a case this CPU cannot run (bench/report.py shows why).
inline std::string unsupported_line(const std::string& framework, const Args& a, const std::string& why) {
    return "{\"framework\": \"" + framework + "\", \"mode\": \"" + a.mode + "\", \"threads\": " + std::to_string(a.threads) +
           ", \"batch\": " + std::to_string(a.batch) + ", \"unsupported\": \"" + why + "\"}\n";
}

inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

inline double peak_rss_mb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;
}

// The process's thread count now (Linux /proc), to show there is no oversubscription.
inline int thread_count() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("Threads:", 0) == 0) return std::atoi(line.c_str() + 8);
    return -1;
}

}  // namespace bench
