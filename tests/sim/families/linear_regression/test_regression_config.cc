// The linear regression family's refusals: each bad config exits with code 2 before any work, naming the key.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "tests/support/cli.h"

namespace {

using namespace ouro::test;

const std::string kBase =
    "name: refusal\nchains: 10\ngenerations: 2\nmodel: {family: linear_regression}\n"
    "truth: {weights: [1.0, -0.5, 0.25], noise_std: 1.0}\ndata: {samples: 20}\n";

void expect_refused(const std::vector<std::string>& sets, const std::string& key, const std::string& text) {
  const auto dir = temp_dir("regression-refusal");
  const auto cfg = write_config(dir, kBase);
  std::string args = "run " + cfg.string() + " --no-progress --out " + (dir / "out").string();
  for (const auto& s : sets) args += " --set '" + s + "'";
  const Result r = run(args);
  EXPECT_EQ(r.code, 2) << args << "\n" << r.out;
  EXPECT_NE(r.out.find(key), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(text), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "metrics.csv")) << "work was done before the refusal";
}

TEST(RegressionConfig, BadInputIsRefusedNamingTheKey) {
  expect_refused({"truth.design_cov=[[1, 2, 0], [2, 1, 0], [0, 0, 1]]"}, "truth.design_cov", "not positive definite");
  expect_refused({"truth.design_cov=[[1, 0], [0, 1]]"}, "truth.design_cov", "3 x 3");
  expect_refused({"truth.design_cov=[[1, 0.5, 0], [0, 1, 0], [0, 0, 1]]"}, "truth.design_cov", "not symmetric");
  expect_refused({"truth.design_cov={isotropic: -1}"}, "truth.design_cov.isotropic", "variance");
  expect_refused({"truth.noise_std=-1"}, "truth.noise_std", "");
  expect_refused({"truth.noise_std=0"}, "truth.noise_std", "");
  expect_refused({"truth.weights=[0, 0, 0]"}, "truth.weights", "has norm 0");
  expect_refused({"truth.weights=[1e-200, 1e-200]"}, "truth.weights", "at least 1e-50");
  expect_refused({"truth.weights={dim: 3, norm: 1e-300}"}, "truth.weights.norm", "[1e-50, 1e50]");
  // Scales double precision cannot carry: results that would overflow the aggregates, an ill-conditioned design.
  expect_refused({"truth.noise_std=1e300"}, "truth.noise_std", "[1e-50, 1e50]");
  expect_refused({"truth.noise_std=1e-170"}, "truth.noise_std", "[1e-50, 1e50]");
  expect_refused({"truth.noise_std=1e45", "truth.design_cov={isotropic: 1e-40}"}, "truth.noise_std", "too large");
  expect_refused({"truth.weights=[1e-40, 0, 0]", "truth.noise_std=1e20"}, "truth.noise_std", "too large");
  expect_refused({"truth.design_cov=[[1, 0.999999999999999, 0], [0.999999999999999, 1, 0], [0, 0, 1]]"},
                 "truth.design_cov", "condition number");
  expect_refused({"model.estimator=ridge", "model.ridge=1e300"}, "model.ridge", "[0, 1e100]");
  expect_refused({"truth.weights=[]"}, "truth.weights", "");
  expect_refused({"truth.weights={dim: 300}"}, "truth.weights.dim", "[1, 256]");
  expect_refused({"truth.weights={dim: 3, nrom: 1}"}, "truth.weights.nrom", "unknown key");
  expect_refused({"model.ridge=0.5"}, "model.ridge", "model.estimator is ols");
  expect_refused({"model.estimator=ridge"}, "model.ridge", "must be > 0");
  expect_refused({"model.estimator=mle"}, "model.estimator", "one of ols ridge");
  expect_refused({"data.design=random"}, "data.design", "one of fresh fixed");
  // Strategies the family does not build are refused, naming the families that run them.
  expect_refused({"data.dedup=true", "data.dedup_resolution=0.1"}, "data.dedup", "applies to model.family");
  expect_refused(
      {"data.verifier={keep_plausible: 1, keep_implausible: 0, quantile: 0.1}", "data.regime=accumulate_subsample"},
      "data.verifier", "replace and accumulate");
  expect_refused({"data.tail_upsample={factor: 2, quantile: 0.1}", "data.regime=accumulate_subsample"},
                 "data.tail_upsample", "replace and accumulate");
  expect_refused({"data.verifier={keep_plausible: 1, keep_implausible: 0, quantile: 0.1}", "data.design=fixed"},
                 "data.verifier", "data.design fresh");
  expect_refused({"data.estimator_weight=0.5"}, "data.estimator_weight", "applies to model.family");
  // And another family's keys.
  expect_refused({"model.dim=2"}, "model.dim", "applies to model.family");
}

// data.design belongs to this family alone.
TEST(RegressionConfig, DesignIsThisFamilysKey) {
  const auto dir = temp_dir("regression-design-key");
  const auto cfg = write_config(dir,
                                "name: g\nchains: 10\ngenerations: 2\nmodel: {family: gaussian}\n"
                                "truth: {isotropic: 1.0}\ndata: {samples: 20, design: fixed}\n");
  const Result r = run("validate " + cfg.string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("data.design"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("linear_regression"), std::string::npos) << r.out;
}

}  // namespace
