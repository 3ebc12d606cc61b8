// The MPI side of engine/train/communicator.hpp; without MPI at build time,
// the functions below say so and start nothing.
#include <cstdlib>

#include <fmt/format.h>

#include "graphrun/error.hpp"
#include "engine/train/communicator.hpp"

#ifdef GRAPHRUN_HAVE_MPI
// The C API only: mpi.h would otherwise pull in the long-deprecated C++ bindings.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace graphrun::train {

#ifdef GRAPHRUN_HAVE_MPI
namespace {

void check(int status, const char* what) {
    if (status != MPI_SUCCESS) throw Error(fmt::format("MPI: {} failed (error {})", what, status));
}

class MpiCommunicator final : public Communicator {
public:
    MpiCommunicator(int* argc, char*** argv) {
        check(MPI_Init(argc, argv), "MPI_Init");
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &size_);
    }
    ~MpiCommunicator() override { MPI_Finalize(); }
    int rank() const override { return rank_; }
    int size() const override { return size_; }
    void allreduce_sum(std::span<float> values) override {
        check(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    }
    void allreduce_sum(std::span<double> values) override {
        check(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    }
    void allgather(std::vector<float>& values) override {
        const int mine = static_cast<int>(values.size());
        std::vector<int> counts(static_cast<std::size_t>(size_)), offsets(static_cast<std::size_t>(size_));
        check(MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
        int total = 0;
        for (int r = 0; r < size_; ++r) {
            offsets[static_cast<std::size_t>(r)] = total;
            total += counts[static_cast<std::size_t>(r)];
        }
        std::vector<float> all(static_cast<std::size_t>(total));
        check(MPI_Allgatherv(values.data(), mine, MPI_FLOAT, all.data(), counts.data(), offsets.data(), MPI_FLOAT, MPI_COMM_WORLD), "MPI_Allgatherv");
        values = std::move(all);
    }

private:
    int rank_ = 0, size_ = 1;
};

}  // namespace

std::string mpi_description() {
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    MPI_Get_library_version(version, &length);
    std::string text(version, static_cast<std::size_t>(length));
    // "Open MPI v4.1.4, package: ..." -> its first part.
    return "MPI: " + text.substr(0, text.find(',')) ;
}

std::unique_ptr<Communicator> start_mpi_if_launched(int* argc, char*** argv) {
    // mpirun (Open MPI, MPICH, Slurm's PMI) marks the processes it starts.
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
        if (std::getenv(name)) return std::make_unique<MpiCommunicator>(argc, argv);
    return nullptr;
}

void abort_all_ranks(Communicator* communicator, int status) {
    if (communicator && communicator->size() > 1) MPI_Abort(MPI_COMM_WORLD, status);
}

#else

std::string mpi_description() { return "MPI: not built in (install libopenmpi-dev and rebuild)"; }
std::unique_ptr<Communicator> start_mpi_if_launched(int*, char***) { return nullptr; }
void abort_all_ranks(Communicator*, int) {}

#endif

}  // namespace graphrun::train
