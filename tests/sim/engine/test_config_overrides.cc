// What a config says once: a key given twice is refused with both places.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sim/engine/config.h"
#include "tests/support/cli.h"

namespace {

using ouro::ConfigError;
using ouro::load_experiment;
using ouro::load_experiment_text;
namespace fs = std::filesystem;

const char* kBase = R"(
name: t
seed: 3
chains: 10
generations: 5
model: {family: gaussian, dim: 1, estimator: mle}
truth: {mean: [0.0], cov: [[1.0]]}
data: {samples: 20, regime: replace, real_fraction: 0.0}
)";

// The refusal's message (its path is checked against `path`), or "" with a test failure when the config is accepted.
std::string refusal(const std::string& yaml, const std::vector<std::string>& sets, const std::string& path) {
  try {
    load_experiment_text(yaml, sets);
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.path(), path) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted; expected a refusal at " << path;
  return "";
}

// ---- keys given twice ----------------------------------------------------------

// The two lines of a key given twice, counted from 1 as an editor counts them (yaml-cpp would keep both: a reader
// finds the first, the recorded config.yaml would show the last).
TEST(ConfigDuplicates, AKeyGivenTwiceNamesBothLines) {
  const std::string head = "chains: 10\ngenerations: 5\nmodel: {family: gaussian, dim: 1}\ntruth: {isotropic: 1.0}\n";
  EXPECT_EQ(refusal(head + "data:\n  samples: 20\n  regime: replace\n  samples: 40\n", {}, "data.samples"),
            "data.samples: given twice (lines 6 and 8)");
  EXPECT_EQ(refusal(head + "data:\n  samples: 20\ndata:\n  samples: 40\n", {}, "data"),
            "data: given twice (lines 5 and 7)");
  EXPECT_EQ(refusal(std::string(kBase) + "chains: 11\n", {}, "chains"), "chains: given twice (lines 4 and 9)");
}

// From a file too, and on one line of a flow mapping (then the columns say which).
TEST(ConfigDuplicates, AFileSaysTheSameAndOneLineGivesColumns) {
  const fs::path dir = ouro::test::temp_dir("config-duplicates");
  const fs::path file = ouro::test::write_config(
      dir,
      "chains: 10\ngenerations: 5\nmodel: {family: gaussian, dim: 1}\ndata: {samples: 20, samples: 30}\n"
      "truth: {isotropic: 1.0}\n");
  try {
    load_experiment(file.string(), {});
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.path(), "data.samples");
    EXPECT_STREQ(e.what(), "data.samples: given twice (line 4, columns 8 and 21)");
  }
  fs::remove_all(dir);
}

// Inside the sweep (whose keys are paths), in a section of a section, in a list of mappings, and in a --set value.
TEST(ConfigDuplicates, EverywhereInTheTree) {
  EXPECT_EQ(refusal(std::string(kBase) + "sweep:\n  data.samples: [10, 20]\n  seed: [1, 2]\n  data.samples: [30]\n", {},
                    "sweep.data.samples"),
            "sweep.data.samples: given twice (lines 10 and 12)");
  EXPECT_EQ(refusal("chains: 10\ngenerations: 5\nmodel: {family: gaussian, dim: 1}\ntruth: {isotropic: 1.0}\n"
                    "data: {samples: 20, verifier: {quantile: 0.1, quantile: 0.2}}\n",
                    {}, "data.verifier.quantile"),
            "data.verifier.quantile: given twice (line 5, columns 32 and 47)");
  EXPECT_EQ(refusal(std::string(kBase) + "reproduction:\n  claims:\n    - {metric: a, source: s}\n"
                                         "    - {metric: b, source: s, metric: c}\n",
                    {}, "reproduction.claims[1].metric"),
            "reproduction.claims[1].metric: given twice (line 12, columns 8 and 30)");
  EXPECT_EQ(refusal(kBase, {"data={samples: 3, samples: 4}"}, "data.samples"),
            "data.samples: given twice in --set data={samples: 3, samples: 4}");
  EXPECT_EQ(refusal(kBase, {"sweep={seed: [1], seed: [2]}"}, "sweep.seed"),
            "sweep.seed: given twice in --set sweep={seed: [1], seed: [2]}");
  // Keys compare as scalars: a quoted key is the same key.
  EXPECT_EQ(refusal(std::string(kBase) + "'seed': 4\n", {}, "seed"), "seed: given twice (lines 3 and 9)");
}

// An alias names a node given once: walked once, never a duplicate of itself.
TEST(ConfigDuplicates, AliasesAreNotDuplicates) {
  const auto ex = load_experiment_text(
      std::string(kBase) + "reproduction: {a: &claim {metric: m, source: s}, b: *claim, c: *claim}\n", {});
  EXPECT_EQ(ex.points.size(), 1u);
  EXPECT_EQ(ex.resolved["reproduction"]["c"]["metric"].as<std::string>(), "m");
}

}  // namespace
