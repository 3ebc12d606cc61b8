// libFuzzer target: the .npy reader on arbitrary bytes (graphrun::Error only).
#include "graphrun/error.hpp"
#include "engine/io/npy.hpp"
#include "tests/fuzz/fuzz_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        graphrun::io::read_npy(fuzz_input_file(data, size, ".npy"));
    } catch (const graphrun::Error&) {
    }
    return 0;
}
