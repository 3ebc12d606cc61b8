// A word quoted for /bin/sh and bash: the tools pass paths to gnuplot and dot
// through popen, and write them into the completion script.
#pragma once

#include <string>

namespace graphrun::cli {

inline std::string shell_word(const std::string& text) {
    std::string out = "'";
    for (const char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

}  // namespace graphrun::cli
