#include "ops/builtin.hpp"
