// graphrun's public API in one include: #include <graphrun/graphrun.hpp>.
// Model (engine/api/model.hpp) loads, runs, trains and saves a graph; Graph, the
// ops and the composites build one in C++; Tensor holds data; ThreadBudget
// caps the threads. docs/library.md says how they fit together.
#pragma once

#include "engine/core/error.hpp"
#include "engine/core/executor.hpp"
#include "engine/core/graph.hpp"
#include "engine/api/model.hpp"
#include "engine/train/optimizer.hpp"
#include "engine/core/tensor.hpp"
#include "engine/core/threads.hpp"
#include "engine/core/version.hpp"
#include "ops/builtin.hpp"
#include "ops/composites.hpp"
