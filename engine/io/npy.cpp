#include "engine/io/npy.hpp"
