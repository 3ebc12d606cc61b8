#include "engine/version.hpp"

namespace graphrun {

std::string version() { return GRAPHRUN_VERSION; }

}  // namespace graphrun
