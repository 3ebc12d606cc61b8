#include "engine/io/safetensors.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "graphrun/error.hpp"
#include "engine/io/atomic_file.hpp"
#include "engine/io/input_file.hpp"

namespace graphrun::io {

// The data is copied byte for byte, which is only right on a little-endian host.
static_assert(std::endian::native == std::endian::little, "graphrun's safetensors I/O assumes a little-endian host");

namespace {

using nlohmann::json;

constexpr const char* kMetadataKey = "__metadata__";

const char* safetensors_dtype(DType dtype) {
    switch (dtype) {
        case DType::f32: return "F32";
        case DType::i32: return "I32";
        case DType::i64: return "I64";
    }
    return "?";
}


// nlohmann::json keeps the last of two equal keys; a checkpoint with two values
// for one tensor is ambiguous, so the parse callback rejects duplicates.
json parse_header(const std::string& path, const std::string& text) {
    std::vector<std::set<std::string>> keys_per_object;
    std::string duplicate;
    auto callback = [&](int, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::object_start) keys_per_object.emplace_back();
        if (event == json::parse_event_t::object_end) keys_per_object.pop_back();
        if (event == json::parse_event_t::key && !keys_per_object.back().insert(parsed.get<std::string>()).second && duplicate.empty())
            duplicate = parsed.get<std::string>();
        return true;
    };
    json header;
    try {
        header = json::parse(text, callback);
    } catch (const json::exception& e) {
        // nlohmann's message starts with its own tag, "[json.exception.parse_error.101] ".
        std::string what = e.what();
        if (what.rfind("[json.exception", 0) == 0 && what.find("] ") != std::string::npos) what = what.substr(what.find("] ") + 2);
        throw Error(fmt::format("{}: the safetensors header is not valid JSON: {}", path, what));
    }
    if (!duplicate.empty()) throw Error(fmt::format("{}: the safetensors header has the key '{}' twice", path, duplicate));
    if (!header.is_object()) throw Error(fmt::format("{}: the safetensors header is not a JSON object, got {}", path, header.type_name()));
    return header;
}

// A JSON number that is a non-negative integer below 2^63, or nullopt.
std::optional<std::uint64_t> size_value(const json& v) {
    if (v.is_number_unsigned()) {
        const auto u = v.get<std::uint64_t>();
        if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return u;
    }
    return std::nullopt;
}

struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    std::uint64_t begin, end;  // relative to the start of the data section
};

