// Experiment configuration: the YAML file, its --set overrides and its sweep, validated into one typed PointConfig
// per sweep point before any work. The engine reads the keys every config has (common_keys(): the run's size, the
// data section and its strategies, plot, summary, early_warning); the point's family reads its own (the family
// table, sim/families/family.h).
//
// Every refusal is a ConfigError (sim/io/yaml_reader.h) naming the key's path and what was expected; the CLI turns
// it into exit code 2.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "kernels/training/regime.h"
#include "sim/families/family.h"
#include "sim/io/config_keys.h"
#include "sim/io/yaml_reader.h"

namespace ouro {

// One fully resolved, validated sweep point.
struct PointConfig {
  std::string name;
  std::uint32_t seed = 1;
  std::int64_t chains = 0;
  int generations = 0;
  const Family* family = nullptr;                         // model.family: its row of the table
  std::shared_ptr<const FamilySettings> family_settings;  // what the family read of its own keys
  // The family's settings as its own struct (std::bad_cast for another family's).
  template <class S>
  const S& settings() const {
    return dynamic_cast<const S&>(*family_settings);
  }

  // data: the training set of every generation.
  int samples = 0;
  kernels::Regime regime = kernels::Regime::kReplace;
  kernels::RealSource real_source = kernels::RealSource::kFresh;  // data.real_source
  double synthetic_cap = 1.0;      // data.synthetic_cap: at most this share of a generation's new points is synthetic
  double real_fraction = 0.0;      // effective: max(data.real_fraction, 1 - synthetic_cap)
  int real_count = 0;              // real points among a generation's new points: kernels::real_count()
  double estimator_weight = -1.0;  // data.estimator_weight; < 0: not set
  // data.verifier: keep a plausible synthetic candidate with probability keep_plausible, an implausible one with
  // keep_implausible; plausible = the truth's log-density at least its own verifier_quantile.
  bool verifier = false;
  double keep_plausible = 1.0, keep_implausible = 1.0, verifier_quantile = 0.0;
  int max_draw_factor = 10;  // data.max_draw_factor: candidate draws per needed point, at most
  // data.tail_upsample: synthetic points in the truth's tail set count tail_factor times in the fit (a continuous
  // family's tail is its lowest-density tail_quantile share).
  bool tail_upsample = false;
  double tail_factor = 1.0, tail_quantile = 0.0;
  bool dedup = false;             // data.dedup: drop repeated synthetic samples
  double dedup_resolution = 0.0;  // data.dedup_resolution: the grid continuous points are rounded to
  double age_decay = 1.0;         // data.age_decay (the pooling regimes): weight decay^k for data k generations old
};

struct SweepAxis {
  std::string path;                 // e.g. data.samples
  std::vector<std::string> labels;  // each value as written, for metrics.csv
};

struct SweepPoint {
  std::vector<std::string> labels;  // one per axis
  PointConfig config;
};

// early_warning: the detectors of sim/analysis/early_warning.h, calibrated per point.
struct EarlyWarningSettings {
  bool on = false;
  std::vector<std::string> detectors;  // empty: every detector of the family
  double false_alarm = 0.05;           // target false-alarm rate of the calibration
  int horizon = 5;                     // an alarm more than this many generations early is false
  double calibration_share = 0.5;      // chains [0, share * chains) calibrate, the rest evaluate
  bool previous = false;               // baseline: the previous generation (else generation 1)
};

// plot.scatter: the model samples of a few chains at chosen generations, written to scatter.csv and drawn beside the
// curves by scripts/plot_collapse.py. The chains are the ids among [0, chains) that rank 0 runs (every one of them
// without MPI).
struct ScatterSettings {
  bool on = false;
  int chains = 3;
  std::vector<int> generations;  // ascending
  int points = 500;              // per chain and generation
  bool at(int generation) const { return on && std::binary_search(generations.begin(), generations.end(), generation); }
};

struct Experiment {
  YAML::Node resolved;  // the config after --set, sweep included (for the manifest)
  std::vector<SweepAxis> axes;
  std::vector<SweepPoint> points;      // cross product, first axis slowest
  SummarySettings summary;             // not swept: one definition for every point
  EarlyWarningSettings early_warning;  // not swept either
  ScatterSettings scatter;             // nor this
};

// Called after each sweep point is validated: (points done, points in all).
using ValidationProgress = std::function<void(std::size_t done, std::size_t total)>;

// Loads, overrides and validates. `sets` are "path=value" strings; a value is parsed as YAML (so 0.5, replace and
// [1, 2] all work). They apply in order, each to the config as the ones before it left it:
// - a key (--set data.samples=30) sets it; a swept key is fixed, and its axis removed;
// - a mapping (--set "truth={isotropic: 2}") replaces it, and is refused where it holds a swept key (the sweep
//   would override part of what was set): set that key, or its axis, instead;
// - sweep.KEY (--set "sweep.data.samples=[10, 30]") replaces the axis KEY, or adds it as the last (fastest) one;
// - sweep (--set "sweep={data.samples: [10, 30]}") replaces the whole sweep; {} or null leaves none.
// A key given twice in one mapping, of the file or of a --set value, is refused. A relative path of a path-valued
// key (KeyType::kPath) is read against the config file's folder, one in a --set value against the current folder
// (where it was typed), and one in `yaml_text` against the current folder; Experiment::resolved holds them absolute.
// `progress`, when given, hears of every sweep point validated.
Experiment load_experiment(const std::string& path, const std::vector<std::string>& sets,
                           const ValidationProgress& progress = {});
Experiment load_experiment_text(const std::string& yaml_text, const std::vector<std::string>& sets,
                                const ValidationProgress& progress = {});

// A progress printer for load_experiment: when stderr is a terminal and validation has taken more than a second,
// "validated 2000/10000 sweep points" on one line of stderr, rewritten a few times a second. (One process of a
// run prints: pass it on rank 0 only.)
ValidationProgress terminal_progress();

// The keys every config has, whatever its family (the families' own: Family::keys()).
const std::vector<KeySpec>& common_keys();

const char* regime_name(kernels::Regime r);

}  // namespace ouro
