#include "sim/io/per_chain_h5.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "sim/io/output.h"

#if OUROBOROS_HAVE_HDF5
#include <hdf5.h>
#endif

namespace ouro {

double PerChainH5::point_bytes(std::int64_t chains, int generations, int metrics) {
  return 8.0 * static_cast<double>(chains) * (generations + 1.0) * metrics;
}

#if OUROBOROS_HAVE_HDF5

bool hdf5_built() { return true; }

namespace {

// HDF5's own error stack is silenced; every failure becomes a WriteError naming the file and the call.
[[noreturn]] void fail(const std::string& path, const std::string& what) {
  const int err = errno == ENOSPC || errno == EDQUOT ? errno : EIO;
  throw WriteError(fmt::format("{}: {} failed ({})", path, what, err == EIO ? "HDF5 error" : std::strerror(err)), err);
}

hid_t check(hid_t id, const std::string& path, const char* what) {
  if (id < 0) fail(path, what);
  return id;
}

void check(herr_t status, const std::string& path, const char* what) {
  if (status < 0) fail(path, what);
}

// A string-array attribute (variable-length UTF-8 strings).
void string_attribute(hid_t on, const char* name, const std::vector<std::string>& values, const std::string& path) {
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  const hsize_t n = values.size();
  const hid_t type = check(H5Tcopy(H5T_C_S1), path, "H5Tcopy");
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  const hid_t space = check(H5Screate_simple(1, &n, nullptr), path, "H5Screate_simple");
  const hid_t attr = check(H5Acreate2(on, name, type, space, H5P_DEFAULT, H5P_DEFAULT), path, "H5Acreate2");
  // An empty list (a run without a sweep has no axes and no labels) is an attribute of no elements, with nothing
  // to write: H5Awrite refuses the null buffer of an empty vector.
  if (n > 0) check(H5Awrite(attr, type, ptrs.data()), path, "H5Awrite");
  H5Aclose(attr);
  H5Sclose(space);
  H5Tclose(type);
}

void number_attribute(hid_t on, const char* name, double value, const std::string& path) {
  const hid_t space = check(H5Screate(H5S_SCALAR), path, "H5Screate");
  const hid_t attr =
      check(H5Acreate2(on, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT), path, "H5Acreate2");
  check(H5Awrite(attr, H5T_NATIVE_DOUBLE, &value), path, "H5Awrite");
  H5Aclose(attr);
  H5Sclose(space);
}

}  // namespace

struct PerChainH5::Impl {
  std::string path;
  hid_t file = -1;
  std::map<std::size_t, hid_t> sets;                    // point -> its values dataset
  std::map<std::size_t, std::array<hsize_t, 2>> shape;  // point -> (metrics, chains)
};

PerChainH5::PerChainH5(const std::string& path, const std::vector<std::string>& axes, bool resume)
    : impl_(std::make_unique<Impl>()) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  impl_->path = path;
  if (resume) {
    impl_->file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    if (impl_->file < 0)
      throw WriteError(fmt::format("{} cannot be opened as HDF5 (was the run killed while writing it?); run it again "
                                   "with --force",
                                   path),
                       EIO);
    return;
  }
  impl_->file = check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), path, "H5Fcreate");
  string_attribute(impl_->file, "axes", axes, path);
}

PerChainH5::~PerChainH5() {
  for (auto& [p, set] : impl_->sets) H5Dclose(set);
  if (impl_->file >= 0) H5Fclose(impl_->file);
}

