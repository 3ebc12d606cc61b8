#include "tests/fixtures.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "graphrun/error.hpp"

namespace graphrun::testing {

std::map<std::string, Tensor> load_fixture(const std::string& name) {
    const std::string path = std::string(GRAPHRUN_FIXTURES_DIR) + "/" + name + ".json";
    std::ifstream in(path);
    if (!in) throw Error("cannot open fixture " + path);
    const auto doc = nlohmann::json::parse(in);
    std::map<std::string, Tensor> out;
    for (const auto& [key, entry] : doc.at("tensors").items()) {
        const Shape shape = entry.at("shape").get<Shape>();
        const std::string dtype = entry.at("dtype").get<std::string>();
        const auto& data = entry.at("data");
        Tensor t(shape, dtype == "f32" ? DType::f32 : dtype == "i32" ? DType::i32 : DType::i64);
        if (static_cast<std::int64_t>(data.size()) != t.numel()) throw Error(fmt::format("fixture {}: '{}' has the wrong count", path, key));
        for (std::int64_t j = 0; j < t.numel(); ++j) {
            const auto& v = data[static_cast<std::size_t>(j)];
            if (t.dtype() == DType::f32) t.f32()[j] = v.get<float>();
            else if (t.dtype() == DType::i32) t.i32()[j] = v.get<std::int32_t>();
            else t.i64()[j] = v.get<std::int64_t>();
        }
        out.emplace(key, std::move(t));
    }
    return out;
}

void check_close(const std::string& what, const Tensor& actual, const Tensor& expected, double rel) {
    INFO(what);
    REQUIRE(to_string(actual.shape()) == to_string(expected.shape()));
    double scale = 0, worst = 0;
    std::int64_t worst_at = 0;
    for (std::int64_t j = 0; j < expected.numel(); ++j) {
        scale = std::max(scale, static_cast<double>(std::abs(expected.f32()[j])));
        const double err = std::abs(static_cast<double>(actual.f32()[j]) - expected.f32()[j]);
        if (!std::isfinite(err)) {  // NaN or Inf fails outright
            worst = HUGE_VAL;
            worst_at = j;
            break;
        }
        if (err > worst) {
            worst = err;
            worst_at = j;
        }
    }
    INFO(fmt::format("worst at [{}]: got {:.8g}, expected {:.8g}; scale {:.4g}", worst_at, actual.f32()[worst_at],
                     expected.f32()[worst_at], scale));
    // GRAPHRUN_REPORT_ERRORS=1 prints every comparison's error, for notes and reviews.
    if (std::getenv("GRAPHRUN_REPORT_ERRORS"))
        fmt::print("{}: max error / max |expected| = {:.2g}\n", what, worst / std::max(scale, 1e-30));
    CHECK(worst <= rel * std::max(scale, 1e-30));
}

}  // namespace graphrun::testing
