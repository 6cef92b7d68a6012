// The processes of one run: a single process, or the ranks of an MPI job
// (`mpirun -n K ouroboros run ...`). Rank 0 writes every file; the others run
// their block of each sweep point's chains and send their per-chain values to
// it. Built without MPI, or started without mpirun, a run is one rank.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ouro {

class Comm {
 public:
  // Joins the MPI job when this build has MPI and the process was started by
  // an MPI launcher (its environment says so); otherwise a single rank.
  static Comm& world(int* argc = nullptr, char*** argv = nullptr);
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // among the ranks on this node: picks the GPU
  int local_size() const { return local_size_; }
  bool root() const { return rank_ == 0; }
  bool mpi() const { return mpi_; }

  // Each rank's values, concatenated in rank order on rank 0 (`all` is left
  // alone elsewhere); counts[r] is rank r's count (on every rank: all
  // counts are known in advance to every rank, so none is sent).
  void gather(const std::vector<double>& mine, const std::vector<std::int64_t>& counts, std::vector<double>& all) const;
  // Each rank's text, on rank 0 in rank order.
  std::vector<std::string> gather_text(const std::string& mine) const;
  // True on every rank when it is true on any.
  bool any(bool flag) const;
  // The smallest of every rank's value, on every rank (a decision all ranks
  // must share, such as the memory budget their common plan is made for).
  double min(double value) const;
  void barrier() const;
  // Ends every rank of the job (an error on one rank would leave the others
  // waiting in a collective).
  [[noreturn]] void abort(int code) const;

 private:
  Comm(int* argc, char*** argv);
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  bool mpi_ = false;
};

}  // namespace ouro
