#pragma once

namespace graphrun {
// Trains the built-in Siamese example; returns the process exit status.
int run_demo(int epochs);
}  // namespace graphrun
