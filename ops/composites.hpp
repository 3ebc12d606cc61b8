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
#include <functional>
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
// `param_suffix` is added to each parameter's name (PyTorch's "_reverse" for
// the backward direction) and `node_name`, when given, names the lstm node.
// `impl`: graphrun (ops/lstm_fused.hpp) or dnnl (oneDNN's LSTM primitive); "": the op's default.
ValueRef lstm_layer(Graph& graph, const std::string& name, ValueRef x, std::int64_t units, bool return_sequences = false,
                    std::optional<ValueRef> lengths = std::nullopt, const std::string& share_from = "", const std::string& precision = "f32",
                    int biases = 1, const std::string& param_suffix = "", const std::string& node_name = "", const std::string& impl = "");

// A recurrent layer in both directions, as PyTorch's bidirectional=True:
// `direction(node_name, param_suffix, input)` builds one direction; it runs
// on x (node <name>/forward, PyTorch's parameter names) and on each row
// reversed within its length (node <name>/backward, parameters with the
// suffix "_reverse"), so the backward direction starts at a row's last real
// step, never in its padding. With return_sequences its output is reversed
// back, so step t holds both directions' state at t. The two are joined by
// `merge`: concat (N, [T,] 2H), PyTorch's and Keras's default, or sum (N, [T,] H).
using RecurrentDirection = std::function<ValueRef(const std::string& node_name, const std::string& param_suffix, ValueRef input)>;
ValueRef bidirectional_layer(Graph& graph, const std::string& kind, const std::string& name, ValueRef x, std::optional<ValueRef> lengths,
                             bool return_sequences, const std::string& merge, const RecurrentDirection& direction);

// nn.GRU(E, units, batch_first=True): (N, T, E) -> final hidden state (N, units),
// or every hidden state (N, T, units) with return_sequences; `lengths` as for
// lstm_layer. Parameters PyTorch's: <name>.weight_ih (3*units, E),
// <name>.weight_hh (3*units, units), <name>.bias_ih (3*units), <name>.bias_hh
// (3*units), gate order r, z, n. One `gru` node named <name> (or
// `node_name`); `param_suffix` as for lstm_layer.
ValueRef gru_layer(Graph& graph, const std::string& name, ValueRef x, std::int64_t units, bool return_sequences = false,
                   std::optional<ValueRef> lengths = std::nullopt, const std::string& share_from = "", const std::string& param_suffix = "",
                   const std::string& node_name = "");

// nn.Linear(D, units): (N, D) -> (N, units). Parameters: <name>.weight (units, D), <name>.bias (units).
// One `matmul` node named <name>, part of composite `dense`.
ValueRef dense_layer(Graph& graph, const std::string& name, ValueRef x, std::int64_t units, const std::string& share_from = "");

// nn.LayerNorm(D): x (..., D) -> (..., D). Parameters: <name>.weight (D) = 1, <name>.bias (D) = 0.
ValueRef layer_norm_layer(Graph& graph, const std::string& name, ValueRef x, double eps = 1e-5, const std::string& share_from = "");

// Distances between the rows of a (N, D) and b (N, D) -> (N), 0 for
// identical rows; what contrastive_loss takes, and what a model whose
// similarity is a distance is searched by.
//   euclidean: F.pairwise_distance(a, b, p=2, eps): |a - b + eps|_2 (eps keeps
//              the root's gradient finite for identical rows)
//   manhattan: |a - b|_1 (exp(-manhattan) is the MaLSTM similarity)
ValueRef euclidean_distance(Graph& graph, const std::string& name, ValueRef a, ValueRef b, double eps = 1e-6);
ValueRef manhattan_distance(Graph& graph, const std::string& name, ValueRef a, ValueRef b);

// mean(y * d^2 + (1 - y) * max(margin - d, 0)^2) over the batch; y = 1 for a
// similar pair, d a distance (not a similarity). Parts are named <name>/...;
// the scalar loss is the node <name>.
ValueRef contrastive_loss(Graph& graph, const std::string& name, ValueRef distance, ValueRef label, double margin = 1.0);

// In-batch negatives (sentence-transformers' MultipleNegativesRankingLoss,
// CLIP's loss when symmetric): left (N, D) and right (N, D) embeddings of N
// similar pairs; row i's positive is right i and every other right of the
// batch is a negative. loss = cross_entropy(cos(left_i, right_j) / temperature, i),
// with `symmetric` averaged with the same for right against left.
ValueRef in_batch_softmax(Graph& graph, const std::string& name, ValueRef left, ValueRef right, double temperature = 0.05,
                          bool symmetric = false);

// The triplet margin loss on the same in-batch scores: each left text against
// its own right text and one other right text of the batch, mined as `mining`
// (ops/triplet.cpp): mean max(0, cos(l_i, r_j*) - cos(l_i, r_i) + margin).
ValueRef triplet_loss(Graph& graph, const std::string& name, ValueRef left, ValueRef right, double margin = 0.2,
                      const std::string& mining = "semi_hard");

}  // namespace graphrun
