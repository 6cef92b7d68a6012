// per_chain.h5: every chain's value of every written metric at every generation, in HDF5 (`--per-chain-format
// hdf5`), chunked by generation and compressed (shuffle + deflate), for Python (h5py, pandas, xarray: see
// scripts/load_run.py) and any HDF5 reader.
//
// Layout:
//   /                 attribute `axes`: the sweep's key paths (strings, possibly none)
//   /point_P          one group per sweep point P = 0, 1, ...; attributes `labels` (its value of each axis, as in
//                     metrics.csv), `metrics` (the written metrics' names), `chains`, `generations`, `seed`
//   /point_P/values   float64 [generations + 1][metrics][chains]: generation g's values; NaN where a chain has none
//                     (also for generations not yet written by an interrupted run)
// Each generation is written whole and the file flushed after it, so a run stopped between generations leaves a
// readable file; `resume` writes the generations after its checkpoint again (the same values). A process killed in
// the middle of a write can leave the file unreadable (HDF5 has no journal); resume then refuses it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ouro {

// Whether this build writes HDF5 (the library was found at configure time).
bool hdf5_built();

class PerChainH5 {
 public:
  // Creates the file (resume: opens the existing one, WriteError when it is not readable HDF5).
  PerChainH5(const std::string& path, const std::vector<std::string>& axes, bool resume);
  ~PerChainH5();
  PerChainH5(const PerChainH5&) = delete;
  PerChainH5& operator=(const PerChainH5&) = delete;
  // Point p's dataset, created unless it exists (a resumed run).
  void point(std::size_t p, const std::vector<std::string>& labels, const std::vector<std::string>& metrics,
             std::int64_t chains, int generations, std::uint32_t seed);
  // Generation g of point p: values[m * chains + i], the written metrics in order; then the file flushed.
  void write(std::size_t p, int g, const std::vector<double>& values);

  // The compressed size is not known before the data: the uncompressed bytes of a point's dataset, a bound.
  static double point_bytes(std::int64_t chains, int generations, int metrics);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ouro