void PerChainH5::point(std::size_t p, const std::vector<std::string>& labels, const std::vector<std::string>& metrics,
                       std::int64_t chains, int generations, std::uint32_t seed) {
  const std::string& path = impl_->path;
  const std::string group_name = fmt::format("point_{}", p);
  const hsize_t M = metrics.size(), N = static_cast<hsize_t>(chains);
  impl_->shape[p] = {M, N};
  if (H5Lexists(impl_->file, group_name.c_str(), H5P_DEFAULT) > 0) {  // a resumed run's
    impl_->sets[p] = check(H5Dopen2(impl_->file, (group_name + "/values").c_str(), H5P_DEFAULT), path, "H5Dopen2");
    return;
  }
  const hid_t group =
      check(H5Gcreate2(impl_->file, group_name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), path, "H5Gcreate2");
  string_attribute(group, "labels", labels, path);
  string_attribute(group, "metrics", metrics, path);
  number_attribute(group, "chains", static_cast<double>(chains), path);
  number_attribute(group, "generations", generations, path);
  number_attribute(group, "seed", seed, path);
  const hsize_t dims[3] = {static_cast<hsize_t>(generations) + 1, M, N};
  // A chunk is one generation of every metric, split along the chains to at most about 1 MiB.
  const hsize_t per_chunk = std::max<hsize_t>(1, std::min<hsize_t>(N, (1u << 17) / std::max<hsize_t>(M, 1)));
  const hsize_t chunk[3] = {1, std::max<hsize_t>(M, 1), per_chunk};
  const hid_t space = check(H5Screate_simple(3, dims, nullptr), path, "H5Screate_simple");
  const hid_t props = check(H5Pcreate(H5P_DATASET_CREATE), path, "H5Pcreate");
  if (M > 0 && N > 0) {
    check(H5Pset_chunk(props, 3, chunk), path, "H5Pset_chunk");
    check(H5Pset_shuffle(props), path, "H5Pset_shuffle");
    check(H5Pset_deflate(props, 4), path, "H5Pset_deflate");
  }
  const double nan = NAN;
  check(H5Pset_fill_value(props, H5T_NATIVE_DOUBLE, &nan), path, "H5Pset_fill_value");
  impl_->sets[p] =
      check(H5Dcreate2(group, "values", H5T_IEEE_F64LE, space, H5P_DEFAULT, props, H5P_DEFAULT), path, "H5Dcreate2");
  H5Pclose(props);
  H5Sclose(space);
  H5Gclose(group);
}

void PerChainH5::write(std::size_t p, int g, const std::vector<double>& values) {
  const std::string& path = impl_->path;
  const auto [M, N] = impl_->shape.at(p);
  if (M == 0 || N == 0) return;
  if (injected_disk_full(values.size() * sizeof(double)))
    throw WriteError(fmt::format("write to {} failed: {}", path, std::strerror(ENOSPC)), ENOSPC);
  const hid_t set = impl_->sets.at(p);
  const hid_t file_space = check(H5Dget_space(set), path, "H5Dget_space");
  const hsize_t start[3] = {static_cast<hsize_t>(g), 0, 0}, count[3] = {1, M, N};
  check(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start, nullptr, count, nullptr), path, "H5Sselect_hyperslab");
  const hid_t mem_space = check(H5Screate_simple(3, count, nullptr), path, "H5Screate_simple");
  const herr_t status = H5Dwrite(set, H5T_NATIVE_DOUBLE, mem_space, file_space, H5P_DEFAULT, values.data());
  H5Sclose(mem_space);
  H5Sclose(file_space);
  check(status, path, "H5Dwrite");
  check(H5Fflush(impl_->file, H5F_SCOPE_LOCAL), path, "H5Fflush");
}

#else  // built without HDF5: the CLI refuses --per-chain-format hdf5 before a run starts

bool hdf5_built() { return false; }

struct PerChainH5::Impl {};

PerChainH5::PerChainH5(const std::string& path, const std::vector<std::string>&, bool) {
  throw WriteError(fmt::format("{}: this ouroboros was built without HDF5", path), ENOTSUP);
}
PerChainH5::~PerChainH5() = default;
void PerChainH5::point(std::size_t, const std::vector<std::string>&, const std::vector<std::string>&, std::int64_t, int,
                       std::uint32_t) {}
void PerChainH5::write(std::size_t, int, const std::vector<double>&) {}

#endif

}  // namespace ouro
