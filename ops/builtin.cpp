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
        register_sequence_lengths(r);
        return r;
    }();
    return registry;
}

}  // namespace graphrun
