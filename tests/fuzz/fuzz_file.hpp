// The readers take a path: each input is written to a file of this process's
// own in /dev/shm (memory, so the disk does not slow the fuzzer), then read.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include <unistd.h>

inline std::string fuzz_input_file(const std::uint8_t* data, std::size_t size, const char* suffix) {
    static const std::string path = "/dev/shm/graphrun_fuzz_" + std::to_string(getpid()) + suffix;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) __builtin_trap();  // the harness itself is broken
    if (size) std::fwrite(data, 1, size, f);
    std::fclose(f);
    return path;
}
