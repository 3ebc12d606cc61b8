#include "ops/builtin.hpp"
namespace graphrun {
void register_lstm(OpRegistry&) {}
}  // namespace graphrun
