#include "ops/builtin.hpp"

namespace graphrun {

const OpRegistry& builtin_ops() {
    static const OpRegistry registry = [] {
        OpRegistry r;
        register_constant(r);
        register_binary(r);
        register_unary(r);
        register_reduce(r);
        register_max(r);
        register_cosine(r);
        register_softmax(r);
        register_log_softmax(r);
        register_cross_entropy(r);
        register_matmul(r);
        register_embedding(r);
        register_lstm(r);
        register_lstm_cell(r);
        register_gru(r);
        register_sequence_lengths(r);
        register_cosine_matrix(r);
        register_transpose(r);
        register_batch_index(r);
        register_triplet(r);
        register_reverse_sequence(r);
        register_concat(r);
        register_pool(r);
        register_dropout(r);
        register_layer_norm(r);
        register_sum_last(r);
        return r;
    }();
    return registry;
}

}  // namespace graphrun
