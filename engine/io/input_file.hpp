// A regular file read at known offsets, with its size known up front so the
// readers (.npy, safetensors) allocate nothing before checking sizes against it.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "graphrun/error.hpp"

namespace graphrun::io {

class InputFile {
public:
    // `kind` names what was expected, for the message when `path` is a folder: ".npy file".
    InputFile(const std::string& path, const char* kind) : path_(path) {
        std::error_code ec;
        if (std::filesystem::is_directory(path, ec)) throw Error(fmt::format("{}: is a folder, expected a {}", path, kind));
        in_.open(path, std::ios::binary);
        if (!in_) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
        in_.seekg(0, std::ios::end);
        const auto end = in_.tellg();
        if (end < 0) throw Error(fmt::format("{}: cannot determine the file size", path));
        size_ = static_cast<std::uint64_t>(end);
    }
    std::uint64_t size() const { return size_; }
    void read(std::uint64_t offset, void* out, std::uint64_t count) {
        in_.clear();
        in_.seekg(static_cast<std::streamoff>(offset));
        in_.read(static_cast<char*>(out), static_cast<std::streamsize>(count));
        if (static_cast<std::uint64_t>(in_.gcount()) != count)
            throw Error(fmt::format("{}: read {} of {} bytes at offset {} (did the file change while reading?)", path_, in_.gcount(), count, offset));
    }

private:
    std::string path_;
    std::ifstream in_;
    std::uint64_t size_ = 0;
};

}  // namespace graphrun::io
