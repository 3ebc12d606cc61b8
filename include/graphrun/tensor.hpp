// Dense row-major tensors. float32 for values and gradients, int32/int64 for
// token ids. The batch is always the first dimension. A dimension of -1 in a
// TensorType means "not known until data arrives" (the batch, at build time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace graphrun {

enum class DType : std::uint8_t { f32, i32, i64 };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);

using Shape = std::vector<std::int64_t>;

// The dimension value that stands for "any size", used for the batch at build time.
inline constexpr std::int64_t kAnyDim = -1;

std::int64_t element_count(const Shape& shape);
std::string to_string(const Shape& shape);  // "(32, 52, 64)"; -1 prints as N

struct TensorType {
    DType dtype = DType::f32;
    Shape shape;

    bool operator==(const TensorType&) const = default;
};

std::string to_string(const TensorType& type);  // "f32(32, 52)"

class Tensor {
public:
    Tensor() = default;
    // Zero-filled, 64-byte aligned. Every dimension must be known (>= 0).
    explicit Tensor(TensorType type);
    Tensor(Shape shape, DType dtype = DType::f32) : Tensor(TensorType{dtype, std::move(shape)}) {}
    static Tensor from_floats(Shape shape, std::span<const float> values);
    // The caller's memory as a tensor, not copied: `data` must hold the
    // type's bytes (row-major) and outlive every use of the tensor.
    static Tensor borrow(void* data, TensorType type);

    bool defined() const { return allocated_; }
    const TensorType& type() const { return type_; }
    const Shape& shape() const { return type_.shape; }
    DType dtype() const { return type_.dtype; }
    std::int64_t dim(std::size_t axis) const { return type_.shape.at(axis); }
    std::size_t rank() const { return type_.shape.size(); }
    std::int64_t numel() const { return count_; }
    std::size_t bytes() const { return static_cast<std::size_t>(count_) * dtype_size(type_.dtype); }

    void* raw() { return storage_.get(); }
    const void* raw() const { return storage_.get(); }
    // Typed views; they check the dtype so a token tensor is never read as floats.
    float* f32();
    const float* f32() const;
    std::int32_t* i32();
    const std::int32_t* i32() const;
    std::int64_t* i64();
    const std::int64_t* i64() const;
    std::span<float> floats() { return {f32(), static_cast<std::size_t>(count_)}; }
    std::span<const float> floats() const { return {f32(), static_cast<std::size_t>(count_)}; }

    void zero();
    void fill(float value);
    // A deep copy: Tensor itself copies shallowly (shared storage), like torch.Tensor.
    Tensor clone() const;
    // The first bytes of this tensor's storage seen as `type`: shared, and kept
    // alive by the view (an Error when the type needs more bytes than there are).
    Tensor view(TensorType type) const;

private:
    TensorType type_;
    std::int64_t count_ = 0;
    bool allocated_ = false;
    std::shared_ptr<std::byte> storage_;
};

}  // namespace graphrun
