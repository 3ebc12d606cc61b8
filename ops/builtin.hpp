// The ops graphrun ships, and the composites built from them.
#pragma once

#include "engine/core/op.hpp"

namespace graphrun {

// The registry of every built-in op, filled once on first use.
const OpRegistry& builtin_ops();

// Each op file defines one of these; builtin.cpp calls them in a plain list
// (self-registering statics would vanish when linked from a static library).
void register_constant(OpRegistry&);
void register_binary(OpRegistry&);     // add, sub, mul
void register_unary(OpRegistry&);      // square, relu, sigmoid, tanh, sqrt, abs, exp
void register_reduce(OpRegistry&);     // sum, mean
void register_sum_last(OpRegistry&);
void register_max(OpRegistry&);
void register_cosine(OpRegistry&);
void register_softmax(OpRegistry&);
void register_log_softmax(OpRegistry&);
void register_cross_entropy(OpRegistry&);
void register_matmul(OpRegistry&);
void register_embedding(OpRegistry&);
void register_lstm(OpRegistry&);
void register_lstm_cell(OpRegistry&);
void register_gru(OpRegistry&);
void register_sequence_lengths(OpRegistry&);
void register_cosine_matrix(OpRegistry&);
void register_transpose(OpRegistry&);
void register_batch_index(OpRegistry&);
void register_triplet(OpRegistry&);
void register_reverse_sequence(OpRegistry&);
void register_concat(OpRegistry&);
void register_pool(OpRegistry&);        // max_pool, mean_pool
void register_dropout(OpRegistry&);
void register_layer_norm(OpRegistry&);

}  // namespace graphrun
