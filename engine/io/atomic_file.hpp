// Whole-file writes that either replace the target completely or leave it
// untouched: a crash or a full disk mid-write never leaves a half checkpoint.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>

namespace graphrun::io {

// Appends bytes to the file being written; throws graphrun::Error on failure.
using ByteSink = std::function<void(std::span<const std::byte>)>;

// Writes into "<path>.tmp.<pid>.<n>" in the same folder (so the rename cannot
// cross file systems), fsyncs it, renames it over `path`, then fsyncs the folder
// so the rename itself survives a power cut. On any failure, including an
// exception from `produce`, the temporary file is removed, `path` keeps its old
// contents, and graphrun::Error names the path and strerror(errno).
void write_file_atomically(const std::string& path, const std::function<void(const ByteSink& write)>& produce);
void write_file_atomically(const std::string& path, std::span<const std::byte> bytes);

}  // namespace graphrun::io
