// Running the programs that draw pictures for the tools (gnuplot, Graphviz's
// dot): the input text on their standard input, the picture they write to a
// temporary file returned as bytes, their own chatter kept out of our output.
// The caller writes the bytes where they belong (io::write_file_atomically,
// or standard output), so a failed drawing never leaves a half file.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace graphrun::cli {

// A word quoted for /bin/sh and bash.
inline std::string shell_word(const std::string& text) {
    std::string out = "'";
    for (const char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

struct Drawing {
    bool ok = false;
    std::string bytes;       // the picture, when ok
    std::string complaint;   // otherwise: how it ended, and the program's first line of output
};

// Runs `command` with `input` on its standard input; "{out}" in either stands
// for a temporary file to draw into (a script may name it, as gnuplot's does). Its standard output and error go
// to a second temporary file, read only for the complaint.
inline Drawing draw_with(const std::string& command, const std::string& input) {
    const char* tmpdir = std::getenv("TMPDIR");
    std::string base = fmt::format("{}/graphrun-draw.XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    const int fd = ::mkstemp(base.data());
    if (fd < 0) throw std::runtime_error(fmt::format("cannot create a temporary file in {}: {}", tmpdir ? tmpdir : "/tmp", std::strerror(errno)));
    ::close(fd);
    const std::string out = base + ".out", log = base + ".log";
    std::string full = command, text = input;
    for (std::size_t at; (at = full.find("{out}")) != std::string::npos;) full.replace(at, 5, shell_word(out));
    for (std::size_t at; (at = text.find("{out}")) != std::string::npos;) text.replace(at, 5, out);  // mkstemp's name: no quotes
    Drawing d;
    if (std::FILE* p = ::popen(fmt::format("{} >{} 2>&1", full, shell_word(log)).c_str(), "w")) {
        const bool sent = std::fwrite(text.data(), 1, text.size(), p) == text.size();
        const int status = ::pclose(p);
        std::ifstream picture(out, std::ios::binary);
        d.bytes.assign(std::istreambuf_iterator<char>(picture), std::istreambuf_iterator<char>());
        d.ok = sent && status == 0 && !d.bytes.empty();
        if (!d.ok) {
            std::ifstream said(log);
            std::string first;
            while (first.empty() && std::getline(said, first)) {}
            d.complaint = fmt::format("{}{}", WIFEXITED(status) ? fmt::format("exit status {}", WEXITSTATUS(status)) : "killed",
                                      first.empty() ? "" : ": " + first);
        }
    } else {
        d.complaint = fmt::format("cannot run it: {}", std::strerror(errno));
    }
    for (const std::string& f : {base, out, log}) ::unlink(f.c_str());
    return d;
}

}  // namespace graphrun::cli
