// graphrun's version, semantic versioning (MAJOR.MINOR.PATCH). Its one source
// is project(VERSION ...) in CMakeLists.txt.
#pragma once

#include <string>

namespace graphrun {

std::string version();  // e.g. "0.1.0"

}  // namespace graphrun
