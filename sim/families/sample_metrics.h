// The sample-based metrics (kernels/core/sample_metrics.h: precision, recall, coverage, energy) in the continuous
// families: the key that asks for them, its reading and size checks, and their rows of a family's metric table.
// Shared by every family whose points lie in R^d, so that the names, definitions and refusals are the same in each.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/core/sample_metrics.h"
#include "sim/families/family.h"
#include "sim/io/config_keys.h"

namespace ouro {

class ConfigReader;  // sim/io/yaml_reader.h

inline constexpr const char* kSampleBasedKey = "metrics.sample_based";
// The largest held-out set the sample-based metrics take (10^5 points: 10^10 distances for its radii, about 20 s).
inline constexpr std::int64_t kSampleBasedMaxHeldout = 100000;

// metrics.sample_based: a list of precision | recall | coverage | energy, default [] (none).
KeySpec sample_based_key();

// The metrics a config lists under metrics.sample_based, as a mask (bit k for kernels::SampleMetric k). A value that
// is not a list of distinct metric names is refused with a ConfigError naming the key (or the list element).
unsigned read_sample_based(const ConfigReader& r);

// The fewest points each side (the model sample, the held-out set) needs for the metrics of `mask`: k + 1 for
// precision, recall and coverage (k other points to measure a radius by), 2 for energy (a pair); 0 for none.
int sample_based_min_points(unsigned mask);

// Refuses a held-out set (heldout points, `heldout_key` naming its size) or model sample (data.samples points) too
// small for the metrics of `mask`, and a held-out set above kSampleBasedMaxHeldout with any of them.
void check_heldout_size(unsigned mask, std::int64_t heldout, const std::string& heldout_key);
void check_sample_size(unsigned mask, int samples);

// Which sample metric a metric name is (its kernels::SampleMetric), or -1.
int sample_metric_of(const std::string& name);

// The row of sample metric k (a kernels::SampleMetric) in a family's metric table, at the family's own enum id.
constexpr MetricSpec sample_metric_spec(int id, int k) {
  constexpr const char* kWritten = "with metrics.sample_based listing it";
  switch (k) {
    case kernels::kSamplePrecision:
      return {id,
              "precision",
              "share of the model's sample (data.samples points) inside the union of the held-out points' 5-NN balls "
              "(Kynkaanniemi et al. 2019)",
              Direction::kDown,
              false,
              "",
              false,
              kWritten};
    case kernels::kSampleRecall:
      return {id,
              "recall",
              "share of the held-out points inside the union of the model sample's 5-NN balls (Kynkaanniemi et al. "
              "2019)",
              Direction::kDown,
              false,
              "",
              false,
              kWritten};
    case kernels::kSampleCoverage:
      return {id,
              "coverage",
              "share of the held-out points whose 5-NN ball holds a point of the model's sample (Naeem et al. 2020)",
              Direction::kDown,
              false,
              "",
              false,
              kWritten};
    default:
      return {id,
              "energy",
              "squared energy distance between the model's sample and the held-out points, U-statistic (Szekely & "
              "Rizzo 2013)",
              Direction::kUp,
              false,
              "",
              false,
              kWritten};
  }
}

}  // namespace ouro
