// .npy and safetensors readers/writers and atomic file writes: round trips,
// files NumPy wrote (tests/io_data, made by make_io_data.py), and one test per
// kind of bad input, checking that the message names the file and the problem.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "graphrun/error.hpp"
#include "engine/io/atomic_file.hpp"
#include "engine/io/npy.hpp"
#include "engine/io/safetensors.hpp"

namespace fs = std::filesystem;
using namespace graphrun;
using Catch::Matchers::Contains;

namespace {

const std::string kData = std::string(GRAPHRUN_SOURCE_DIR) + "/tests/io_data/";

// A fresh folder per test and process (tests may run in parallel), removed afterwards.
struct TempDir {
    fs::path path;
    explicit TempDir(const std::string& name)
        : path(fs::temp_directory_path() / fmt::format("graphrun_io_{}_{}", name, ::getpid())) {
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// The message of the graphrun::Error that f throws ("" and a failure if none).
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    FAIL("expected a graphrun::Error");
    return "";
}

// A .npy file by hand: preamble for `version`, the header dict padded to 64, then `data`.
std::string npy_bytes(const std::string& dict, const std::string& data, int major = 1, int minor = 0) {
    std::string header = dict;
    const std::size_t prefix = major == 1 ? 10 : 12;
    header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
    header += '\n';
    std::string out = "\x93NUMPY";
    out += static_cast<char>(major);
    out += static_cast<char>(minor);
    for (std::size_t i = 0; i < prefix - 8; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
    return out + header + data;
}

std::string f4_dict(const std::string& shape) { return "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }"; }

// A safetensors file by hand: the length prefix (the real one unless given), the header, `data_size` zero bytes.
std::string st_bytes(const std::string& header, std::size_t data_size, std::uint64_t length = UINT64_MAX) {
    if (length == UINT64_MAX) length = header.size();
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((length >> (8 * i)) & 0xff);
    return out + header + std::string(data_size, '\0');
}

std::vector<std::string> leftover_temp_files(const fs::path& folder) {
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(folder))
        if (entry.path().filename().string().find(".tmp.") != std::string::npos) found.push_back(entry.path().string());
    return found;
}

}  // namespace

// ---------------------------------------------------------------- .npy

TEST_CASE("npy: round trip of every dtype, a scalar and empty dimensions", "[io]") {
    TempDir dir("npy_round_trip");
    Tensor f = Tensor::from_floats({2, 3}, std::vector<float>{1, -2, 3.5f, 0, 1e-30f, 7});
    Tensor i32({4}, DType::i32);
    for (int k = 0; k < 4; ++k) i32.i32()[k] = k * 1000 - 1;
    Tensor i64({2, 2}, DType::i64);
    for (int k = 0; k < 4; ++k) i64.i64()[k] = (std::int64_t{1} << 40) * (k - 2);
    Tensor scalar = Tensor::from_floats({}, std::vector<float>{42.f});
    Tensor empty({0, 3}, DType::f32);
    Tensor empty_mid({3, 0, 2}, DType::i64);
    for (const Tensor* t : {&f, &i32, &i64, &scalar, &empty, &empty_mid}) {
        const std::string path = dir.file("t.npy");
        io::write_npy(path, *t);
        const Tensor back = io::read_npy(path);
        CHECK(back.type() == t->type());
        CHECK(std::memcmp(back.raw(), t->raw(), t->bytes()) == 0);
        CHECK(read_bytes(path).size() % 64 == t->bytes() % 64);  // header padded to 64
    }
    CHECK(leftover_temp_files(dir.path).empty());
}

TEST_CASE("npy: the writer produces the bytes NumPy's np.save does", "[io]") {
    TempDir dir("npy_like_numpy");
    for (const char* name : {"f32_2x3.npy", "i32_3.npy", "i64_scalar.npy", "f32_0x3.npy"}) {
        const std::string out = dir.file(name);
        io::write_npy(out, io::read_npy(kData + name));
        CHECK(read_bytes(out) == read_bytes(kData + name));
    }
}

TEST_CASE("npy: reads files NumPy wrote, versions 1.0, 2.0 and 3.0", "[io]") {
    const Tensor f = io::read_npy(kData + "f32_2x3.npy");
    REQUIRE(f.type() == TensorType{DType::f32, {2, 3}});
    CHECK(f.f32()[5] == 1.25f);
    const Tensor d = io::read_npy(kData + "f64_2x2.npy");  // '<f8' read as f32
    REQUIRE(d.type() == TensorType{DType::f32, {2, 2}});
    CHECK(d.f32()[1] == -1.25f);
    CHECK(d.f32()[3] == 1e-3f);
    const Tensor i = io::read_npy(kData + "i32_3.npy");
    REQUIRE(i.type() == TensorType{DType::i32, {3}});
    CHECK(i.i32()[1] == -8);
    CHECK(i.i32()[2] == 2147483647);
    const Tensor s = io::read_npy(kData + "i64_scalar.npy");
    REQUIRE(s.type() == TensorType{DType::i64, {}});
    CHECK(s.i64()[0] == -(std::int64_t{1} << 40));
    CHECK(io::read_npy(kData + "f32_0x3.npy").type() == TensorType{DType::f32, {0, 3}});
    const Tensor v2 = io::read_npy(kData + "i64_3_v2.npy");
    REQUIRE(v2.type() == TensorType{DType::i64, {3}});
    CHECK(v2.i64()[2] == 3);
    const Tensor v3 = io::read_npy(kData + "f32_2_v3.npy");
    REQUIRE(v3.type() == TensorType{DType::f32, {2}});
    CHECK(v3.f32()[1] == 2.5f);
}

TEST_CASE("npy: a missing file or a folder", "[io]") {
    CHECK_THAT(error_of([] { io::read_npy("/nonexistent/x.npy"); }), Contains("/nonexistent/x.npy: cannot open"));
    CHECK_THAT(error_of([] { io::read_npy(kData); }), Contains("is a folder"));
}

TEST_CASE("npy: bad magic", "[io]") {
    TempDir dir("npy_magic");
    const std::string path = dir.file("x1.npy");
    write_bytes(path, "PK\x03\x04 this is a zip");
    CHECK_THAT(error_of([&] { io::read_npy(path); }), Contains(path + ": not a .npy file"));
    write_bytes(path, "");
    CHECK_THAT(error_of([&] { io::read_npy(path); }), Contains(path + ": not a .npy file"));
}

TEST_CASE("npy: unsupported version", "[io]") {
    TempDir dir("npy_version");
    const std::string path = dir.file("x1.npy");
    write_bytes(path, npy_bytes(f4_dict("(1,)"), std::string(4, '\0'), 4, 0));
    CHECK_THAT(error_of([&] { io::read_npy(path); }), Contains(path) && Contains("unsupported .npy format version 4.0 (expected 1.0, 2.0 or 3.0)"));
    write_bytes(path, npy_bytes(f4_dict("(1,)"), std::string(4, '\0'), 1, 1));
    CHECK_THAT(error_of([&] { io::read_npy(path); }), Contains("version 1.1"));
}

TEST_CASE("npy: truncated header", "[io]") {
    TempDir dir("npy_trunc_header");
    const std::string path = dir.file("x1.npy");
    write_bytes(path, std::string("\x93NUMPY\x01", 7));
    CHECK_THAT(error_of([&] { io::read_npy(path); }), Contains(path) && Contains("expected at least 10 bytes, the file has 7"));
    write_bytes(path, npy_bytes(f4_dict("(1,)"), "").substr(0, 40));
    CHECK_THAT(error_of([&] { io::read_npy(path); }), Contains("truncated .npy header: expected 118 bytes of header, the file has 30"));
}

TEST_CASE("npy: truncated data", "[io]") {
    TempDir dir("npy_trunc_data");
    const std::string path = dir.file("x1.npy");
    write_bytes(path, npy_bytes(f4_dict("(2, 3)"), std::string(20, '\0')));
    CHECK_THAT(error_of([&] { io::read_npy(path); }), Contains(path) && Contains("truncated data: shape (2, 3) of '<f4' needs 24 bytes, the file has 20"));
}

TEST_CASE("npy: trailing bytes after the data", "[io]") {
    TempDir dir("npy_trailing");
    const std::string path = dir.file("x1.npy");
    write_bytes(path, npy_bytes(f4_dict("(2,)"), std::string(11, '\0')));
    CHECK_THAT(error_of([&] { io::read_npy(path); }), Contains(path) && Contains("3 trailing bytes after the data"));
}

TEST_CASE("npy: unsupported dtypes list the supported ones", "[io]") {
    for (const char* name : {"u8_2.npy", "bool_2.npy"}) {
        const std::string message = error_of([&] { io::read_npy(kData + name); });
        CHECK_THAT(message, Contains(kData + name) && Contains("unsupported dtype '|") && Contains("'<i4' (int32), '<i8' (int64), '<f4'"));
    }
    TempDir dir("npy_dtype");
    const std::string path = dir.file("x1.npy");
    write_bytes(path, npy_bytes("{'descr': '<i2', 'fortran_order': False, 'shape': (1,), }", "\0\0"));
    CHECK_THAT(error_of([&] { io::read_npy(path); }), Contains("unsupported dtype '<i2'"));
}

TEST_CASE("npy: big-endian is rejected", "[io]") {
    CHECK_THAT(error_of([] { io::read_npy(kData + "f32_be_2.npy"); }),
               Contains(kData + "f32_be_2.npy") && Contains("big-endian dtype '>f4' is not supported"));
}

TEST_CASE("npy: Fortran order is rejected", "[io]") {
    CHECK_THAT(error_of([] { io::read_npy(kData + "f32_fortran_2x2.npy"); }),
               Contains("Fortran-order arrays are not supported; save with np.ascontiguousarray"));
}

TEST_CASE("npy: a huge shape in a small file fails before allocating", "[io]") {
    TempDir dir("npy_huge");
    const std::string path = dir.file("x1.npy");
    write_bytes(path, npy_bytes(f4_dict("(1000000, 1000000)"), std::string(8, '\0')));
    CHECK_THAT(error_of([&] { io::read_npy(path); }), Contains("needs 4000000000000 bytes, the file has 8"));
    // A zero dim makes the data empty, but the element count must still not overflow.
    write_bytes(path, npy_bytes(f4_dict("(4000000000000000000, 4000000000000000000, 0)"), ""));
    CHECK_THAT(error_of([&] { io::read_npy(path); }), Contains("absurdly large"));
    write_bytes(path, npy_bytes(f4_dict("(99999999999999999999,)"), ""));
    CHECK_THAT(error_of([&] { io::read_npy(path); }), Contains("dimension too large"));
}

TEST_CASE("npy: malformed header dicts", "[io]") {
    TempDir dir("npy_header");
    const std::string path = dir.file("x1.npy");
    const std::pair<const char*, const char*> cases[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1, }", "unexpected key 'extra'"},
        {"{'descr': '<f4', 'shape': (1,), }", "missing 'fortran_order'"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", "key 'descr' appears twice"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1), }", "'shape' must be a tuple"},
        {"{'descr': '<f4', 'fortran_order': false, 'shape': (1,), }", "must be True or False"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", "structured dtypes are not supported"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", "non-negative integer"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } x", "unexpected text after"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", "expected ',' or '}'"},
    };
    for (const auto& [dict, expected] : cases) {
        write_bytes(path, npy_bytes(dict, std::string(4, '\0')));
        CHECK_THAT(error_of([&] { io::read_npy(path); }), Contains(path + ": malformed .npy header") && Contains(expected));
    }
}

