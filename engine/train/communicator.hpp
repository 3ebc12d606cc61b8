// The processes a training run is spread over, for data-parallel training.
// One process is rank 0 of 1 and every collective is a no-op; with MPI
// (mpirun -np N, engine/train/mpi_communicator.cpp) the ranks sum their
// gradients with one MPI_Allreduce a step.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

namespace graphrun::train {

class Communicator {
public:
    virtual ~Communicator() = default;
    virtual int rank() const { return 0; }
    virtual int size() const { return 1; }
    // Every rank's `values`, summed element-wise, into every rank's `values`.
    virtual void allreduce_sum(std::span<float> /*values*/) {}
    virtual void allreduce_sum(std::span<double> /*values*/) {}
    // Every rank's `values`, concatenated in rank order, into every rank's `values`.
    virtual void allgather(std::vector<float>& /*values*/) {}
};

// Whether this build has MPI, and which ("Open MPI 4.1.4"), for --version.
std::string mpi_description();

// When this process was started by mpirun (its environment says so) and the
// build has MPI: initializes MPI and returns the world communicator; else
// nullptr (one process). MPI is finalized when the communicator is destroyed.
std::unique_ptr<Communicator> start_mpi_if_launched(int* argc, char*** argv);

// Ends every rank at once (MPI_Abort) after a rank failed, so none waits
// forever for it; does nothing for one process.
void abort_all_ranks(Communicator* communicator, int status);

}  // namespace graphrun::train
