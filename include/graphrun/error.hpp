// The one error type graphrun throws for anything a user can cause: a bad
// shape, a bad attribute, a token id outside the vocabulary. Its message is
// what the CLI prints, so it says what went wrong, where, and what was expected.
#pragma once

#include <stdexcept>
#include <string>

namespace graphrun {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace graphrun
