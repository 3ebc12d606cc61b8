#include "engine/spec/builder.hpp"
