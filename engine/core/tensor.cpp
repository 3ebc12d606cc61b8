#include "graphrun/tensor.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include <fmt/format.h>

#include "graphrun/error.hpp"

namespace graphrun {

std::size_t dtype_size(DType dtype) {
    switch (dtype) {
        case DType::f32: return 4;
        case DType::i32: return 4;
        case DType::i64: return 8;
    }
    return 0;
}

const char* dtype_name(DType dtype) {
    switch (dtype) {
        case DType::f32: return "f32";
        case DType::i32: return "i32";
        case DType::i64: return "i64";
    }
    return "?";
}

std::int64_t element_count(const Shape& shape) {
    std::int64_t count = 1;
    for (auto d : shape) count *= d;
    return count;
}

std::string to_string(const Shape& shape) {
    std::string out = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i) out += ", ";
        out += shape[i] == kAnyDim ? std::string("N") : std::to_string(shape[i]);
    }
    if (shape.size() == 1) out += ",";
    return out + ")";
}

std::string to_string(const TensorType& type) {
    return std::string(dtype_name(type.dtype)) + to_string(type.shape);
}

Tensor Tensor::borrow(void* data, TensorType type) {
    for (auto d : type.shape)
        if (d < 0) throw Error(fmt::format("cannot borrow memory as a tensor of shape {}: every dimension must be known", to_string(type.shape)));
    if (!data && element_count(type.shape) > 0) throw Error("cannot borrow a null pointer as a tensor");
    Tensor t;
    t.type_ = std::move(type);
    t.count_ = element_count(t.type_.shape);
    t.allocated_ = true;
    t.storage_ = std::shared_ptr<std::byte>(static_cast<std::byte*>(data), [](std::byte*) {});  // the caller owns it
    return t;
}

Tensor Tensor::view(TensorType type) const {
    Tensor t;
    t.type_ = std::move(type);
    t.count_ = element_count(t.type_.shape);
    if (t.count_ < 0 || t.bytes() > std::max<std::size_t>(64, (bytes() + 63) / 64 * 64) || !allocated_)
        throw Error(fmt::format("cannot view {} bytes as {}", bytes(), to_string(t.type_)));
    t.allocated_ = true;
    t.storage_ = storage_;
    return t;
}

Tensor::Tensor(TensorType type) : type_(std::move(type)) {
    for (auto d : type_.shape)
        if (d < 0) throw Error(fmt::format("cannot allocate a tensor of shape {}: every dimension must be known", to_string(type_.shape)));
    count_ = element_count(type_.shape);
    allocated_ = true;
    // Round up so the storage is a whole number of cache lines; never zero bytes.
    std::size_t size = std::max<std::size_t>(64, (bytes() + 63) / 64 * 64);
    void* p = std::aligned_alloc(64, size);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, size);
    storage_ = std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
}

Tensor Tensor::from_floats(Shape shape, std::span<const float> values) {
    Tensor t(std::move(shape));
    if (static_cast<std::int64_t>(values.size()) != t.numel())
        throw Error(fmt::format("tensor of shape {} needs {} values, got {}", to_string(t.shape()), t.numel(), values.size()));
    std::copy(values.begin(), values.end(), t.f32());
    return t;
}

namespace {
void expect_dtype(const TensorType& type, DType want) {
    if (type.dtype != want)
        throw Error(fmt::format("tensor {} read as {}", to_string(type), dtype_name(want)));
}
}  // namespace

float* Tensor::f32() { expect_dtype(type_, DType::f32); return reinterpret_cast<float*>(storage_.get()); }
const float* Tensor::f32() const { expect_dtype(type_, DType::f32); return reinterpret_cast<const float*>(storage_.get()); }
std::int32_t* Tensor::i32() { expect_dtype(type_, DType::i32); return reinterpret_cast<std::int32_t*>(storage_.get()); }
const std::int32_t* Tensor::i32() const { expect_dtype(type_, DType::i32); return reinterpret_cast<const std::int32_t*>(storage_.get()); }
std::int64_t* Tensor::i64() { expect_dtype(type_, DType::i64); return reinterpret_cast<std::int64_t*>(storage_.get()); }
const std::int64_t* Tensor::i64() const { expect_dtype(type_, DType::i64); return reinterpret_cast<const std::int64_t*>(storage_.get()); }

void Tensor::zero() {
    if (storage_) std::memset(storage_.get(), 0, bytes());
}

void Tensor::fill(float value) { std::fill_n(f32(), count_, value); }

Tensor Tensor::clone() const {
    if (!allocated_) return {};
    Tensor copy(type_);
    if (bytes()) std::memcpy(copy.raw(), raw(), bytes());
    return copy;
}

}  // namespace graphrun
