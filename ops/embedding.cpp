#include "ops/builtin.hpp"
namespace graphrun {
void register_embedding(OpRegistry&) {}
}  // namespace graphrun
