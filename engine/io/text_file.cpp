#include "engine/io/text_file.hpp"

#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <lzma.h>

#include "graphrun/error.hpp"

namespace graphrun::io {

namespace {

std::string xz_decompress(const std::string& compressed, const std::string& path) {
    lzma_stream stream = LZMA_STREAM_INIT;
    if (lzma_stream_decoder(&stream, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) throw Error(fmt::format("{}: cannot start the xz decoder", path));
    struct End {
        lzma_stream* s;
        ~End() { lzma_end(s); }
    } end{&stream};
    std::string out;
    char buffer[1 << 16];
    stream.next_in = reinterpret_cast<const std::uint8_t*>(compressed.data());
    stream.avail_in = compressed.size();
    for (;;) {
        stream.next_out = reinterpret_cast<std::uint8_t*>(buffer);
        stream.avail_out = sizeof buffer;
        // All input is given: LZMA_FINISH lets the decoder say when it is cut short.
        const lzma_ret r = lzma_code(&stream, LZMA_FINISH);
        out.append(buffer, sizeof buffer - stream.avail_out);
        if (r == LZMA_STREAM_END) return out;
        if (r == LZMA_OK) continue;
        if (r == LZMA_BUF_ERROR) throw Error(fmt::format("{}: the xz data is cut short (after {} bytes of text)", path, out.size()));
        if (r == LZMA_FORMAT_ERROR) throw Error(fmt::format("{}: not an xz file, though its name ends in .xz", path));
        throw Error(fmt::format("{}: the xz data is damaged (liblzma error {}) after {} bytes of text", path, static_cast<int>(r), out.size()));
    }
}

}  // namespace

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(fmt::format("{}: cannot open the data file: {}", path, std::strerror(errno)));
    std::stringstream bytes;
    bytes << in.rdbuf();
    if (path.size() > 3 && path.compare(path.size() - 3, 3, ".xz") == 0) return xz_decompress(bytes.str(), path);
    return bytes.str();
}

}  // namespace graphrun::io
