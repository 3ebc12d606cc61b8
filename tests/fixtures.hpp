// Reference tensors that PyTorch produced (tests/fixtures/make_fixtures.py),
// committed as JSON so neither the build nor the tests need PyTorch.
#pragma once

#include <map>
#include <string>

#include "graphrun/tensor.hpp"

namespace graphrun::testing {

// tests/fixtures/<name>.json: {"tensors": {"x": {"dtype": "f32", "shape": [..], "data": [..]}, ...}}
std::map<std::string, Tensor> load_fixture(const std::string& name);

// Checks max|actual - expected| <= rel * max|expected| (the error relative to
// the tensor's scale, so elements near zero do not make it meaningless), and
// that the shapes are equal. Reports through Catch2 with `what` in the message.
void check_close(const std::string& what, const Tensor& actual, const Tensor& expected, double rel = 1e-5);

}  // namespace graphrun::testing
