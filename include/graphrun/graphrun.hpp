// graphrun's public API in one include: #include <graphrun/graphrun.hpp>.
// Model loads a graph from a YAML spec, runs it, trains it and saves it;
// Tensor holds data; Error is what every call throws; ThreadBudget caps the
// threads. Nothing here names oneDNN, oneTBB or yaml-cpp: a program that links
// the shared library needs none of them to build. docs/library.md has the rest.
#pragma once

#include "graphrun/error.hpp"
#include "graphrun/model.hpp"
#include "graphrun/tensor.hpp"
#include "graphrun/thread_budget.hpp"
#include "graphrun/training.hpp"
#include "graphrun/version.hpp"
