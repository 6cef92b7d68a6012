// The program describing itself: `ouroboros keys` and `ouroboros metrics` print the tables that check a config,
// docs/config.md is their rendering and must be current, and a metric's name means the same in every family.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "sim/cli/reference.h"
#include "sim/engine/config.h"
#include "tests/support/cli.h"

namespace {

using namespace ouro;
namespace fs = std::filesystem;

TEST(Reference, DocsConfigIsCurrent) {
  const std::string page = test::slurp(fs::path(test::kSourceDir) / "docs" / "config.md");
  EXPECT_TRUE(page == config_reference(builtin_families()))
      << "docs/config.md is stale: regenerate it with `build/ouroboros keys --markdown > docs/config.md`";
}

// Every key is described: a type's allowed values, a default or none, and a meaning.
TEST(Reference, EveryKeyIsDescribed) {
  std::vector<KeySpec> all = common_keys();
  for (const Family* f : family_table()) all.insert(all.end(), f->keys().begin(), f->keys().end());
  for (const auto& k : all) {
    EXPECT_FALSE(k.expected.empty()) << k.path;
    EXPECT_FALSE(k.meaning.empty()) << k.path;
    if (k.type == KeyType::kChoice && !k.fallback.empty())
      EXPECT_NE(std::find(k.choices.begin(), k.choices.end(), k.fallback), k.choices.end()) << k.path;
    if ((k.type == KeyType::kInteger || k.type == KeyType::kNumber) && !k.fallback.empty()) {
      const double v = std::stod(k.fallback);
      EXPECT_TRUE(v >= k.lo && v <= k.hi) << k.path << ": the default " << k.fallback << " is outside its range";
    }
  }
}

// A metric's name means the same thing in every family that has it: the same collapse direction, the same
// ratio-to-the-truth status (the report and the summary look metrics up by name).
TEST(Reference, SharedMetricNamesAgreeAcrossFamilies) {
  std::map<std::string, MetricSpec> seen;
  int shared = 0;
  for (const Family* f : family_table())
    for (const auto& m : f->metrics()) {
      const auto it = seen.find(m.name);
      if (it == seen.end()) {
        seen.emplace(m.name, m);
        continue;
      }
      ++shared;
      EXPECT_EQ(it->second.direction, m.direction) << m.name << " in " << f->name();
      EXPECT_EQ(it->second.truth_ratio, m.truth_ratio) << m.name << " in " << f->name();
    }
  EXPECT_GT(shared, 3);  // var_ratio, tail_mass, kl, synthetic_share, ... are shared
}

// What a backend declares it does not run is a gap for a point that uses it.
TEST(Reference, DeclaredBackendSupportMatchesTheGaps) {
  const std::string gaussian =
      "chains: 2\ngenerations: 2\nmodel: {family: gaussian}\ntruth: {isotropic: 1}\ndata: {samples: 10}\n";
  const PointConfig c = load_experiment_text(gaussian, {}).points[0].config;
  EXPECT_EQ(c.family->backend_gap(c, "cpu"), "");
  EXPECT_EQ(c.family->backend_gap(c, "cuda"), "");
  const std::string zipf =
      "chains: 2\ngenerations: 2\nmodel: {family: ngram}\ntruth: {zipf: {vocab: 50}}\n"
      "data: {samples: 100, regime: accumulate, age_decay: 0.5}\n";
  const PointConfig z = load_experiment_text(zipf, {}).points[0].config;
  EXPECT_FALSE(z.family->support("cuda").offers(DataOption::kAgeDecay));
  EXPECT_EQ(z.family->backend_gap(z, "cuda"), "data.age_decay");
  EXPECT_EQ(z.family->backend_gap(z, "cpu"), "");
}

TEST(Reference, KeysAndMetricsCommands) {
  const auto all = test::run("keys");
  EXPECT_EQ(all.code, 0) << all.out;
  for (const char* key : {"data.samples", "model.dim", "model.components", "sampler.top_p", "early_warning.horizon"})
    EXPECT_NE(all.out.find(key), std::string::npos) << key;
  const auto gmm = test::run("keys gmm");
  EXPECT_EQ(gmm.code, 0) << gmm.out;
  EXPECT_NE(gmm.out.find("model.em.reg_covar"), std::string::npos);
  EXPECT_EQ(gmm.out.find("sampler.top_p"), std::string::npos);  // another family's
  const auto metrics = test::run("metrics ngram");
  EXPECT_EQ(metrics.code, 0) << metrics.out;
  for (const char* m : {"vocab_survival", "gini_simpson", "Wright-Fisher"})
    EXPECT_NE(metrics.out.find(m), std::string::npos) << m;
  const auto unknown = test::run("metrics gausian");
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.out.find("no model family \"gausian\""), std::string::npos) << unknown.out;
  EXPECT_EQ(test::run("metrics").code, 2);  // the family is required
  const auto page = test::run("keys --markdown");
  EXPECT_EQ(page.code, 0);
  EXPECT_EQ(page.out, config_reference(builtin_families()));
}

}  // namespace