// ---------------------------------------------------------------- safetensors

TEST_CASE("safetensors: round trip with metadata, aligned and contiguous in name order", "[io]") {
    TempDir dir("st_round_trip");
    const std::string path = dir.file("checkpoint.safetensors");
    io::Checkpoint ckpt;
    ckpt.tensors["left_lstm.weight_ih"] = Tensor::from_floats({3, 2}, std::vector<float>{1, 2, 3, 4, 5, 6});
    ckpt.tensors["a_ids"] = Tensor({3}, DType::i32);
    ckpt.tensors["a_ids"].i32()[2] = -5;
    ckpt.tensors["b_count"] = Tensor({}, DType::i64);
    ckpt.tensors["b_count"].i64()[0] = std::int64_t{1} << 50;
    ckpt.tensors["c_empty"] = Tensor({0, 4}, DType::f32);
    ckpt.metadata = {{"format", "graphrun"}, {"epoch", "3"}};
    io::write_safetensors(path, ckpt);

    const io::Checkpoint back = io::read_safetensors(path);
    CHECK(back.metadata == ckpt.metadata);
    REQUIRE(back.tensors.size() == ckpt.tensors.size());
    for (const auto& [name, t] : ckpt.tensors) {
        INFO(name);
        const Tensor& b = back.tensors.at(name);
        CHECK(b.type() == t.type());
        CHECK(std::memcmp(b.raw(), t.raw(), t.bytes()) == 0);
    }

    const std::string bytes = read_bytes(path);
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
    CHECK((8 + n) % 8 == 0);
    const auto header = nlohmann::json::parse(bytes.substr(8, n));
    CHECK(header["a_ids"]["data_offsets"] == nlohmann::json{0, 12});
    CHECK(header["b_count"]["data_offsets"] == nlohmann::json{12, 20});
    CHECK(header["b_count"]["dtype"] == "I64");
    CHECK(header["c_empty"]["data_offsets"] == nlohmann::json{20, 20});
    CHECK(header["left_lstm.weight_ih"] == nlohmann::json::parse(R"({"dtype": "F32", "shape": [3, 2], "data_offsets": [20, 44]})"));
    CHECK(bytes.size() == 8 + n + 44);

    io::write_safetensors(path, io::Checkpoint{});  // an empty checkpoint is valid too
    CHECK(io::read_safetensors(path).tensors.empty());
}

