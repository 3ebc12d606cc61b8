#include "engine/io/safetensors.hpp"
