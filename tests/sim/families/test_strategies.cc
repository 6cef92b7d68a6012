// Mitigation strategies (docs/strategies.md) that every family shares, on every family and backend: the real-data
// sources and caps, the real samples a run consumes, and the refusals of bad values. Each family's own strategies
// (the verifier, tail upsampling, age decay, dedup, estimator weighting) are tested in its folder
// (tests/sim/families/*/test_*_strategies.cc), by exact consequences of their rules and against references written
// from the definitions (a statistical check states its tolerance where it is made).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/core/normal.h"
#include "kernels/core/quadform.h"
#include "kernels/core/rng.h"
#include "kernels/gmm/gmm.h"
#include "kernels/ngram/ngram.h"
#include "sim/analysis/summary.h"
#include "sim/engine/config.h"
#include "sim/families/gmm/gmm_family.h"
#include "sim/families/ngram/ngram_family.h"
#include "tests/sim/families/strategies_support.h"
#include "tests/support/backend_test.h"

namespace {

using namespace ouro;
using namespace ouro::test;
namespace fs = std::filesystem;

class Strategies : public BackendTest {};

// Configs whose training set is all real data from generation 2 on
// (real_fraction 1): with a fixed real source it is generation 1's real sample
// every time, so a chain's fitted model — and every metric of the model —
// repeats exactly; with fresh real data it does not. (Not the mixtures: EM
// starts from the previous fit or a generation's own k-means++ draw, so the
// same data need not give the same bits.)
std::vector<std::string> all_real(const std::string& backend) {
  std::vector<std::string> out = {
      "seed: 3\nchains: 20\ngenerations: 4\nmodel: {family: gaussian, dim: 2}\ntruth: {isotropic: 1.0}\n"
      "data: {samples: 15, regime: replace, real_fraction: 1.0, real_source: SOURCE}\n",
      "seed: 3\nchains: 20\ngenerations: 4\nmodel: {family: gaussian, dim: 1}\ntruth: {isotropic: 1.0}\n"
      "data: {samples: 15, regime: replace, real_fraction: 1.0, real_source: SOURCE}\n"};
  if (backend == "cpu") {
    out.push_back(
        "seed: 3\nchains: 5\ngenerations: 4\nmodel: {family: ngram, order: 1}\n"
        "truth: {zipf: {vocab: 80, exponent: 1.1}}\nmetrics: {heldout: 300}\n"
        "data: {samples: 300, regime: replace, real_fraction: 1.0, real_source: SOURCE}\n");
    out.push_back(
        "seed: 3\nchains: 3\ngenerations: 3\nmodel: {family: ngram, order: 2}\ntruth: {corpus: kjv}\n"
        "data: {samples: 2000, regime: replace, real_fraction: 1.0, real_source: SOURCE}\n");
  }
  return out;
}

std::string with_source(std::string yaml, const char* source) {
  yaml.replace(yaml.find("SOURCE"), 6, source);
  return yaml;
}

TEST_P(Strategies, FixedRealSourceReusesGenerationOnesRealSample) {
  for (const std::string& yaml : all_real(GetParam())) {
    const FamilyCurves fixed = run_family(with_source(yaml, "fixed"), GetParam(), 0, true);
    for (int g = 2; g <= fixed.config.generations; ++g)
      EXPECT_TRUE(same_bits(model_metrics(fixed, g), model_metrics(fixed, 1))) << "generation " << g << "\n" << yaml;
    const FamilyCurves fresh = run_family(with_source(yaml, "fresh"), GetParam(), 0, true);
    EXPECT_TRUE(same_bits(values_at(fresh, 1), values_at(fixed, 1))) << "generation 1 is the same real sample";
    EXPECT_FALSE(same_bits(model_metrics(fresh, 2), model_metrics(fresh, 1))) << "fresh data must differ:\n" << yaml;
  }
}

// synthetic_cap c raises the real share to 1 - c: a run with real_fraction
// 0.1 and cap 0.7 is, chain for chain, the run with real_fraction 0.3.
TEST_P(Strategies, SyntheticCapRaisesTheRealShare) {
  const std::string base =
      "seed: 5\nchains: 30\ngenerations: 5\nmodel: {family: gaussian, dim: 1}\ntruth: {isotropic: 2.0}\n"
      "data: {samples: 20, regime: accumulate, ";
  const FamilyCurves capped = run_family(base + "real_fraction: 0.1, synthetic_cap: 0.7}\n", GetParam(), 0, true);
  const FamilyCurves plain = run_family(base + "real_fraction: 0.3}\n", GetParam(), 0, true);
  EXPECT_EQ(capped.config.real_count, 6);
  for (int g = 0; g <= 5; ++g) EXPECT_TRUE(same_bits(values_at(capped, g), values_at(plain, g))) << g;
  // A cap above the synthetic share changes nothing.
  const FamilyCurves loose = run_family(base + "real_fraction: 0.3, synthetic_cap: 0.9}\n", GetParam(), 0, true);
  for (int g = 0; g <= 5; ++g) EXPECT_TRUE(same_bits(values_at(loose, g), values_at(plain, g))) << g;
}

TEST(Strategies, RealSamplesConsumedFollowTheSource) {
  const std::string base =
      "seed: 1\nchains: 2\ngenerations: 10\nmodel: {family: gaussian}\ntruth: {isotropic: 1}\n"
      "data: {samples: 100, real_fraction: 0.25";
  EXPECT_EQ(real_samples_per_chain(load_experiment_text(base + "}\n", {}).points[0].config), 100 + 9 * 25);
  EXPECT_EQ(real_samples_per_chain(load_experiment_text(base + ", real_source: fixed}\n", {}).points[0].config), 100);
}

TEST(Strategies, BadValuesAreRefused) {
  const std::string base =
      "seed: 1\nchains: 2\ngenerations: 3\nmodel: {family: gaussian}\ntruth: {isotropic: 1}\n"
      "data: {samples: 10";
  for (const auto& [extra, path] : std::vector<std::pair<std::string, std::string>>{
           {", real_source: stale}\n", "data.real_source"},
           {", synthetic_cap: 1.5}\n", "data.synthetic_cap"},
           {", estimator_weight: 1.2}\n", "data.estimator_weight"},
           {", regime: accumulate, estimator_weight: 0.618}\n", "data.estimator_weight"},
           {", verifier: {keep_plausible: 1, keep_implausible: 0}}\n", "data.verifier.quantile"},
           {", verifier: {keep_plausible: 0, keep_implausible: 0, quantile: 0.1}}\n", "data.verifier"},
           {", verifier: {keep_plausible: 1.5, keep_implausible: 0, quantile: 0.1}}\n", "data.verifier.keep_plausible"},
           {", verifier: {keep_plausible: 1, keep_implausible: 0, quantile: 1}}\n", "data.verifier.quantile"},
           {", max_draw_factor: 5}\n", "data.max_draw_factor"},
           {", verifier: {keep_plausible: 1, keep_implausible: 0, quantile: 0.1}, max_draw_factor: 0}\n",
            "data.max_draw_factor"},
           {", tail_upsample: {factor: 3}}\n", "data.tail_upsample.quantile"},
           {", tail_upsample: {factor: 0, quantile: 0.1}}\n", "data.tail_upsample.factor"},
           {", age_decay: 0.5}\n", "data.age_decay"},
           {", regime: accumulate, age_decay: 0}\n", "data.age_decay"},
           {", regime: accumulate, age_decay: 1.5}\n", "data.age_decay"},
           {", dedup: true}\n", "data.dedup_resolution"},
           {", dedup: true, dedup_resolution: -1}\n", "data.dedup_resolution"},
           {", regime: accumulate_subsample, dedup: true, dedup_resolution: 0}\n", "data.dedup_resolution"}}) {
    try {
      load_experiment_text(base + extra, {});
      ADD_FAILURE() << extra << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.path(), path) << e.what();
    }
  }
  // Mixtures weigh their points in every regime (tail_upsample) and under
  // accumulate (age_decay); n-grams weigh their tail token set, no quantile.
  const std::string gmm =
      "seed: 1\nchains: 2\ngenerations: 3\nmodel: {family: gmm, components: 2, dim: 2}\n"
      "truth: {weights: [0.5, 0.5], means: [[0, 0], [3, 0]], covs: [[1, 1], [1, 1]]}\n"
      "data: {samples: 50";
  EXPECT_NO_THROW(
      load_experiment_text(gmm + ", regime: accumulate_subsample, tail_upsample: {factor: 2, quantile: 0.1}}\n", {}));
  EXPECT_NO_THROW(load_experiment_text(gmm + ", regime: accumulate, age_decay: 0.5}\n", {}));
  EXPECT_NO_THROW(load_experiment_text(gmm + ", regime: accumulate_subsample, age_decay: 0.5}\n", {}));
  // Their filters work in every regime.
  EXPECT_NO_THROW(load_experiment_text(gmm + ", regime: accumulate, dedup: true, dedup_resolution: 0.1}\n", {}));
  EXPECT_NO_THROW(load_experiment_text(
      gmm + ", regime: accumulate_subsample, verifier: {keep_plausible: 1, keep_implausible: 0, quantile: 0.1}}\n",
      {}));
  for (const auto& [yaml, path] : std::vector<std::pair<std::string, std::string>>{
           {gmm + ", age_decay: 0.5}\n", "data.age_decay"},
           {gmm + ", dedup: true}\n", "data.dedup_resolution"},
           {gmm + ", dedup: true, dedup_resolution: 0}\n", "data.dedup_resolution"},
           {gmm + ", dedup_resolution: 0.1}\n", "data.dedup_resolution"},
           {"seed: 1\nchains: 2\ngenerations: 3\nmodel: {family: ngram, order: 1}\ntruth: {zipf: {vocab: 50, exponent: "
            "1.1}}\n"
            "data: {samples: 50, tail_upsample: {factor: 2, quantile: 0.1}}\n",
            "data.tail_upsample.quantile"},
           {"seed: 1\nchains: 2\ngenerations: 3\nmodel: {family: ngram, order: 1}\ntruth: {zipf: {vocab: 50, exponent: "
            "1.1}}\n"
            "data: {samples: 50, tail_upsample: {}}\n",
            "data.tail_upsample.factor"}}) {
    try {
      load_experiment_text(yaml, {});
      ADD_FAILURE() << yaml << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.path(), path) << e.what();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, Strategies, ::testing::Values("cpu", "cuda"), test::backend_name);

}  // namespace
