// splitmix64 (Steele, Lea and Flood 2014), for random streams that must not
// depend on how work is split among threads: a draw is a hash of what it is
// for (a seed, a step, a node, a row), not the next number of a shared generator.
#pragma once

#include <cstdint>

namespace graphrun {

// splitmix64's output function: a bijection of 64-bit words in which every
// input bit reaches every output bit.
inline std::uint64_t splitmix64_mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// splitmix64 of a counter: the generator's output for state `counter`.
inline std::uint64_t splitmix64(std::uint64_t counter) { return splitmix64_mix(counter + 0x9E3779B97F4A7C15ULL); }

}  // namespace graphrun