TEST_CASE("safetensors: a file shorter than 8 bytes", "[io]") {
    TempDir dir("st_short");
    const std::string path = dir.file("checkpoint.safetensors");
    write_bytes(path, "abc");
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains(path + ": the file is 3 bytes, too short"));
}

TEST_CASE("safetensors: header length larger than the file", "[io]") {
    TempDir dir("st_length");
    const std::string path = dir.file("checkpoint.safetensors");
    write_bytes(path, st_bytes("{}", 0, 1234567));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains(path + ": header length 1234567 is larger than the file (10 bytes)"));
    write_bytes(path, st_bytes("{}", 0, UINT64_MAX - 1));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains("is larger than the file"));
}

TEST_CASE("safetensors: header not JSON, not an object, or with a key twice", "[io]") {
    TempDir dir("st_json");
    const std::string path = dir.file("checkpoint.safetensors");
    write_bytes(path, st_bytes("{\"a\": ", 0));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains(path + ": the safetensors header is not valid JSON"));
    write_bytes(path, st_bytes("[1, 2]  ", 0));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains("not a JSON object, got array"));
    write_bytes(path, st_bytes(R"({"w": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}, "w": {}})", 4));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains("the key 'w' twice"));
}

TEST_CASE("safetensors: an entry without dtype, shape or data_offsets", "[io]") {
    TempDir dir("st_missing");
    const std::string path = dir.file("checkpoint.safetensors");
    write_bytes(path, st_bytes(R"({"left_lstm.bias": {"dtype": "F32", "data_offsets": [0, 4]}})", 4));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains(path + ": tensor 'left_lstm.bias': missing \"shape\""));
    write_bytes(path, st_bytes(R"({"w": 3})", 0));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains("tensor 'w': expected an object"));
}

