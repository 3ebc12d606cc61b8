#include "ops/builtin.hpp"
namespace graphrun {
void register_lstm_cell(OpRegistry&) {}
}  // namespace graphrun
