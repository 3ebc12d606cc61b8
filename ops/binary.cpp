#include "ops/builtin.hpp"
namespace graphrun {
void register_binary(OpRegistry&) {}
}  // namespace graphrun