TEST_CASE("safetensors: unsupported dtype", "[io]") {
    TempDir dir("st_dtype");
    const std::string path = dir.file("checkpoint.safetensors");
    write_bytes(path, st_bytes(R"({"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}})", 4));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains("tensor 'w': unsupported dtype \"F16\" (supported: \"F32\", \"I32\", \"I64\")"));
}

TEST_CASE("safetensors: negative or absurd dimensions", "[io]") {
    TempDir dir("st_dims");
    const std::string path = dir.file("checkpoint.safetensors");
    write_bytes(path, st_bytes(R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains("tensor 'w': dimension -2 in shape [-2] is not a non-negative integer"));
    write_bytes(path, st_bytes(R"({"w": {"dtype": "F32", "shape": [1000000000000, 1000000000000, 0], "data_offsets": [0, 0]}})", 0));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains("tensor 'w': shape") && Contains("absurdly large"));
    write_bytes(path, st_bytes(R"({"w": {"dtype": "F32", "shape": [1000000, 1000000], "data_offsets": [0, 8]}})", 8));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains("hold 8 bytes, but shape (1000000, 1000000) of F32 needs 4000000000000"));
}

TEST_CASE("safetensors: offsets out of range", "[io]") {
    TempDir dir("st_range");
    const std::string path = dir.file("checkpoint.safetensors");
    write_bytes(path, st_bytes(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains("tensor 'w': data_offsets [0, 16] are out of range: the data section has 8 bytes"));
    write_bytes(path, st_bytes(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})", 8));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains("end before they begin"));
}

TEST_CASE("safetensors: overlapping offsets", "[io]") {
    TempDir dir("st_overlap");
    const std::string path = dir.file("checkpoint.safetensors");
    write_bytes(path, st_bytes(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                  "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})", 24));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains(path + ": tensor 'b' [8, 24) overlaps 'a' [0, 16)"));
}

