// A graph as a JSON document (format "graphrun-graph", docs/graph-dump.md):
// every node with its op, inputs, attributes, output types, parameter count and
// composite, and optionally each node's time from a profiled run. Read by
// tools/graphviz_export.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/core/executor.hpp"

namespace graphrun {

inline constexpr int kGraphDumpVersion = 1;

struct GraphDumpInfo {
    std::string name;                  // the spec's name
    std::string spec;                  // where it came from (a path), or ""
    std::vector<std::string> outputs;  // node names
    std::optional<std::string> loss;
    // With a profile (Executor::profile() after set_profiling(true)), each op
    // node carries its times; `steps` is how many training steps they cover.
    const std::vector<Executor::NodeTime>* profile = nullptr;
    std::int64_t steps = 0;
};

// The document, pretty-printed.
std::string graph_to_json(const Graph& graph, const GraphDumpInfo& info);

}  // namespace graphrun
