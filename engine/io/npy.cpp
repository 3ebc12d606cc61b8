#include "engine/io/npy.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "graphrun/error.hpp"
#include "engine/io/atomic_file.hpp"
#include "engine/io/input_file.hpp"

namespace graphrun::io {

// The data is copied byte for byte, which is only right on a little-endian host.
static_assert(std::endian::native == std::endian::little, "graphrun's .npy I/O assumes a little-endian host");

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;
constexpr const char* kSupported = "'<i4' (int32), '<i8' (int64), '<f4' (float32), '<f8' (float64, read as float32)";


// The header: a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// parsed strictly: exactly these three keys, each once, with these value kinds.
struct Header {
    std::string descr;
    bool fortran_order = false;
    Shape shape;
};

class HeaderParser {
public:
    HeaderParser(const std::string& path, std::string_view text) : path_(path), text_(text) {}

    Header parse() {
        Header h;
        bool seen_descr = false, seen_order = false, seen_shape = false;
        expect('{');
        skip_spaces();
        while (peek() != '}') {
            const std::string key = string_literal();
            skip_spaces();
            expect(':');
            skip_spaces();
            if (key == "descr" && !seen_descr) {
                if (peek() != '\'' && peek() != '"') fail("'descr' must be a string such as '<f4' (structured dtypes are not supported)");
                h.descr = string_literal();
                seen_descr = true;
            } else if (key == "fortran_order" && !seen_order) {
                h.fortran_order = boolean();
                seen_order = true;
            } else if (key == "shape" && !seen_shape) {
                h.shape = tuple_of_ints();
                seen_shape = true;
            } else if (key == "descr" || key == "fortran_order" || key == "shape") {
                fail(fmt::format("key '{}' appears twice", key));
            } else {
                fail(fmt::format("unexpected key '{}' (expected 'descr', 'fortran_order', 'shape')", key));
            }
            skip_spaces();
            if (peek() == ',') {
                ++pos_;
                skip_spaces();
            } else if (peek() != '}') {
                fail("expected ',' or '}'");
            }
        }
        ++pos_;
        // NumPy pads with spaces and ends with '\n'; nothing else may follow.
        while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n')) ++pos_;
        if (pos_ != text_.size()) fail("unexpected text after the closing '}'");
        if (!seen_descr || !seen_order || !seen_shape)
            throw Error(fmt::format("{}: malformed .npy header: missing '{}' in {}", path_,
                                    !seen_descr ? "descr" : !seen_order ? "fortran_order" : "shape", quoted()));
        return h;
    }

private:
    char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
    void skip_spaces() {
        while (peek() == ' ') ++pos_;
    }
    std::string quoted() const {
        std::string_view shown = text_.substr(0, 200);
        while (!shown.empty() && (shown.back() == ' ' || shown.back() == '\n')) shown.remove_suffix(1);
        return fmt::format("\"{}\"", shown);
    }
    [[noreturn]] void fail(const std::string& what) const {
        throw Error(fmt::format("{}: malformed .npy header at character {}: {}; the header is {}", path_, pos_, what, quoted()));
    }
    void expect(char c) {
        if (peek() != c) fail(fmt::format("expected '{}'", c));
        ++pos_;
    }
    std::string string_literal() {
        const char quote = peek();
        if (quote != '\'' && quote != '"') fail("expected a quoted key");
        ++pos_;
        const std::size_t begin = pos_;
        // No escapes: the only strings NumPy writes here are keys and simple dtype codes.
        while (pos_ < text_.size() && text_[pos_] != quote) {
            if (text_[pos_] == '\\' || text_[pos_] == '\n') fail("unsupported character in a string");
            ++pos_;
        }
        if (pos_ >= text_.size()) fail("unterminated string");
        return std::string(text_.substr(begin, pos_++ - begin));
    }
    bool boolean() {
        if (text_.substr(pos_, 4) == "True") return pos_ += 4, true;
        if (text_.substr(pos_, 5) == "False") return pos_ += 5, false;
        fail("'fortran_order' must be True or False");
    }
    std::int64_t dimension() {
        if (peek() < '0' || peek() > '9') fail("expected a non-negative integer dimension");
        std::int64_t value = 0;
        while (peek() >= '0' && peek() <= '9') {
            const int digit = peek() - '0';
            if (value > (std::numeric_limits<std::int64_t>::max() - digit) / 10) fail("dimension too large");
            value = value * 10 + digit;
            ++pos_;
        }
        return value;
    }
    // "()", "(3,)", "(2, 3)", "(2, 3,)"; "(3)" is an int in Python, not a tuple.
    Shape tuple_of_ints() {
        Shape shape;
        expect('(');
        skip_spaces();
        bool trailing_comma = false;
        while (peek() != ')') {
            shape.push_back(dimension());
            skip_spaces();
            trailing_comma = peek() == ',';
            if (trailing_comma) {
                ++pos_;
                skip_spaces();
            } else if (peek() != ')') {
                fail("expected ',' or ')' in 'shape'");
            }
        }
        if (shape.size() == 1 && !trailing_comma) fail("'shape' must be a tuple, e.g. (3,)");
        ++pos_;
        return shape;
    }

