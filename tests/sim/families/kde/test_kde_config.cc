// The kernel density family's refusals: each bad config exits with code 2 before any work, naming the key.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/cli.h"

namespace {

using namespace ouro::test;

const std::string kBase =
    "name: refusal\nchains: 4\ngenerations: 2\nmodel: {family: kde, bandwidth: 0.5}\n"
    "truth: {shape: moons, noise: 0.1}\nmetrics: {heldout: 50}\ndata: {samples: 20}\n";

void expect_refused(const std::vector<std::string>& sets, const std::string& key, const std::string& text) {
  const auto dir = temp_dir("kde-refusal");
  const auto cfg = write_config(dir, kBase);
  std::string args = "run " + cfg.string() + " --no-progress --out " + (dir / "out").string();
  for (const auto& s : sets) args += " --set '" + s + "'";
  const Result r = run(args);
  EXPECT_EQ(r.code, 2) << args << "\n" << r.out;
  EXPECT_NE(r.out.find(key), std::string::npos) << args << "\n" << r.out;
  EXPECT_NE(r.out.find(text), std::string::npos) << args << "\n" << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "metrics.csv")) << "work was done before the refusal";
}

TEST(KdeConfig, BadInputIsRefusedNamingTheKey) {
  expect_refused({"model.bandwidth=0"}, "model.bandwidth", "a number in [1e-100, 1e100], scott or silverman");
  expect_refused({"model.bandwidth=-0.5"}, "model.bandwidth", "scott or silverman");
  expect_refused({"model.bandwidth=scot"}, "model.bandwidth", "scott or silverman");
  expect_refused({"model.bandwidth=[0.5]"}, "model.bandwidth", "scott or silverman");
  expect_refused({"model.bandwidth=.nan"}, "model.bandwidth", "");
  expect_refused({"truth.shape=spiral"}, "truth.shape", "moons");
  expect_refused({"truth.noise=-0.1"}, "truth.noise", "");
  expect_refused({"truth={shape: blobs}"}, "truth.centers", "");
  expect_refused({"truth={shape: moons, weights: [1.0]}"}, "truth", "");
  expect_refused({"truth={mean: [0, 0]}"}, "truth.cov", "missing");
  expect_refused({"truth={mean: [0, 0], cov: [[1, 2], [2, 1]]}"}, "truth.cov", "not positive definite");
  expect_refused({"truth={mean: [0, 0, 0, 0, 0, 0, 0, 0, 0], cov: [1, 1, 1, 1, 1, 1, 1, 1, 1]}"}, "truth.mean",
                 "1 to 8 numbers");
  expect_refused({"truth={weights: [0.5, 0.5], means: [[0, 0], [1]], covs: [[1, 1], [1, 1]]}"}, "truth.means[1]",
                 "expected 2 numbers");
  expect_refused({"truth={mean: [0, 0], cov: [1, 1], covs: [[1, 1]]}"}, "truth.covs", "mixture");
  expect_refused({"metrics.heldout=0"}, "metrics.heldout", "");
  expect_refused({"metrics.heldout=200000", "metrics.sample_based=[energy]"}, "metrics.heldout", "at most 100000");
  // Bandwidths far from the truth's scale would overflow the aggregates' squares.
  expect_refused({"model.bandwidth=1e-100"}, "model.bandwidth", "times the truth's scale");
  expect_refused({"model.bandwidth=1e30"}, "model.bandwidth", "times the truth's scale");
  // A shape's keys beside a Gaussian or mixture truth.
  expect_refused({"truth={mean: [0, 0], cov: [1, 1], noise: 0.1}"}, "truth.noise", "shape truth only");
  // The verifier and the tail weight need the truth's density in closed form.
  expect_refused({"data.verifier={keep_plausible: 1, keep_implausible: 0, quantile: 0.1}"}, "data.verifier",
                 "shape truth");
  expect_refused({"data.tail_upsample={factor: 2, quantile: 0.1}"}, "data.tail_upsample", "shape truth");
  // One chain's stored points (every generation's under accumulate) beyond the memory budget: refused by the plan.
  expect_refused({"data.regime=accumulate", "data.samples=100000000", "generations=1000"}, "chains", "even one chain");
}

// A Gaussian, a mixture and every shape run; the bandwidth rules are written as a metric.
TEST(KdeConfig, EveryTruthRuns) {
  for (const std::string truth :
       {"{mean: [0.5], cov: [2.0]}",
        "{weights: [0.3, 0.7], means: [[0, 0], [3, 1]], covs: [[1, 1], [[0.5, 0.1], [0.1, 0.4]]]}",
        "{shape: moons, noise: 0.05}", "{shape: circles, factor: 0.4, noise: 0.05}", "{shape: swiss_roll, noise: 0.2}",
        "{shape: blobs, centers: [[0, 0, 0], [4, 4, 4]], cluster_std: 0.5}"}) {
    const auto dir = temp_dir("kde-truths");
    const auto cfg = write_config(dir, kBase);
    const Result r = run("run " + cfg.string() + " --no-progress --set 'truth=" + truth +
                         "' --set model.bandwidth=silverman --out " + (dir / "out").string());
    ASSERT_EQ(r.code, 0) << truth << "\n" << r.out;
    const std::string metrics = slurp(dir / "out" / "metrics.csv");
    EXPECT_NE(metrics.find(",bandwidth,"), std::string::npos) << truth;
    EXPECT_NE(metrics.find(",ancestors,"), std::string::npos) << truth;
  }
}

}  // namespace
