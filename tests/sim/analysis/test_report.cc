// The report's checks of a run folder (sim/analysis/report.h): a small real
// run (two sweep points, early warning on) is accepted as written, and every
// way of damaging it that a crash, a cut-short copy or a hand edit produces is
// refused with RunFolderError naming the file, the line and what was expected
// -- never a crash, a hang, or a report ranked on values that are not there.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <string>

#include "sim/analysis/report.h"
#include "tests/support/cli.h"

namespace {

using namespace ouro;
using namespace ouro::test;

const char* kRun = R"(
name: checked
seed: 3
chains: 8
generations: 4
model: {family: gaussian, dim: 1}
truth: {mean: [0.0], cov: [[1.0]]}
data: {samples: 10, regime: replace}
summary: {metric: var_ratio, threshold: 0.5}
early_warning: {false_alarm: 0.2, horizon: 2}
sweep:
  data.real_fraction: [0, 0.5]
)";

class Report : public ::testing::Test {
 protected:
  // One run for the suite; each test damages its own copy.
  static void SetUpTestSuite() {
    root_ = temp_dir("report");
    const fs::path cfg = write_config(root_, kRun);
    const Result r = run("run " + cfg.string() + " --backend cpu --no-progress --out " + (root_ / "run").string());
    ASSERT_EQ(r.code, 0) << r.out;
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  void SetUp() override {
    dir_ = root_ / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::copy(root_ / "run", dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string file(const std::string& name) const { return slurp(dir_ / name); }
  void put(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name, std::ios::binary | std::ios::trunc) << text;
  }
  // Replaces the first match of `pattern` in a file (the pattern must match).
  void edit(const std::string& name, const std::string& pattern, const std::string& with) const {
    const std::string before = file(name);
    const std::string after =
        std::regex_replace(before, std::regex(pattern), with, std::regex_constants::format_first_only);
    ASSERT_NE(before, after) << name << ": no match for " << pattern;
    put(name, after);
  }

  // write_report refuses the folder as damaged, with every `parts` in its
  // message, and leaves report.md as it was.
  void expect_refused(const std::vector<std::string>& parts) const {
    const bool had = fs::exists(dir_ / "report.md");
    const std::string before = had ? file("report.md") : "";
    try {
      write_report(dir_.string());
      ADD_FAILURE() << "accepted; expected a refusal naming " << parts.front();
    } catch (const RunFolderError& e) {
      for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
    EXPECT_EQ(fs::exists(dir_ / "report.md"), had);
    if (had) EXPECT_EQ(file("report.md"), before);
  }

  static fs::path root_;
  fs::path dir_;
};

fs::path Report::root_;

TEST_F(Report, AcceptsTheRunAsWritten) {
  const std::string md = write_report(dir_.string());
  EXPECT_EQ(md, file("report.md"));
  EXPECT_NE(md.find("| 1 | "), std::string::npos) << md;
  EXPECT_NE(md.find("| 2 | "), std::string::npos) << md;
  EXPECT_NE(md.find("8 chains per point, 4 generations"), std::string::npos) << md;
  EXPECT_NE(md.find("## Early warning"), std::string::npos) << md;
  EXPECT_FALSE(fs::exists(dir_ / "report.md.tmp"));
}

// A run without a sweep: no swept keys, one point (its manifest entry's
// "point" is null).
TEST(ReportRun, WithoutASweep) {
  const fs::path dir = temp_dir("report_one_point");
  std::string config = kRun;
  config.erase(config.find("sweep:"));
  const fs::path cfg = write_config(dir, config);
  const Result r = run("run " + cfg.string() + " --backend cpu --no-progress --out " + (dir / "run").string());
  ASSERT_EQ(r.code, 0) << r.out;
  const Result rep = run("report " + (dir / "run").string());
  ASSERT_EQ(rep.code, 0) << rep.out;
  const std::string md = slurp(dir / "run" / "report.md");
  EXPECT_NE(md.find("\n| 1 | "), std::string::npos) << md;  // the ranking's one row
  EXPECT_EQ(md.find("\n| 2 | "), std::string::npos) << md;
  fs::remove_all(dir);
}

// The command line on cut-short tables: a refusal with the file and line on
// stderr and a failure exit code -- not a crash (128 + signal), and not a
// report ranked on chains that are not there.
TEST_F(Report, CommandLineRefusesCutShortTables) {
  auto refused = [&](const std::string& expect) {
    const Result r = run("report " + dir_.string());
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find(expect), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(dir_ / "report.md"));
  };
  const std::string s = file("summary.csv");
  put("summary.csv", s.substr(0, s.find('\n') + 10));  // the header and the start of point 0's row
  refused("summary.csv line 2: cut short");
  put("summary.csv", s.substr(0, s.find('\n') + 1));  // the header alone
  refused("summary.csv has no rows");
  put("summary.csv", s);
  const std::string c = file("summary_chains.csv");
  put("summary_chains.csv", c.substr(0, c.rfind('\n', c.size() - 2) + 1));  // point 1's last chain gone
  refused("summary_chains.csv has 7 rows for point 1, expected 8");
}

// Every prefix of every file the report reads is refused: a file cut at any
// byte, at a line's end included, is a damaged folder.
TEST_F(Report, EveryCutShortFileIsRefused) {
  const RunFolderText whole = read_run_folder(dir_.string());
  ASSERT_TRUE(whole.early_warning.has_value());
  EXPECT_NO_THROW(report_markdown(whole));
  const std::vector<std::pair<const char*, std::string RunFolderText::*>> files = {
      {"manifest.json", &RunFolderText::manifest},
      {"summary.csv", &RunFolderText::summary},
      {"summary_chains.csv", &RunFolderText::summary_chains}};
  for (const auto& [name, member] : files) {
    const std::string& text = whole.*member;
    for (std::size_t k = 0; k < text.size(); ++k) {
      // A manifest's closing newline is whitespace to JSON.
      if (member == &RunFolderText::manifest && k + 1 == text.size() && text[k] == '\n') continue;
      RunFolderText cut = whole;
      cut.*member = text.substr(0, k);
      EXPECT_THROW(report_markdown(cut), RunFolderError) << name << " cut at byte " << k << " of " << text.size();
    }
  }
  const std::string& ew = *whole.early_warning;
  for (std::size_t k = 0; k < ew.size(); ++k) {
    RunFolderText cut = whole;
    cut.early_warning = ew.substr(0, k);
    EXPECT_THROW(report_markdown(cut), RunFolderError) << "early_warning.csv cut at byte " << k;
  }
}

TEST_F(Report, ACutShortSummaryChainsIsRefusedNotRankedOnNothing) {
  const std::string s = file("summary_chains.csv");
  std::size_t at = 0;
  for (int line = 0; line < 12; ++line) at = s.find('\n', at) + 1;  // the header and 11 of point 0's 8 + 8 chains
  put("summary_chains.csv", s.substr(0, at));
  expect_refused({"summary_chains.csv has 3 rows for point 1, expected 8"});
}

TEST_F(Report, AFileThatIsNotARegularFileIsRefusedBeforeItIsOpened) {
  fs::remove(dir_ / "summary.csv");
  fs::create_directory(dir_ / "summary.csv");
  expect_refused({"summary.csv is a folder, not a regular file"});
  fs::remove(dir_ / "summary.csv");
  fs::create_symlink("/dev/zero", dir_ / "summary.csv");  // a read that never ends
  expect_refused({"summary.csv is a character device"});
  fs::remove(dir_ / "summary.csv");
  fs::copy_file(root_ / "run" / "summary.csv", dir_ / "summary.csv");
  fs::remove(dir_ / "summary_chains.csv");
  ASSERT_EQ(::mkfifo((dir_ / "summary_chains.csv").c_str(), 0600), 0);  // a read that never starts
  expect_refused({"summary_chains.csv is a FIFO"});
  fs::remove(dir_ / "summary_chains.csv");
  expect_refused({"summary_chains.csv is missing"});
}

TEST_F(Report, ARunNotCompleteIsRefusedSayingWhatToDo) {
  edit("manifest.json", R"("status": "complete")", R"("status": "interrupted")");
  expect_refused({"interrupted", "ouroboros resume " + dir_.string()});
  // A manifest that says running with nobody holding the folder's lock: a killed run, without a checkpoint failed
  // (not resumable), with one interrupted (sim/io/run_folder.h).
  edit("manifest.json", R"("status": "interrupted")", R"("status": "running")");
  try {
    write_report(dir_.string());
    ADD_FAILURE() << "a running run was reported";
  } catch (const RunFolderError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("says running"), std::string::npos) << m;
    EXPECT_NE(m.find("killed"), std::string::npos) << m;
    EXPECT_EQ(m.find("ouroboros resume"), std::string::npos) << "nothing to resume from: " << m;
    EXPECT_NE(m.find("--force"), std::string::npos) << m;
  }
  fs::create_directories(dir_ / "checkpoint");
  std::ofstream(dir_ / "checkpoint" / "latest.json") << "{}";
  expect_refused({"killed", "ouroboros resume " + dir_.string()});
  fs::remove_all(dir_ / "checkpoint");
  edit("manifest.json", R"("status": "running")", R"("status": "paused")");
  expect_refused({"manifest.json: status \"paused\", expected \"complete\""});
  edit("manifest.json", R"("status": "paused",?)", "");
  expect_refused({"manifest.json has no \"status\""});
}

TEST_F(Report, NotARunFolderIsTheArgumentsFaultNotTheFolders) {
  auto kind = [](const std::string& dir) {
    try {
      write_report(dir);
    } catch (const RunFolderError&) {
      return std::string("damaged");
    } catch (const ReportError&) {
      return std::string("not a run folder");
    }
    return std::string("accepted");
  };
  EXPECT_EQ(kind((dir_ / "nothing here").string()), "not a run folder");
  EXPECT_EQ(kind((dir_ / "summary.csv").string()), "not a run folder");
  fs::remove(dir_ / "manifest.json");
  EXPECT_EQ(kind(dir_.string()), "not a run folder");
  put("manifest.json", "{\"status\": \"complete\",");
  EXPECT_EQ(kind(dir_.string()), "damaged");
}

TEST_F(Report, TheHeaderAndEveryRowsWidthAreChecked) {
  edit("summary.csv", "last_mean", "last_average");
  expect_refused({"summary.csv line 1: the header is", "expected the swept keys, then point,metric"});
  put("summary.csv", slurp(root_ / "run" / "summary.csv"));
  edit("summary_chains.csv", "\n(0,0,3,[^,\n]*,)", "\n$1,");  // an empty field more in point 0's chain 3
  expect_refused({"summary_chains.csv line 5: 6 fields, expected 5"});
  put("summary_chains.csv", slurp(root_ / "run" / "summary_chains.csv"));
  edit("summary_chains.csv", "^data.real_fraction,point", "data.real_fraction,sweep_point");
  expect_refused({"summary_chains.csv line 1: the header is", "point,chain,last,auc"});
  put("summary_chains.csv", slurp(root_ / "run" / "summary_chains.csv"));
  edit("early_warning.csv", ",lead_q50,", ",median_lead,");
  expect_refused({"early_warning.csv line 1"});
}

// Numbers as number() writes them (sim/io/output.h): empty, inf and -inf only
// where it may write them, and nothing else that strtod would read.
TEST_F(Report, NumbersMustReadBackWhole) {
  const std::string sum = file("summary.csv");
  // Point 1's row: data.real_fraction,point,metric,direction,threshold,generations,collapse_generation,last_mean,...
  const std::string row = "\n0.5,1,var_ratio,down,0.5,4,([0-9]*),[^,]*,";
  for (const std::string bad :
       {"nan", "NaN", " 0.5", "0.5 ", "0x1p-1", "1e999", "+1", "1,5", "infinity", "--1", "1e"}) {
    SCOPED_TRACE(bad);
    put("summary.csv", sum);
    edit("summary.csv", row, "\n0.5,1,var_ratio,down,0.5,4,$1," + (bad == "1,5" ? "\"1,5\"" : bad) + ",");
    expect_refused({"summary.csv line 3, column last_mean: ", "expected a number, inf, -inf or nothing"});
  }
  // What the writer may write there is read.
  for (const std::string good : {"", "inf", "-inf", "5e-324", "-1.5e+300", "0"}) {
    SCOPED_TRACE(good);
    put("summary.csv", sum);
    edit("summary.csv", row, "\n0.5,1,var_ratio,down,0.5,4,$1," + good + ",");
    EXPECT_NO_THROW(write_report(dir_.string()));
  }
  // The threshold and the real samples are finite; counts and generations are whole.
  put("summary.csv", sum);
  edit("summary.csv", "\n0.5,1,var_ratio,down,0.5,", "\n0.5,1,var_ratio,down,inf,");
  expect_refused({"summary.csv line 3, column threshold: \"inf\", expected a number"});
  put("summary.csv", sum);
  edit("summary.csv", ",8,0,([0-9.e+]+)\n$", ",8.0,0,$1\n");
  expect_refused({"summary.csv line 3, column chains: \"8.0\", expected a whole number from 0 to 8"});
  put("summary.csv", sum);
  edit("summary.csv", ",8,0,([0-9.e+]+)\n$", ",8,0,-1\n");
  expect_refused({"summary.csv line 3, column real_samples: \"-1\", expected a number at least 0"});
  put("summary.csv", sum);
  edit("summary.csv", "\n0.5,1,var_ratio,down,0.5,4,[0-9]*,", "\n0.5,1,var_ratio,down,0.5,4,5,");
  expect_refused({"column collapse_generation: \"5\", expected a whole number from 0 to 4"});
  put("summary.csv", sum);
  edit("early_warning.csv", ",first,2,0.2,", ",first,2,nan,");
  expect_refused({"early_warning.csv line 2, column target_false_alarm"});
}

TEST_F(Report, EveryPointOfTheManifestHasOneSummaryRow) {
  const std::string sum = file("summary.csv");
  edit("summary.csv", "\n0.5,1,", "\n0.5,0,");
  expect_refused({"summary.csv line 3: point 0 again (first on line 2)"});
  put("summary.csv", sum);
  edit("summary.csv", "\n0.5,1,", "\n0.5,2,");
  expect_refused(
      {"summary.csv line 3, column point: \"2\", expected a whole number from 0 to 1 (manifest.json lists 2 points)"});
  // A row of another run's point: its swept value is not the manifest's.
  put("summary.csv", sum);
  edit("summary.csv", "\n0.5,1,", "\n0.25,1,");
  expect_refused(
      {"summary.csv line 3, column data.real_fraction: \"0.25\", expected \"0.5\" (manifest.json, points[1])"});
  put("summary.csv", sum);
  edit("summary.csv", "\n0.5,1,var_ratio,down,0.5,", "\n0.5,1,var_ratio,down,0.4,");
  expect_refused({"summary.csv line 3, column threshold: \"0.4\", expected \"0.5\" as on line 2"});
  put("summary.csv", sum);
  edit("summary.csv", ",8,0,([0-9.e+]+)\n$", ",7,0,$1\n");
  expect_refused({"summary.csv line 3: chains 7 and degenerate_chains 0 add up to 7, expected 8"});
}

TEST_F(Report, EveryChainOfEveryPointHasOneRow) {
  edit("summary_chains.csv", "\n0,0,3,", "\n0,0,2,");
  expect_refused({"summary_chains.csv line 5: point 0 chain 2 again (first on line 4)"});
  put("summary_chains.csv", slurp(root_ / "run" / "summary_chains.csv"));
  edit("summary_chains.csv", "\n0,0,3,", "\n0,0,8,");
  expect_refused({"summary_chains.csv line 5, column chain: \"8\", expected a whole number from 0 to 7"});
  put("summary_chains.csv", slurp(root_ / "run" / "summary_chains.csv"));
  edit("summary_chains.csv", "\n0,0,3,", "\n0.5,0,3,");
  expect_refused({"summary_chains.csv line 5, column data.real_fraction: \"0.5\", expected \"0\" (summary.csv line 2"});
  // A chain without a last value that summary.csv does not count as degenerate.
  put("summary_chains.csv", slurp(root_ / "run" / "summary_chains.csv"));
  edit("summary_chains.csv", "\n0,0,3,[^,]*,", "\n0,0,3,,");
  expect_refused({"point 0 has 1 chains without a last value, summary.csv line 2 says degenerate_chains 0"});
}

TEST_F(Report, TheManifestIsChecked) {
  const std::string m = file("manifest.json");
  put("manifest.json", "[1, 2]");
  expect_refused({"manifest.json: expected a JSON object, found array"});
  put("manifest.json", m);
  edit("manifest.json", R"("points": \[)", R"("points_": [)");
  expect_refused({"manifest.json has no \"points\" list"});
  // A point's chain count, when the manifest's points lack it, is the config's.
  put("manifest.json", m);
  for (int k = 0; k < 2; ++k) edit("manifest.json", R"(\n      "chains": 8,)", "");
  EXPECT_NO_THROW(write_report(dir_.string()));
  edit("manifest.json", R"(\n    "chains": 8,)", "");
  expect_refused({"manifest.json: points[0] has no chain count"});
}

TEST_F(Report, EarlyWarningRowsForEveryPointWhenTheConfigAsksForThem) {
  const std::string ew = file("early_warning.csv");
  fs::remove(dir_ / "early_warning.csv");
  expect_refused({"early_warning.csv is missing (the run's config has an early_warning section)"});
  // One detector's row of point 1 gone.
  std::string cut = ew;
  cut.erase(cut.rfind('\n', cut.size() - 2) + 1);
  put("early_warning.csv", cut);
  expect_refused({"early_warning.csv line 5: point 1's detectors are"});
  // A file left by an earlier run in a folder reused with --force, when this run has no early warning: not read.
  put("early_warning.csv", "not, this run's\n");
  edit("manifest.json", R"("early_warning": \{)", R"("early_warning_off": {)");
  const std::string md = write_report(dir_.string());
  EXPECT_EQ(md.find("## Early warning"), std::string::npos);
}

// Quoted fields (a swept value with a comma or quote) read back as written; a
// quote anywhere else is damage.
TEST(ReportCsv, QuotedFieldsAndStrayQuotes) {
  const fs::path dir = temp_dir("report_quoted");
  std::ofstream(dir / "manifest.json") << R"({"status": "complete", "backend": "cpu", "config": {"name": "q"},)"
                                       << R"( "points": [{"chains": 2, "point": {"case": "a, \"b\""}}]})";
  const std::string sum =
      "case,point,metric,direction,threshold,generations,collapse_generation,last_mean,last_lo,last_hi,auc_mean,"
      "auc_lo,auc_hi,chains,degenerate_chains,real_samples\n\"a, \"\"b\"\"\",0,kl,up,1,3,,0.5,0.4,0.6,1,1,1,2,0,30\n";
  std::ofstream(dir / "summary.csv") << sum;
  std::ofstream(dir / "summary_chains.csv") << "case,point,chain,last,auc\n\"a, \"\"b\"\"\",0,0,0.4,1\n"
                                            << "\"a, \"\"b\"\"\",0,1,0.6,1\n";
  const std::string md = write_report(dir.string());
  EXPECT_NE(md.find("| 1 | a, \"b\" |"), std::string::npos) << md;
  for (const auto& [bad, expect] : std::vector<std::pair<std::string, std::string>>{
           {"x\"y\",0,", "line 2: a quote inside an unquoted field"},
           {"\"a, \"\"b\"\"\"z,0,", "line 2: \"z\" after a quoted field"},
           {"\"a, \"\"b\"\"\",0,kl,up,1,3,,0.5,0.4,0.6,1,1,1,2,0,30\n\"open,1,",
            "line 3: a quoted field is never closed"}}) {
    std::ofstream(dir / "summary.csv", std::ios::trunc) << sum.substr(0, sum.find('\n') + 1) << bad << "\n";
    try {
      write_report(dir.string());
      ADD_FAILURE() << "accepted " << bad;
    } catch (const RunFolderError& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
  }
  fs::remove_all(dir);
}

// report.md is replaced, not rewritten in place: a reader holding the old
// file (here a second link to it) keeps the old report whole, and a refused
// folder leaves the old report as it was.
TEST_F(Report, TheReportIsReplacedAtomically) {
  put("report.md", "an earlier report\n");
  fs::create_hard_link(dir_ / "report.md", dir_ / "earlier.md");
  const Result r = run("report " + dir_.string());
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string md = file("report.md");
  EXPECT_NE(md.find("# Report: checked"), std::string::npos) << md;
  EXPECT_EQ(file("earlier.md"), "an earlier report\n");
  EXPECT_FALSE(fs::exists(dir_ / "report.md.tmp"));
  const std::string s = file("summary.csv");
  put("summary.csv", s.substr(0, s.size() - 1));
  EXPECT_NE(run("report " + dir_.string()).code, 0);
  EXPECT_EQ(file("report.md"), md);
}

}  // namespace
