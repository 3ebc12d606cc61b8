#include "engine/spec/loader.hpp"
