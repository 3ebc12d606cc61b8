// Layers and losses built from the ops, the way a Keras or PyTorch user names
// them. Each creates its parameters as graph parameters named
// "<name>.<param>" with PyTorch's layouts, so weights move between the two
// unchanged, and marks the nodes it adds as parts of the composite.
//
// `share_from` names another layer of the same kind whose parameters this one
// uses instead of making its own (Siamese branches with shared weights); the
// shapes must agree. The gradient of a shared parameter is the sum over its uses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/core/graph.hpp"

namespace graphrun {

// nn.Embedding(vocab, dim): ids (N, T) int -> (N, T, dim). Parameter: <name>.weight (vocab, dim).
ValueRef embedding_layer(Graph& graph, const std::string& name, ValueRef ids, std::int64_t vocab, std::int64_t dim,
                         const std::string& share_from = "");

// nn.LSTM(E, units, batch_first=True): (N, T, E) -> final hidden state (N, units),
// or every hidden state (N, T, units) with return_sequences.
// With `lengths` (N) int, a sequence's final state is the one at its last real
// step, lengths[n] - 1, so padding after it changes nothing.
// Parameters: <name>.weight_ih (4*units, E), <name>.weight_hh (4*units, units),
// and with biases = 1 <name>.bias (4*units), Keras's one bias vector; with
// biases = 2 PyTorch's <name>.bias_ih and <name>.bias_hh, summed by a node
// <name>/bias. Gate order i, f, g, o.
ValueRef lstm_layer(Graph& graph, const std::string& name, ValueRef x, std::int64_t units, bool return_sequences = false,
                    std::optional<ValueRef> lengths = std::nullopt, const std::string& share_from = "", const std::string& precision = "f32",
                    int biases = 1);

// nn.Linear(D, units): (N, D) -> (N, units). Parameters: <name>.weight (units, D), <name>.bias (units).
// One `matmul` node named <name>, part of composite `dense`.
ValueRef dense_layer(Graph& graph, const std::string& name, ValueRef x, std::int64_t units, const std::string& share_from = "");

// mean(y * d^2 + (1 - y) * max(margin - d, 0)^2) over the batch; y = 1 for a
// similar pair, d a distance (not a similarity). Parts are named <name>/...;
// the scalar loss is the node <name>.
ValueRef contrastive_loss(Graph& graph, const std::string& name, ValueRef distance, ValueRef label, double margin = 1.0);

}  // namespace graphrun
