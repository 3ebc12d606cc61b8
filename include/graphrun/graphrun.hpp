// graphrun's public API in one include: #include <graphrun/graphrun.hpp>.
// Model (engine/model.hpp) loads, runs, trains and saves a graph; Graph, the
// ops and the composites build one in C++; Tensor holds data; ThreadBudget
// caps the threads. docs/library.md says how they fit together.
#pragma once

#include "engine/error.hpp"
#include "engine/executor.hpp"
#include "engine/graph.hpp"
#include "engine/model.hpp"
#include "engine/optimizer.hpp"
#include "engine/tensor.hpp"
#include "engine/threads.hpp"
#include "engine/version.hpp"
#include "ops/builtin.hpp"
#include "ops/composites.hpp"
