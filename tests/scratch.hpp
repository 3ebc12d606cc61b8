// A fresh, empty folder for a test's files: <tmp>/graphrun_<suite>_<name>_<pid>
// (the pid keeps ctest -j's processes apart). The test removes it when done.
// And a file's bytes, to compare what two runs wrote.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <fmt/format.h>

namespace graphrun::test {

inline std::filesystem::path scratch_folder(const std::string& suite, const std::string& name) {
    const std::filesystem::path p = std::filesystem::temp_directory_path() / fmt::format("graphrun_{}_{}_{}", suite, name, getpid());
    std::filesystem::remove_all(p);
    std::filesystem::create_directories(p);
    return p;
}

inline std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace graphrun::test