Entry parse_entry(const std::string& path, const std::string& name, const json& info, std::uint64_t data_size) {
    auto fail = [&](const std::string& what) { return Error(fmt::format("{}: tensor '{}': {}", path, name, what)); };
    if (!info.is_object()) throw fail(fmt::format("expected an object with dtype, shape and data_offsets, got {}", info.type_name()));
    for (const char* field : {"dtype", "shape", "data_offsets"})
        if (!info.contains(field)) throw fail(fmt::format("missing \"{}\" (expected dtype, shape and data_offsets)", field));
    for (const auto& [key, value] : info.items())
        if (key != "dtype" && key != "shape" && key != "data_offsets") throw fail(fmt::format("unexpected field \"{}\"", key));

    Entry e{name, DType::f32, {}, 0, 0};
    const json& dtype = info["dtype"];
    if (dtype == "F32") e.dtype = DType::f32;
    else if (dtype == "I32") e.dtype = DType::i32;
    else if (dtype == "I64") e.dtype = DType::i64;
    else throw fail(fmt::format("unsupported dtype {} (supported: \"F32\", \"I32\", \"I64\")", dtype.dump()));

    const json& shape = info["shape"];
    if (!shape.is_array()) throw fail(fmt::format("\"shape\" must be an array of dimensions, got {}", shape.dump()));
    // The byte count of the nonzero dims must fit in 63 bits, so a huge shape
    // is an error here, not a huge allocation (and not an overflow in element_count).
    std::uint64_t bytes = dtype_size(e.dtype);
    bool any_zero = false;
    for (const json& d : shape) {
        const auto dim = size_value(d);
        if (!dim) throw fail(fmt::format("dimension {} in shape {} is not a non-negative integer", d.dump(), shape.dump()));
        e.shape.push_back(static_cast<std::int64_t>(*dim));
        if (*dim == 0) any_zero = true;
        else if (__builtin_mul_overflow(bytes, *dim, &bytes) || bytes > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            throw fail(fmt::format("shape {} is absurdly large (the data section has {} bytes)", shape.dump(), data_size));
    }
    if (any_zero) bytes = 0;

    const json& offsets = info["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !size_value(offsets[0]) || !size_value(offsets[1]))
        throw fail(fmt::format("\"data_offsets\" must be [begin, end] with non-negative integers, got {}", offsets.dump()));
    e.begin = *size_value(offsets[0]);
    e.end = *size_value(offsets[1]);
    if (e.begin > e.end) throw fail(fmt::format("data_offsets [{}, {}] end before they begin", e.begin, e.end));
    if (e.end > data_size)
        throw fail(fmt::format("data_offsets [{}, {}] are out of range: the data section has {} bytes", e.begin, e.end, data_size));
    if (e.end - e.begin != bytes)
        throw fail(fmt::format("data_offsets [{}, {}] hold {} bytes, but shape {} of {} needs {}", e.begin, e.end, e.end - e.begin,
                               to_string(e.shape), dtype.get<std::string>(), bytes));
    return e;
}

// The tensors must tile the data section exactly: no overlaps, gaps or trailing bytes.
void check_layout(const std::string& path, std::vector<Entry>& entries, std::uint64_t data_size) {
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
    std::uint64_t covered = 0;
    const Entry* previous = nullptr;
    for (const Entry& e : entries) {
        const std::string before = previous ? fmt::format("'{}' [{}, {})", previous->name, previous->begin, previous->end) : "the start";
        if (e.begin < covered)
            throw Error(fmt::format("{}: tensor '{}' [{}, {}) overlaps {}", path, e.name, e.begin, e.end, before));
        if (e.begin > covered)
            throw Error(fmt::format("{}: tensor '{}' [{}, {}): {} unused bytes between it and {}", path, e.name, e.begin, e.end, e.begin - covered, before));
        covered = e.end;
        previous = &e;
    }
    if (covered != data_size)
        throw Error(fmt::format("{}: {} trailing bytes after the last tensor{} (the data section has {} bytes)", path, data_size - covered,
                                previous ? fmt::format(" '{}'", previous->name) : "", data_size));
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const json& metadata) {
    if (!metadata.is_object()) throw Error(fmt::format("{}: \"{}\" must be an object of strings, got {}", path, kMetadataKey, metadata.type_name()));
    std::map<std::string, std::string> out;
    for (const auto& [key, value] : metadata.items()) {
        if (!value.is_string())
            throw Error(fmt::format("{}: \"{}\" value for '{}' must be a string, got {}", path, kMetadataKey, key, value.dump()));
        out[key] = value.get<std::string>();
    }
    return out;
}

}  // namespace

void write_safetensors(const std::string& path, const Checkpoint& checkpoint) {
    json header = json::object();
    if (!checkpoint.metadata.empty()) header[kMetadataKey] = checkpoint.metadata;
    std::uint64_t offset = 0;
    for (const auto& [name, t] : checkpoint.tensors) {  // std::map: name order
        if (name == kMetadataKey) throw Error(fmt::format("{}: a tensor cannot be named '{}'", path, kMetadataKey));
        if (!t.defined()) throw Error(fmt::format("{}: tensor '{}' is undefined", path, name));
        header[name] = {{"dtype", safetensors_dtype(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.bytes()}}};
        offset += t.bytes();
    }
    std::string text;
    try {
        text = header.dump();
    } catch (const json::exception& e) {  // a name or metadata string that is not UTF-8
        throw Error(fmt::format("{}: cannot write the safetensors header: {}", path, e.what()));
    }
    // Spaces after the JSON are valid JSON and make the data start 8-byte aligned.
    text.append((8 - text.size() % 8) % 8, ' ');
    unsigned char length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>((static_cast<std::uint64_t>(text.size()) >> (8 * i)) & 0xff);

    write_file_atomically(path, [&](const ByteSink& write) {
        write(std::as_bytes(std::span(length)));
        write(std::as_bytes(std::span(text)));
        for (const auto& [name, t] : checkpoint.tensors) write({static_cast<const std::byte*>(t.raw()), t.bytes()});
    });
}

Checkpoint read_safetensors(const std::string& path) {
    InputFile file(path, ".safetensors file");
    const std::uint64_t size = file.size();
    if (size < 8)
        throw Error(fmt::format("{}: the file is {} bytes, too short for safetensors (it starts with an 8-byte header length)", path, size));
    unsigned char length_bytes[8];
    file.read(0, length_bytes, 8);
    std::uint64_t header_length = 0;
    for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | length_bytes[i];
    if (header_length > size - 8)
        throw Error(fmt::format("{}: header length {} is larger than the file ({} bytes)", path, header_length, size));

    std::string text(header_length, '\0');
    file.read(8, text.data(), header_length);
    const json header = parse_header(path, text);

    Checkpoint checkpoint;
    const std::uint64_t data_start = 8 + header_length;
    const std::uint64_t data_size = size - data_start;
    std::vector<Entry> entries;
    for (const auto& [name, info] : header.items()) {
        if (name == kMetadataKey) checkpoint.metadata = parse_metadata(path, info);
        else entries.push_back(parse_entry(path, name, info, data_size));
    }
    check_layout(path, entries, data_size);

    // Every size is now known to lie within the file: allocate and read.
    for (const Entry& e : entries) {
        Tensor t(e.shape, e.dtype);
        if (e.end > e.begin) file.read(data_start + e.begin, t.raw(), e.end - e.begin);
        checkpoint.tensors.emplace(e.name, std::move(t));
    }
    return checkpoint;
}

}  // namespace graphrun::io
