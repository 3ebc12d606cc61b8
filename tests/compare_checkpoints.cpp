// Test helper: compares two safetensors checkpoints tensor by tensor.
// usage: compare_checkpoints A B TOLERANCE [PREFIX_TO_SKIP]
// Prints the worst error relative to each tensor's scale (max |a|) and exits 1
// when any exceeds TOLERANCE or the two hold different tensors.
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "graphrun/error.hpp"
#include "engine/io/safetensors.hpp"

int main(int argc, char** argv) {
    if (argc != 4) {
        fmt::print(stderr, "usage: compare_checkpoints A B TOLERANCE\n");
        return 2;
    }
    try {
        const auto a = graphrun::io::read_safetensors(argv[1]), b = graphrun::io::read_safetensors(argv[2]);
        const double tolerance = std::atof(argv[3]);
        double worst = 0;
        std::string worst_name;
        for (const auto& [name, ta] : a.tensors) {
            const auto it = b.tensors.find(name);
            if (it == b.tensors.end() || it->second.type() != ta.type()) {
                fmt::print("{} is missing or of another type in {}\n", name, argv[2]);
                return 1;
            }
            if (ta.dtype() != graphrun::DType::f32) continue;
            double scale = 0, diff = 0;
            for (std::int64_t j = 0; j < ta.numel(); ++j) {
                scale = std::max(scale, static_cast<double>(std::abs(ta.f32()[j])));
                diff = std::max(diff, static_cast<double>(std::abs(ta.f32()[j] - it->second.f32()[j])));
            }
            const double relative = scale > 0 ? diff / scale : diff;
            if (relative >= worst) worst = relative, worst_name = name;
        }
        if (a.tensors.size() != b.tensors.size()) {
            fmt::print("the checkpoints hold {} and {} tensors\n", a.tensors.size(), b.tensors.size());
            return 1;
        }
        fmt::print("worst relative error {:.3g} ({}), tolerance {:.3g}\n", worst, worst_name, tolerance);
        return worst <= tolerance ? 0 : 1;
    } catch (const graphrun::Error& e) {
        fmt::print(stderr, "compare_checkpoints: {}\n", e.what());
        return 2;
    }
}
