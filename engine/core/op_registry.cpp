#include <algorithm>

#include <fmt/format.h>

#include "engine/core/op.hpp"

namespace graphrun {

void OpRegistry::add(OpDef def) {
    if (find(def.name)) throw Error(fmt::format("op '{}' is registered twice", def.name));
    defs_.push_back(std::move(def));
}

const OpDef* OpRegistry::find(const std::string& name) const {
    for (const auto& def : defs_)
        if (def.name == name) return &def;
    return nullptr;
}

std::vector<std::string> OpRegistry::names() const {
    std::vector<std::string> out;
    for (const auto& def : defs_) out.push_back(def.name);
    std::sort(out.begin(), out.end());
    return out;
}

bool shapes_agree(const Shape& a, const Shape& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (!dims_agree(a[i], b[i])) return false;
    return true;
}

void expect_rank(const char* what, const TensorType& t, std::size_t rank) {
    if (t.shape.size() != rank)
        throw ShapeError(fmt::format("{} must have rank {}, got {}", what, rank, to_string(t.shape)));
}

void expect_dtype(const char* what, const TensorType& t, DType dtype) {
    if (t.dtype != dtype)
        throw ShapeError(fmt::format("{} must be {}, got {}", what, dtype_name(dtype), to_string(t)));
}

}  // namespace graphrun
