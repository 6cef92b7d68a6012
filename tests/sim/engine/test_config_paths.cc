// A relative file path in a config is read against the config file's folder (a --set value's against the current
// folder, where it was typed), and the resolved config holds it absolute, so a run's config.yaml names the same
// file from any folder.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "sim/engine/config.h"
#include "sim/families/ngram/ngram_family.h"
#include "tests/support/cli.h"

namespace {

using ouro::ConfigError;
using ouro::KeyType;
using ouro::load_experiment;
using ouro::load_experiment_text;
namespace fs = std::filesystem;
namespace test = ouro::test;

// T/cfg/config.yaml names T/cfg/texts/c.txt as texts/c.txt; T/elsewhere/ is another current folder, with a corpus of
// its own at T/elsewhere/mine/d.txt.
struct Folders {
  fs::path top, cfg, elsewhere, config, corpus, other;
  explicit Folders(const std::string& name, const std::string& extra = "") {
    top = test::temp_dir(name);
    cfg = top / "cfg";
    elsewhere = top / "elsewhere";
    fs::create_directories(cfg / "texts");
    fs::create_directories(elsewhere / "mine");
    corpus = cfg / "texts" / "c.txt";
    other = elsewhere / "mine" / "d.txt";
    for (const fs::path& p : {corpus, other}) {
      std::ofstream f(p);
      for (int j = 0; j < 20; ++j) f << "abc"[j % 3] << " the\n";
    }
    config = test::write_config(cfg,
                                "name: paths\nseed: 1\nchains: 2\ngenerations: 1\nmodel: {family: ngram, order: 1}\n"
                                "truth: {corpus: texts/c.txt}\nmetrics: {tail_count: 7}\ndata: {samples: 20}\n" +
                                    extra);
  }
  ~Folders() { fs::remove_all(top); }
  // The binary run from T/elsewhere.
  test::Result run_elsewhere(const std::string& args) const {
    return test::run_command("cd '" + elsewhere.string() + "' && " + test::kBinary + " " + args);
  }
};

TEST(ConfigPaths, CorpusIsAPathKey) {
  const ouro::Family* ngram = ouro::find_family("ngram");
  ASSERT_NE(ngram, nullptr);
  const auto& k = ouro::key_of(ngram->keys(), "truth.corpus");
  EXPECT_EQ(k.type, KeyType::kPath);
  EXPECT_EQ(k.choices, (std::vector<std::string>{"kjv"}));
  EXPECT_NE(k.expected.find("a file path, relative to the config file's folder"), std::string::npos) << k.expected;
}

// The config validates from another current folder, and its resolved form holds the absolute path.
TEST(ConfigPaths, RelativeToTheConfigFilesFolder) {
  const Folders f("config-paths");
  const auto r = f.run_elsewhere("validate ../cfg/config.yaml");
  EXPECT_EQ(r.code, 0) << r.out;
  const auto ex = load_experiment(f.config.string(), {});
  EXPECT_EQ(ex.resolved["truth"]["corpus"].as<std::string>(), f.corpus.string());
  EXPECT_EQ(ex.points[0].config.settings<ouro::NgramSettings>().corpus, f.corpus.string());
  // A config named through a relative path with "..": the same file, the path lexically normal.
  const auto dotted =
      load_experiment((f.cfg / ".." / "cfg" / "config.yaml").string(), {"truth.corpus=" + f.corpus.string()});
  EXPECT_EQ(dotted.resolved["truth"]["corpus"].as<std::string>(), f.corpus.string());
}

// A --set value's relative path is read against the current folder, where it was typed.
TEST(ConfigPaths, SetValuesAreRelativeToTheCurrentFolder) {
  const Folders f("config-paths-set");
  EXPECT_EQ(f.run_elsewhere("validate ../cfg/config.yaml --set truth.corpus=mine/d.txt").code, 0);
  EXPECT_EQ(f.run_elsewhere("validate ../cfg/config.yaml --set 'truth={corpus: ./mine/../mine/d.txt}'").code, 0);
  const auto wrong = f.run_elsewhere("validate ../cfg/config.yaml --set truth.corpus=texts/c.txt");
  EXPECT_EQ(wrong.code, 2) << wrong.out;
  EXPECT_NE(wrong.out.find((f.elsewhere / "texts" / "c.txt").string()), std::string::npos) << wrong.out;
  // Text with no file: the current folder.
  const std::string rel = fs::relative(f.other, fs::current_path()).string();
  ASSERT_TRUE(fs::path(rel).is_relative());
  const auto ex = load_experiment_text(test::slurp(f.config), {"truth.corpus=" + rel});
  EXPECT_EQ(ex.resolved["truth"]["corpus"].as<std::string>(), f.other.string());
}

// A sweep over a path-valued key: each relative value resolved, a word such as kjv left as it is.
TEST(ConfigPaths, SweepValuesAreResolved) {
  const Folders f("config-paths-sweep", "sweep: {truth.corpus: [texts/c.txt, ./texts/../texts/c.txt]}\n");
  const auto ex = load_experiment(f.config.string(), {});
  ASSERT_EQ(ex.points.size(), 2u);
  EXPECT_EQ(ex.resolved["sweep"]["truth.corpus"][0].as<std::string>(), f.corpus.string());
  EXPECT_EQ(ex.resolved["sweep"]["truth.corpus"][1].as<std::string>(), f.corpus.string());
  EXPECT_EQ(ex.points[1].config.settings<ouro::NgramSettings>().corpus, f.corpus.string());
  const std::string rel = fs::relative(f.other, fs::current_path()).string();
  const auto set = load_experiment(f.config.string(), {"sweep.truth.corpus=[kjv, " + rel + "]"});
  EXPECT_EQ(set.resolved["sweep"]["truth.corpus"][0].as<std::string>(), "kjv");
  EXPECT_EQ(set.resolved["sweep"]["truth.corpus"][1].as<std::string>(), f.other.string());
}

// A run's config.yaml holds the absolute path: it validates (and resumes) from any folder.
TEST(ConfigPaths, TheRunsConfigNamesTheSameFileFromAnyFolder) {
  const Folders f("config-paths-run");
  const fs::path out = f.top / "run";
  const auto r = f.run_elsewhere("run ../cfg/config.yaml --out '" + out.string() + "'");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string recorded = test::slurp(out / "config.yaml");
  EXPECT_NE(recorded.find("corpus: " + f.corpus.string()), std::string::npos) << recorded;
  const auto again =
      test::run_command("cd / && " + test::kBinary + " validate '" + (out / "config.yaml").string() + "'");
  EXPECT_EQ(again.code, 0) << again.out;
}

}  // namespace
