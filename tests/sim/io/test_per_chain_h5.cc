// per_chain.h5 (--per-chain-format hdf5) through the binary: the same values as per_chain.csv for every point,
// generation, metric and chain, the documented layout and attributes, and a run killed or stopped by a full disk
// that resumes to the values of an uninterrupted run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/cli.h"

#if OUROBOROS_HAVE_HDF5
#include <hdf5.h>
#endif

namespace {

using namespace ouro::test;

const char* kConfig = R"(
name: per-chain-h5
seed: 21
chains: 37
generations: 5
model: {family: gmm, components: 2, dim: 1, em: {max_iter: 20}}
truth: {weights: [0.7, 0.3], means: [[0], [3]], covs: [[1], [0.5]]}
data: {samples: 40, regime: accumulate, real_fraction: 0.2}
sweep:
  data.samples: [40, 60]
)";

#if OUROBOROS_HAVE_HDF5

std::vector<std::string> strings(hid_t on, const char* name) {
  const hid_t attr = H5Aopen(on, name, H5P_DEFAULT);
  const hid_t space = H5Aget_space(attr);
  std::vector<char*> raw(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
  if (raw.empty()) {  // an empty list: nothing to read
    H5Sclose(space);
    H5Aclose(attr);
    return {};
  }
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  EXPECT_GE(H5Aread(attr, type, raw.data()), 0) << name;
  std::vector<std::string> out(raw.begin(), raw.end());
  H5Dvlen_reclaim(type, space, H5P_DEFAULT, raw.data());
  H5Tclose(type);
  H5Sclose(space);
  H5Aclose(attr);
  return out;
}

struct Point {
  std::vector<std::string> labels, metrics;
  std::vector<hsize_t> dims;  // generations + 1, metrics, chains
  std::vector<double> values;
};

std::vector<Point> read_h5(const fs::path& file, std::vector<std::string>& axes) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(f, 0) << file;
  axes = strings(f, "axes");
  std::vector<Point> points;
  for (int p = 0;; ++p) {
    const std::string name = "point_" + std::to_string(p);
    if (H5Lexists(f, name.c_str(), H5P_DEFAULT) <= 0) break;
    const hid_t g = H5Gopen2(f, name.c_str(), H5P_DEFAULT);
    Point pt{strings(g, "labels"), strings(g, "metrics"), std::vector<hsize_t>(3), {}};
    const hid_t set = H5Dopen2(g, "values", H5P_DEFAULT);
    const hid_t space = H5Dget_space(set);
    H5Sget_simple_extent_dims(space, pt.dims.data(), nullptr);
    pt.values.resize(pt.dims[0] * pt.dims[1] * pt.dims[2]);
    H5Dread(set, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, pt.values.data());
    H5Sclose(space);
    H5Dclose(set);
    H5Gclose(g);
    points.push_back(std::move(pt));
  }
  H5Fclose(f);
  return points;
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  for (std::string cell; std::getline(ss, cell, ',');) out.push_back(cell);
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}

// Every value of per_chain.csv is the h5 file's, bit for bit (an empty cell is NaN).
void expect_same_values(const fs::path& csv, const std::vector<Point>& points, const std::vector<std::string>& axes) {
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);
  const std::vector<std::string> header = split(line);
  std::size_t rows = 0;
  while (std::getline(in, line)) {
    const std::vector<std::string> cells = split(line);
    ASSERT_EQ(cells.size(), header.size()) << line;
    const std::vector<std::string> labels(cells.begin(), cells.begin() + axes.size());
    const Point* pt = nullptr;
    for (const Point& p : points)
      if (p.labels == labels) pt = &p;
    ASSERT_NE(pt, nullptr) << line;
    const int g = std::stoi(cells[axes.size()]);
    const long chain = std::stol(cells[axes.size() + 1]);
    for (std::size_t m = 0; m < pt->metrics.size(); ++m) {
      const auto col = std::find(header.begin(), header.end(), pt->metrics[m]) - header.begin();
      const double h5 = pt->values[(g * pt->dims[1] + m) * pt->dims[2] + chain];
      const std::string& cell = cells[col];
      if (cell.empty()) EXPECT_TRUE(std::isnan(h5)) << pt->metrics[m] << " g " << g << " chain " << chain;
      else EXPECT_EQ(std::strtod(cell.c_str(), nullptr), h5) << pt->metrics[m] << " g " << g << " chain " << chain;
    }
    ++rows;
  }
  std::size_t expected = 0;
  for (const Point& p : points) expected += p.dims[0] * p.dims[2];
  EXPECT_EQ(rows, expected);
}

