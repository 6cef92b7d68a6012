#include "sim/parallel/comm.h"

#include <cstdlib>
#include <stdexcept>

#if OUROBOROS_HAVE_MPI
#include <mpi.h>
#endif

namespace ouro {
#if OUROBOROS_HAVE_MPI
namespace {

// Set by Open MPI's, MPICH's and Slurm's launchers (PMIx / PMI) in every rank.
bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

}  // namespace
#endif

Comm& Comm::world(int* argc, char*** argv) {
  static Comm comm(argc, argv);
  return comm;
}

Comm::Comm(int* argc, char*** argv) {
#if OUROBOROS_HAVE_MPI
  if (!launched_by_mpi()) return;
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  mpi_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
#else
  (void)argc;
  (void)argv;
#endif
}

Comm::~Comm() {
#if OUROBOROS_HAVE_MPI
  if (mpi_) MPI_Finalize();
#endif
}

void Comm::gather(const std::vector<double>& mine, const std::vector<std::int64_t>& counts,
                  std::vector<double>& all) const {
  if (!mpi_) {
    (void)counts;
    all.assign(mine.begin(), mine.end());
    return;
  }
#if OUROBOROS_HAVE_MPI
  std::vector<int> n(size_), displ(size_);
  std::int64_t total = 0;
  for (int r = 0; r < size_; ++r) {
    if (counts[r] > (1LL << 30)) throw std::runtime_error("gather: more than 2^30 values from one rank");
    n[r] = static_cast<int>(counts[r]);
    displ[r] = static_cast<int>(total);
    total += counts[r];
  }
  if (total > (1LL << 31) - 1) throw std::runtime_error("gather: more than 2^31 values in one step");
  if (root()) all.resize(total);
  MPI_Gatherv(mine.data(), n[rank_], MPI_DOUBLE, root() ? all.data() : nullptr, n.data(), displ.data(), MPI_DOUBLE, 0,
              MPI_COMM_WORLD);
#endif
}

std::vector<std::string> Comm::gather_text(const std::string& mine) const {
  if (!mpi_) return {mine};
  std::vector<std::string> out;
#if OUROBOROS_HAVE_MPI
  int len = static_cast<int>(mine.size());
  std::vector<int> lens(size_), displ(size_);
  MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  int total = 0;
  for (int r = 0; r < size_; ++r) displ[r] = total, total += lens[r];
  std::string all(root() ? total : 0, '\0');
  MPI_Gatherv(mine.data(), len, MPI_CHAR, root() ? all.data() : nullptr, lens.data(), displ.data(), MPI_CHAR, 0,
              MPI_COMM_WORLD);
  if (root())
    for (int r = 0; r < size_; ++r) out.push_back(all.substr(displ[r], lens[r]));
#endif
  return out;
}

bool Comm::any(bool flag) const {
  if (!mpi_) return flag;
  int out = 0;
#if OUROBOROS_HAVE_MPI
  int in = flag ? 1 : 0;
  MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
#endif
  return out != 0;
}

double Comm::min(double value) const {
  if (!mpi_) return value;
  double out = value;
#if OUROBOROS_HAVE_MPI
  MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
#endif
  return out;
}

void Comm::barrier() const {
#if OUROBOROS_HAVE_MPI
  if (mpi_) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

void Comm::abort(int code) const {
#if OUROBOROS_HAVE_MPI
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

}  // namespace ouro