    const std::string& path_;
    std::string_view text_;
    std::size_t pos_ = 0;
};

struct NpyType {
    DType dtype;
    std::size_t file_item_size;  // bytes per element in the file ('<f8' is 8, read as f32)
};

NpyType npy_type(const std::string& path, const std::string& descr) {
    if (descr == "<i4") return {DType::i32, 4};
    if (descr == "<i8") return {DType::i64, 8};
    if (descr == "<f4") return {DType::f32, 4};
    if (descr == "<f8") return {DType::f32, 8};
    if (!descr.empty() && descr[0] == '>')
        throw Error(fmt::format("{}: big-endian dtype '{}' is not supported; save with arr.astype('<{}')", path, descr, descr.substr(1)));
    throw Error(fmt::format("{}: unsupported dtype '{}'; supported: {}", path, descr, kSupported));
}

// Bytes the data needs, or nullopt if that does not fit in 63 bits. Zero dims
// are left out of the check so a shape like (0, 10^18, 10^18) is rejected too:
// the tensor's element count is a running product that must not overflow.
std::optional<std::uint64_t> data_bytes(const Shape& shape, std::size_t item_size) {
    std::uint64_t product = item_size;
    bool any_zero = false;
    for (auto d : shape) {
        if (d == 0) {
            any_zero = true;
            continue;
        }
        if (__builtin_mul_overflow(product, static_cast<std::uint64_t>(d), &product)) return std::nullopt;
        if (product > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
    }
    return any_zero ? 0 : product;
}

std::uint32_t little_endian(const unsigned char* p, int bytes) {
    std::uint32_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

}  // namespace

Tensor read_npy(const std::string& path) {
    InputFile file(path, ".npy file");
    const std::uint64_t size = file.size();

    // Preamble: magic, major, minor, then a 2-byte (1.0) or 4-byte (2.0, 3.0) header length.
    unsigned char preamble[12] = {};
    file.read(0, preamble, std::min<std::uint64_t>(size, sizeof preamble));
    if (size < kMagicSize || std::memcmp(preamble, kMagic, kMagicSize) != 0)
        throw Error(fmt::format("{}: not a .npy file (it does not start with \"\\x93NUMPY\")", path));
    if (size < kMagicSize + 2)
        throw Error(fmt::format("{}: truncated .npy header: expected at least 10 bytes, the file has {}", path, size));
    const int major = preamble[6], minor = preamble[7];
    if (minor != 0 || major < 1 || major > 3)
        throw Error(fmt::format("{}: unsupported .npy format version {}.{} (expected 1.0, 2.0 or 3.0)", path, major, minor));
    const std::uint64_t length_bytes = major == 1 ? 2 : 4;
    const std::uint64_t prefix = kMagicSize + 2 + length_bytes;
    if (size < prefix)
        throw Error(fmt::format("{}: truncated .npy header: expected at least {} bytes, the file has {}", path, prefix, size));
    const std::uint64_t header_length = little_endian(preamble + 8, static_cast<int>(length_bytes));
    if (prefix + header_length > size)
        throw Error(fmt::format("{}: truncated .npy header: expected {} bytes of header, the file has {} after the preamble",
                                path, header_length, size - prefix));

    std::string text(header_length, '\0');
    file.read(prefix, text.data(), header_length);
    const Header header = HeaderParser(path, text).parse();
    const NpyType type = npy_type(path, header.descr);
    if (header.fortran_order)
        throw Error(fmt::format("{}: Fortran-order arrays are not supported; save with np.ascontiguousarray", path));

    // Sizes first: a huge shape in a small file is an error before any allocation.
    const std::uint64_t present = size - prefix - header_length;
    const auto needed = data_bytes(header.shape, type.file_item_size);
    if (!needed)
        throw Error(fmt::format("{}: shape {} of '{}' is absurdly large; the file has {} bytes of data", path,
                                to_string(header.shape), header.descr, present));
    if (*needed > present)
        throw Error(fmt::format("{}: truncated data: shape {} of '{}' needs {} bytes, the file has {}", path,
                                to_string(header.shape), header.descr, *needed, present));
    if (*needed < present)
        throw Error(fmt::format("{}: {} trailing bytes after the data (shape {} of '{}' needs {} bytes, the file has {})", path,
                                present - *needed, to_string(header.shape), header.descr, *needed, present));

    Tensor t(header.shape, type.dtype);
    const std::uint64_t data_offset = prefix + header_length;
    if (*needed == 0) {
        // Nothing to read: an empty array.
    } else if (type.file_item_size == dtype_size(type.dtype)) {
        file.read(data_offset, t.raw(), *needed);
    } else {
        // '<f8' -> f32: rounds to nearest; values beyond float's range become inf.
        std::vector<double> values(static_cast<std::size_t>(t.numel()));
        file.read(data_offset, values.data(), *needed);
        float* out = t.f32();
        for (std::size_t i = 0; i < values.size(); ++i) out[i] = static_cast<float>(values[i]);
    }
    return t;
}

void write_npy(const std::string& path, const Tensor& t) {
    if (!t.defined()) throw Error(fmt::format("{}: cannot write an undefined tensor", path));
    const char* descr = t.dtype() == DType::f32 ? "<f4" : t.dtype() == DType::i32 ? "<i4" : "<i8";
    std::string shape = "(";
    for (std::size_t i = 0; i < t.rank(); ++i) shape += fmt::format("{}{}", i ? ", " : "", t.dim(i));
    shape += t.rank() == 1 ? ",)" : ")";
    std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr, shape);

    // Pad with spaces and a final '\n' so the data starts at a multiple of 64 bytes.
    const bool v1 = header.size() + 1 + 10 <= 65535;
    const std::size_t prefix = v1 ? 10 : 12;
    const std::size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
    header.append(total - prefix - header.size() - 1, ' ');
    header += '\n';

    std::string preamble(kMagic, kMagicSize);
    preamble += static_cast<char>(v1 ? 1 : 2);
    preamble += '\0';
    for (std::size_t i = 0; i < prefix - 8; ++i) preamble += static_cast<char>((header.size() >> (8 * i)) & 0xff);

    write_file_atomically(path, [&](const ByteSink& write) {
        write(std::as_bytes(std::span(preamble)));
        write(std::as_bytes(std::span(header)));
        write({static_cast<const std::byte*>(t.raw()), t.bytes()});
    });
}

}  // namespace graphrun::io