TEST_CASE("safetensors: offsets that do not match the shape", "[io]") {
    TempDir dir("st_size");
    const std::string path = dir.file("checkpoint.safetensors");
    write_bytes(path, st_bytes(R"({"w": {"dtype": "I64", "shape": [2, 3], "data_offsets": [0, 24]}})", 24));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains("tensor 'w': data_offsets [0, 24] hold 24 bytes, but shape (2, 3) of I64 needs 48"));
}

TEST_CASE("safetensors: gaps and trailing bytes in the data section", "[io]") {
    TempDir dir("st_gaps");
    const std::string path = dir.file("checkpoint.safetensors");
    write_bytes(path, st_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                  "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})", 12));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains("tensor 'b' [8, 12): 4 unused bytes between it and 'a' [0, 4)"));
    write_bytes(path, st_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 6));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains("2 trailing bytes after the last tensor 'a'"));
}

TEST_CASE("safetensors: metadata values must be strings", "[io]") {
    TempDir dir("st_metadata");
    const std::string path = dir.file("checkpoint.safetensors");
    write_bytes(path, st_bytes(R"({"__metadata__": {"format": "graphrun", "epoch": 3}})", 0));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains(path + ": \"__metadata__\" value for 'epoch' must be a string, got 3"));
    write_bytes(path, st_bytes(R"({"__metadata__": ["format"]})", 0));
    CHECK_THAT(error_of([&] { io::read_safetensors(path); }), Contains("must be an object of strings"));
}

// ---------------------------------------------------------------- atomic writes

TEST_CASE("atomic write: a missing or unusable folder throws and leaves no temporary file", "[io]") {
    TempDir dir("atomic_fail");
    const std::string missing = dir.file("no_such_folder/checkpoint.safetensors");
    CHECK_THAT(error_of([&] { io::write_safetensors(missing, io::Checkpoint{}); }),
               Contains(missing + ": cannot create the temporary file") && Contains("No such file or directory"));
    CHECK_THAT(error_of([&] { io::write_npy(missing, Tensor({1})); }), Contains(missing));
    // A file where the folder should be.
    write_bytes(dir.file("a_file"), "x");
    const std::string under_file = dir.file("a_file/x.npy");
    CHECK_THAT(error_of([&] { io::write_npy(under_file, Tensor({1})); }), Contains(under_file) && Contains("Not a directory"));
    if (::geteuid() != 0) {  // root writes anywhere, so this part only means something for other users
        fs::create_directory(dir.path / "read_only");
        fs::permissions(dir.path / "read_only", fs::perms::owner_read | fs::perms::owner_exec);
        const std::string denied = dir.file("read_only/x.npy");
        CHECK_THAT(error_of([&] { io::write_npy(denied, Tensor({1})); }), Contains(denied) && Contains("Permission denied"));
        fs::permissions(dir.path / "read_only", fs::perms::owner_all);
        CHECK(leftover_temp_files(dir.path / "read_only").empty());
    }
    CHECK(leftover_temp_files(dir.path).empty());
}

TEST_CASE("atomic write: an existing file is replaced whole, or kept when writing fails", "[io]") {
    TempDir dir("atomic_replace");
    const std::string path = dir.file("out.bin");
    const std::string long_text(10000, 'a'), short_text = "short";
    io::write_file_atomically(path, std::as_bytes(std::span(long_text)));
    CHECK(read_bytes(path) == long_text);
    io::write_file_atomically(path, std::as_bytes(std::span(short_text)));
    CHECK(read_bytes(path) == short_text);

    // A writer that fails halfway: the old file stays as it was, the temporary file goes.
    CHECK_THROWS_WITH(io::write_file_atomically(path, [&](const io::ByteSink& write) {
                          write(std::as_bytes(std::span(long_text)));
                          throw Error("disk on fire");
                      }),
                      "disk on fire");
    CHECK(read_bytes(path) == short_text);
    CHECK(leftover_temp_files(dir.path).empty());

    // The writers replace a file too (a shorter .npy over a longer one).
    io::write_npy(path, Tensor({100}));
    io::write_npy(path, Tensor({2}, DType::i32));
    CHECK(io::read_npy(path).type() == TensorType{DType::i32, {2}});
}
