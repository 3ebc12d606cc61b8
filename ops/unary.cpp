#include "ops/builtin.hpp"
namespace graphrun {
void register_unary(OpRegistry&) {}
}  // namespace graphrun
