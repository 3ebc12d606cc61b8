// A data file's text, whole: plain, or compressed with xz (a name ending in
// .xz, as data/packages ships its splits), decompressed with Debian's liblzma.
#pragma once

#include <string>

namespace graphrun::io {

// Throws graphrun::Error naming the path: cannot open, not valid xz, cut short.
std::string read_text_file(const std::string& path);

}  // namespace graphrun::io
