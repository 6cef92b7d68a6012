// Experiment configuration: the YAML file, its --set overrides and its sweep,
// validated into one typed PointConfig per sweep point before any work.
//
// Every refusal is a ConfigError naming the key's path and what was expected
// (and, for an unknown key, the nearest valid one); the CLI turns it into
// exit code 2.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "kernels/gaussian/gaussian.h"
#include "kernels/gmm/gmm.h"

namespace ouro {

class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& path, const std::string& what)
      : std::runtime_error(path.empty() ? what : path + ": " + what), path_(path) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One fully resolved, validated sweep point.
struct PointConfig {
  std::string name;
  std::uint32_t seed = 1;
  std::int64_t chains = 0;
  int generations = 0;
  std::string family;  // gaussian | gmm
  int dim = 1;
  // family gaussian
  kernels::Estimator estimator = kernels::Estimator::kMle;
  std::vector<double> truth_mean;  // dim
  std::vector<double> truth_cov;   // dim * dim, row-major, symmetric positive definite
  // family gmm
  int components = 0;  // K of the fitted mixtures
  kernels::EmSettings em{100, 1e-3, 1e-6, kernels::EmInit::kWarm, 1, false};
  std::vector<double> truth_weights;  // K0, summing to 1
  std::vector<double> truth_means;    // K0 * dim
  std::vector<double> truth_covs;     // K0 * dim * dim, each symmetric positive definite
  int heldout = 1000;                 // metrics.heldout: points (gmm) or tokens (ngram, zipf) held out
  double dead_weight = 1e-3;          // metrics.dead_weight
  // family ngram
  int order = 1;
  std::string smoothing = "mle";  // mle | add_k | kneser_ney
  double add_k = 1.0;             // model.k
  double discount = 0.75;         // model.discount
  double temperature = 1.0;       // sampler
  int top_k = 0;
  double top_p = 1.0;
  std::string corpus;          // truth.corpus: kjv or a path ("" for a zipf truth)
  int zipf_vocab = 0;          // truth.zipf.vocab
  double zipf_exponent = 0.0;  // truth.zipf.exponent
  int tail_count = 5;          // metrics.tail_count
  double tail_share = 0.1;     // metrics.tail_share
  int samples = 0;
  kernels::Regime regime = kernels::Regime::kReplace;
  kernels::RealSource real_source = kernels::RealSource::kFresh;  // data.real_source
  double synthetic_cap = 1.0;      // data.synthetic_cap: at most this share of a generation's new points is synthetic
  double real_fraction = 0.0;      // effective: max(data.real_fraction, 1 - synthetic_cap)
  double estimator_weight = -1.0;  // data.estimator_weight (gaussian, replace); < 0: not set
  // data.verifier (gaussian, replace): keep a plausible synthetic candidate
  // with probability keep_plausible, an implausible one with keep_implausible;
  // plausible = the truth's log-density at least its own verifier_quantile.
  bool verifier = false;
  double keep_plausible = 1.0, keep_implausible = 1.0, verifier_quantile = 0.0;
  int max_draw_factor = 10;  // data.max_draw_factor: candidate draws per needed point, at most
  // data.tail_upsample (every family and regime): synthetic points in the truth's
  // lowest-density tail_quantile share count tail_factor times in the fit.
  bool tail_upsample = false;
  double tail_factor = 1.0, tail_quantile = 0.0;
  bool dedup = false;             // data.dedup (ngram, corpus truths; gaussian, gmm): drop repeated synthetic samples
  double dedup_resolution = 0.0;  // data.dedup_resolution (gaussian, gmm): the grid continuous points are rounded to
  double age_decay = 1.0;         // data.age_decay (the pooling regimes): weight decay^k for data k generations old
  int real_count = 0;             // round(real_fraction * samples), half away from zero
};

struct SweepAxis {
  std::string path;                 // e.g. data.samples
  std::vector<std::string> labels;  // each value as written, for metrics.csv
};

struct SweepPoint {
  std::vector<std::string> labels;  // one per axis
  PointConfig config;
};

// summary: {metric, threshold}: the metric and threshold of summary.csv's
// collapse_generation (sim/analysis/summary.h); empty metric: the family's default.
struct SummarySettings {
  std::string metric;
  double threshold = 0.0;
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

struct Experiment {
  YAML::Node resolved;  // the config after --set, sweep included (for the manifest)
  std::vector<SweepAxis> axes;
  std::vector<SweepPoint> points;      // cross product, first axis slowest
  SummarySettings summary;             // not swept: one definition for every point
  EarlyWarningSettings early_warning;  // not swept either
};

// Loads, overrides and validates. `sets` are "path=value" strings; a value is
// parsed as YAML (so 0.5, replace and [1, 2] all work). A --set on a swept key
// fixes it and removes its axis.
Experiment load_experiment(const std::string& path, const std::vector<std::string>& sets);
Experiment load_experiment_text(const std::string& yaml_text, const std::vector<std::string>& sets);

const char* regime_name(kernels::Regime r);
const char* estimator_name(kernels::Estimator e);

}  // namespace ouro