TEST(PerChainH5, HoldsTheValuesOfPerChainCsv) {
  const fs::path dir = temp_dir("h5");
  const fs::path cfg = write_config(dir, kConfig);
  const std::string base = "run " + cfg.string() + " --no-progress --backend cpu";
  ASSERT_EQ(run(base + " --per-chain --out " + (dir / "csv").string()).code, 0);
  const Result r = run(base + " --per-chain-format hdf5 --out " + (dir / "h5").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_FALSE(fs::exists(dir / "h5" / "per_chain.csv"));
  std::vector<std::string> axes;
  const std::vector<Point> points = read_h5(dir / "h5" / "per_chain.h5", axes);
  EXPECT_EQ(axes, std::vector<std::string>{"data.samples"});
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[1].labels, std::vector<std::string>{"60"});
  EXPECT_EQ(points[0].dims, (std::vector<hsize_t>{6, points[0].metrics.size(), 37}));
  EXPECT_EQ(std::find(points[0].metrics.begin(), points[0].metrics.end(), "draws_per_kept"), points[0].metrics.end())
      << "a metric that is not written";
  expect_same_values(dir / "csv" / "per_chain.csv", points, axes);
  fs::remove_all(dir);
}

// Without a sweep: no axes and no labels (empty lists), and the same values as per_chain.csv.
TEST(PerChainH5, ARunWithoutASweep) {
  const fs::path dir = temp_dir("h5-no-sweep");
  std::string config = kConfig;
  config = config.substr(0, config.find("sweep:"));
  const fs::path cfg = write_config(dir, config);
  const std::string base = "run " + cfg.string() + " --no-progress --backend cpu";
  ASSERT_EQ(run(base + " --per-chain --out " + (dir / "csv").string()).code, 0);
  const Result r = run(base + " --per-chain-format hdf5 --out " + (dir / "h5").string());
  ASSERT_EQ(r.code, 0) << r.out;
  std::vector<std::string> axes;
  const std::vector<Point> points = read_h5(dir / "h5" / "per_chain.h5", axes);
  EXPECT_TRUE(axes.empty());
  ASSERT_EQ(points.size(), 1u);
  EXPECT_TRUE(points[0].labels.empty());
  expect_same_values(dir / "csv" / "per_chain.csv", points, axes);
  fs::remove_all(dir);
}

// Killed between generations, or stopped by a full disk, the file is readable and resume completes it with the
// values of an uninterrupted run.
TEST(PerChainH5, ResumedRunsHoldTheSameValues) {
  const fs::path dir = temp_dir("h5-resume");
  const fs::path cfg = write_config(dir, kConfig);
  const std::string base = "run " + cfg.string() + " --no-progress --backend cpu --per-chain-format hdf5";
  ASSERT_EQ(run(base + " --out " + (dir / "whole").string()).code, 0);
  std::vector<std::string> axes;
  const std::vector<Point> whole = read_h5(dir / "whole" / "per_chain.h5", axes);
  for (const std::string& fault : {"kill@4", "kill@9", "enospc@4000"}) {
    const fs::path out = dir / fault;
    const Result stopped = run_command("OUROBOROS_FAULT=" + fault + " " + kBinary + " " + base +
                                       " --checkpoint-every 1 --out " + out.string());
    ASSERT_NE(stopped.code, 0) << fault;
    const Result resumed = run("resume " + out.string() + " --no-progress");
    ASSERT_EQ(resumed.code, 0) << fault << ": " << resumed.out;
    const std::vector<Point> again = read_h5(out / "per_chain.h5", axes);
    ASSERT_EQ(again.size(), whole.size()) << fault;
    for (std::size_t p = 0; p < whole.size(); ++p) {
      ASSERT_EQ(again[p].values.size(), whole[p].values.size());
      for (std::size_t i = 0; i < whole[p].values.size(); ++i) {
        const double a = again[p].values[i], b = whole[p].values[i];
        ASSERT_TRUE(a == b || (std::isnan(a) && std::isnan(b))) << fault << " point " << p << " value " << i;
      }
    }
  }
  fs::remove_all(dir);
}

#else

TEST(PerChainH5, RefusedWithoutHdf5) {
  const fs::path dir = temp_dir("h5-none");
  const fs::path cfg = write_config(dir, kConfig);
  const Result r = run("run " + cfg.string() + " --per-chain-format hdf5 --out " + (dir / "o").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("built without HDF5"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

#endif

}  // namespace
