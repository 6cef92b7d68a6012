// What a config says once: a key given twice is refused with both places, a --set that a sweep would override in
// part is refused, and a --set may replace a sweep's axis or the whole sweep.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sim/engine/config.h"
#include "tests/sim/engine/base_config.h"
#include "tests/support/cli.h"

namespace {

using ouro::ConfigError;
using ouro::load_experiment;
using ouro::load_experiment_text;
namespace fs = std::filesystem;

using ouro::test::kBase;

const std::string kSwept = std::string(kBase) + "sweep: {data.samples: [10, 100], data.real_fraction: [0, 0.5]}\n";

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

// An alias of a mapping or list inside itself is a cycle: refused naming where it is, in the file and in a --set
// value, where every later reader would recurse forever. An alias that is not a cycle stays allowed.
TEST(ConfigDuplicates, ACyclicAliasIsRefused) {
  const std::string head = "chains: 10\ngenerations: 5\ntruth: {isotropic: 1.0}\ndata: {samples: 20}\n";
  EXPECT_EQ(refusal(head + "model: &m {family: gaussian, dim: *m}\n", {}, "model.dim"),
            "model.dim: is an alias of a mapping or list that contains it (a cycle: the value would never end)");
  EXPECT_EQ(refusal(std::string(kBase), {"truth=&t {isotropic: 1.0, cov: [*t]}"}, "truth.cov[0]"),
            "truth.cov[0]: is an alias of a mapping or list that contains it (a cycle: the value would never end)");
  EXPECT_NO_THROW(
      load_experiment_text("chains: 10\ngenerations: 5\nmodel: {family: gaussian, dim: 1}\n"
                           "truth: {isotropic: 1.0}\ndata: &d {samples: 20}\n"
                           "reproduction: {paper: p, claims: [*d, *d]}\n",
                           {}));
}

// An alias names a node given once: walked once, never a duplicate of itself.
TEST(ConfigDuplicates, AliasesAreNotDuplicates) {
  const auto ex = load_experiment_text(
      std::string(kBase) + "reproduction: {a: &claim {metric: m, source: s}, b: *claim, c: *claim}\n", {});
  EXPECT_EQ(ex.points.size(), 1u);
  EXPECT_EQ(ex.resolved["reproduction"]["c"]["metric"].as<std::string>(), "m");
}

// ---- --set against a sweep -----------------------------------------------------

// A --set of a swept key fixes it (its axis goes); a --set of a mapping that holds a swept key is refused, since the
// sweep would override part of it, naming both ways to say what was meant.
TEST(ConfigSets, AMappingHoldingASweptKeyIsRefused) {
  const std::string msg = refusal(kSwept, {"data={samples: 30}"}, "data");
  EXPECT_NE(msg.find("data.samples, which is swept (sweep.data.samples)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--set data.samples=30 "), std::string::npos) << msg;
  EXPECT_NE(msg.find("--set sweep.data.samples=[30]"), std::string::npos) << msg;
  // The same when the mapping does not mention the swept key: the sweep would put it back.
  const std::string other = refusal(kSwept, {"data={samples: 30, regime: accumulate}", "chains=3"}, "data");
  EXPECT_NE(other.find("data.samples"), std::string::npos) << other;
  const std::string without =
      refusal(std::string(kBase) + "sweep: {data.real_fraction: [0, 0.5]}\n", {"data={samples: 30}"}, "data");
  EXPECT_NE(without.find("--set data.real_fraction=VALUE"), std::string::npos) << without;
  // A mapping that holds no swept key is set as before.
  const auto ex = load_experiment_text(kSwept, {"truth={isotropic: 2.0}"});
  EXPECT_EQ(ex.points.size(), 4u);
}

// --set applies in order, each to the config the ones before it left: once the axis is gone, the mapping is free.
TEST(ConfigSets, SetsApplyInOrder) {
  refusal(kSwept, {"data.samples=30", "data={samples: 40}"}, "data");  // data.real_fraction is still swept
  const auto ex = load_experiment_text(
      kSwept, {"data.samples=30", "data.real_fraction=0.1", "data={samples: 40, real_fraction: 0.5}"});
  EXPECT_TRUE(ex.axes.empty());
  ASSERT_EQ(ex.points.size(), 1u);
  EXPECT_EQ(ex.points[0].config.samples, 40);
  EXPECT_EQ(ex.points[0].config.real_fraction, 0.5);
  const auto none = load_experiment_text(kSwept, {"sweep={}", "data={samples: 40}"});
  ASSERT_EQ(none.points.size(), 1u);
  EXPECT_EQ(none.points[0].config.samples, 40);
  // A sweep set after a fixed value sweeps it, as a config's sweep does over its own value.
  const auto swept = load_experiment_text(kBase, {"data.samples=30", "sweep.data.samples=[50, 60]"});
  ASSERT_EQ(swept.points.size(), 2u);
  EXPECT_EQ(swept.points[1].config.samples, 60);
}

// --set sweep.KEY=[values] replaces the axis in its place, or adds one as the last (fastest) axis.
TEST(ConfigSets, SweepAxisIsReplacedOrAdded) {
  const auto replaced = load_experiment_text(kSwept, {"sweep.data.samples=[30, 40, 50]"});
  ASSERT_EQ(replaced.axes.size(), 2u);
  EXPECT_EQ(replaced.axes[0].path, "data.samples");
  EXPECT_EQ(replaced.axes[0].labels, (std::vector<std::string>{"30", "40", "50"}));
  ASSERT_EQ(replaced.points.size(), 6u);
  EXPECT_EQ(replaced.points[5].config.samples, 50);
  EXPECT_EQ(replaced.resolved["sweep"]["data.samples"].size(), 3u);

  const auto added = load_experiment_text(kSwept, {"sweep.seed=[7, 8]"});
  ASSERT_EQ(added.axes.size(), 3u);
  EXPECT_EQ(added.axes[2].path, "seed");
  ASSERT_EQ(added.points.size(), 8u);
  EXPECT_EQ(added.points[1].config.seed, 8u);
  EXPECT_EQ(added.points[1].labels, (std::vector<std::string>{"10", "0", "8"}));

  const auto fresh = load_experiment_text(kBase, {"sweep.data.regime=[replace, accumulate]"});
  ASSERT_EQ(fresh.points.size(), 2u);
  EXPECT_EQ(fresh.points[1].config.regime, ouro::kernels::Regime::kAccumulate);
}

// An axis set from the command line is checked as any sweep's.
TEST(ConfigSets, SweepAxisValuesAreChecked) {
  EXPECT_NE(refusal(kBase, {"sweep.data.samples=30"}, "sweep.data.samples").find("expected a non-empty list"),
            std::string::npos);
  EXPECT_NE(refusal(kBase, {"sweep.data.samples=[]"}, "sweep.data.samples").find("expected a non-empty list"),
            std::string::npos);
  EXPECT_NE(refusal(kBase, {"sweep.data.sampels=[10]"}, "sweep.data.sampels").find("did you mean data.samples?"),
            std::string::npos);
  EXPECT_NE(refusal(kBase, {"sweep.plot.center=[mean]"}, "sweep.plot.center").find("cannot be swept"),
            std::string::npos);
  EXPECT_NE(refusal(kBase, {"sweep.name=[a, b]"}, "sweep.name").find("unknown key"), std::string::npos);
  EXPECT_NE(refusal(kBase, {"sweep.data.samples=[10, -1]"}, "data.samples").find("at sweep point data.samples=-1"),
            std::string::npos);
  EXPECT_NE(refusal(kBase, {"sweep.=[1]"}, "sweep.").find("expected sweep.key.path=[values]"), std::string::npos);
  EXPECT_NE(refusal(std::string(kBase) + "sweep: [1, 2]\n", {"sweep.seed=[1]"}, "sweep").find("expected a mapping"),
            std::string::npos);
}

// --set sweep=... replaces the whole sweep: a mapping of axes, or {} or null for none.
TEST(ConfigSets, WholeSweepIsReplaced) {
  for (const char* none : {"sweep={}", "sweep=null"}) {
    const auto ex = load_experiment_text(kSwept, {none});
    EXPECT_TRUE(ex.axes.empty()) << none;
    ASSERT_EQ(ex.points.size(), 1u) << none;
    EXPECT_EQ(ex.points[0].config.samples, 20) << none;
  }
  const auto ex = load_experiment_text(kSwept, {"sweep={seed: [1, 2, 3]}"});
  ASSERT_EQ(ex.axes.size(), 1u);
  EXPECT_EQ(ex.axes[0].path, "seed");
  EXPECT_EQ(ex.points.size(), 3u);
  EXPECT_FALSE(ex.resolved["sweep"]["data.samples"]);
  EXPECT_NE(refusal(kSwept, {"sweep=[1, 2]"}, "sweep").find("expected a mapping"), std::string::npos);
  EXPECT_NE(refusal(kSwept, {"sweep={data.samples: 5}"}, "sweep.data.samples").find("expected a non-empty list"),
            std::string::npos);
}

}  // namespace
