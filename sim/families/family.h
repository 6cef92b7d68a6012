// The family table. A model family (the Gaussian, the Gaussian mixture, the n-gram language model, ...) is one row:
// its kind, its config keys and how it reads them, its metrics with their definitions and theory column, its memory
// estimate, its backends and what each runs, its default summary metric and its early-warning statistics. The loop,
// the config reader, the summary, the report, early warning and the CLI ask the table through this interface and
// never compare a family's name.
//
// Adding a family (ARCHITECTURE.md has the checklist): a folder under kernels/ for its math and backends, a folder
// under sim/families/ whose file defines a Family, one line in sim/families/family_table.cc, its tests and its
// sources in CMake. A family defined elsewhere (the test suite's own) joins the table with register_family().
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/core/chain_backend.h"
#include "sim/io/config_keys.h"

namespace ouro {

struct PointConfig;  // sim/engine/config.h
class ConfigReader;  // sim/io/yaml_reader.h

// What a family models: points in R^d, sentences of tokens, or labelled pairs (x, y).
enum class FamilyKind { kContinuous, kText, kLabelled };
const char* kind_name(FamilyKind k);

// Which way a metric moves as a model collapses.
enum class Direction { kNone, kDown, kUp };
const char* direction_name(Direction d);  // "down", "up", ""

// One metric of a family. Families list theirs in arrays indexed by the kernels' metric enum, and check the order
// at compile time with metrics_in_enum_order().
struct MetricSpec {
  int id;  // the kernels' enum value: the metric's row in a backend's [metric][chain] block (for the entries after a
           // per-component one, which spans K rows, its position in the table: the family places their rows)
  const char* name;        // metrics.csv's name; a name means the same thing in every family
  const char* definition;  // one line
  Direction direction;
  // A ratio to the truth's own value (1 at generation 0): the report ranks it by |ln value|, since a value far
  // above 1 is no closer to the truth than one far below.
  bool truth_ratio;
  const char* theory;  // where the theory column has an exact expectation ("" where it has none)
  // One column per model component, name_1 .. name_K (the name is written with a trailing "_k").
  bool per_component = false;
  // When metrics.csv has the metric ("" : always). A metric that cannot apply to a configuration (a closed-form
  // comparison with a truth that has no closed form, a filter's statistic without the filter) is not written.
  const char* written = "";
};

template <std::size_t N>
constexpr bool metrics_in_enum_order(const MetricSpec (&m)[N]) {
  for (std::size_t i = 0; i < N; ++i)
    if (m[i].id != static_cast<int>(i)) return false;
  return true;
}

// One early-warning detector of a family (sim/analysis/early_warning.h): which observable metric it reads and how
// its score (the move towards collapse from the baseline) is formed.
struct DetectorSpec {
  std::string name;    // diversity | canary | entropy
  std::string metric;  // the metrics.csv column it reads
  // score = sign * (f(x_t) - f(x_ref)), f = scale * ln x (log) or x (linear).
  bool log = false;
  double scale = 1.0;
  double sign = 1.0;
  std::string units;  // of the score and so of the threshold
};

// summary: {metric, threshold}: the metric and threshold of summary.csv's collapse_generation
// (sim/analysis/summary.h).
struct SummarySettings {
  std::string metric;
  double threshold = 0.0;
};

// The data options (strategies) of the `data:` section that a family may or may not offer.
enum class DataOption {
  kEstimatorWeight,  // data.estimator_weight
  kVerifier,         // data.verifier
  kTailUpsample,     // data.tail_upsample
  kAgeDecay,         // data.age_decay
  kDedup,            // data.dedup
  kDedupGrid,        // data.dedup_resolution: dedup of continuous points on a grid
};
const char* data_option_key(DataOption o);  // its config key, "data.verifier"

// What one backend of a family runs.
struct BackendSupport {
  bool runs = false;                // the family has this backend
  std::vector<DataOption> options;  // the data options it runs (every regime unless backend_gap says otherwise)
  bool offers(DataOption o) const;
};

// A family's own settings (the keys it reads), held by PointConfig; each family derives its own struct.
struct FamilySettings {
  virtual ~FamilySettings() = default;
};

// A block of a point's chains, global ids [first, first + count): what one MPI rank runs, or one memory batch of
// it. The ids key the random streams, so a chain's values do not depend on which block ran it.
struct ChainBlock {
  std::int64_t first = 0;
  std::int64_t count = 0;
};

// One sweep point's chains of one family, resident on one backend for all generations.
using FamilyRun = kernels::ChainBackend;

class Family {
 public:
  virtual ~Family() = default;

  virtual const char* name() const = 0;  // model.family
  virtual FamilyKind kind() const = 0;
  virtual const char* description() const = 0;  // one line

  // ---- config
  // The family's own keys (model.*, truth.*, sampler.*, metrics.*), in the order the docs list them.
  virtual const std::vector<KeySpec>& keys() const = 0;
  // Reads and checks the family's keys. c holds the keys every config has (name, seed, chains, generations) but
  // not yet the data section.
  virtual std::shared_ptr<const FamilySettings> read(const ConfigReader& r, const PointConfig& c) const = 0;
  // The fewest new points per generation its fit needs.
  virtual int min_samples(const PointConfig& c) const;
  // Checks that need the data section too (ConfigError); after read().
  virtual void check(const PointConfig& c) const;
  // The files the point reads (a corpus), by absolute path: their content is hashed into manifest.json and
  // checkpoints, and `resume` refuses to go on when one has changed.
  virtual std::vector<std::string> input_files(const PointConfig& c) const;

  // ---- metrics
  virtual std::vector<MetricSpec> metrics() const = 0;  // in metrics.csv order
  // The point's metric names (a per-component metric gives one name per component).
  virtual std::vector<std::string> metric_names(const PointConfig& c) const;
  // Whether the point's outputs have the metric (by its name in metric_names()): MetricSpec::written says when. By
  // default every metric but draws_per_kept without data.verifier or data.dedup.
  virtual bool writes(const PointConfig& c, const std::string& metric) const;
  // E[metric at generation t] where an exact closed form is known (the theory column), else nothing.
  virtual std::optional<double> theory(const PointConfig& c, int metric, int generation) const;
  virtual SummarySettings default_summary() const = 0;
  virtual std::vector<DetectorSpec> detectors() const = 0;  // every detector it offers, in a fixed order

  // ---- running
  // Memory one sweep point needs on a backend (its state, model history, scratch, the metric block), in bytes.
  virtual double point_bytes(const PointConfig& c) const = 0;
  virtual BackendSupport support(const std::string& backend) const = 0;
  // What of the point the backend does not run ("" when it runs all of it); by default from support().
  virtual std::string backend_gap(const PointConfig& c, const std::string& backend) const;
  // backend: "cpu" or "cuda" (resolved); threads: cpu OpenMP threads, 0 = all.
  virtual std::unique_ptr<FamilyRun> make_run(const PointConfig& c, const std::string& backend, int threads,
                                              ChainBlock block) const = 0;

  // ---- points
  // Whether the family's models draw points in R^d (FamilyRun::model_sample): plot.scatter is refused for a family
  // without (sentences of tokens have no coordinates to draw).
  virtual bool has_points() const { return false; }
  // The dimension of the point's points, 0 without; by default asked of a one-chain cpu run of the point
  // (FamilyRun::point_dim), which a family may answer without building one.
  virtual int point_dim(const PointConfig& c) const;
};

// The table: the built-in families, then any registered.
const std::vector<const Family*>& family_table();
// The built-in families alone (sim/families/family_table.cc): what docs/config.md describes.
std::vector<const Family*> builtin_families();
// The family of that name, or nullptr.
const Family* find_family(const std::string& name);
// Adds a family defined outside sim/families/ (the test suite's); it must outlive every use of the table.
void register_family(const Family& f);

// Whether a point uses a data option (a verifier, dedup, ...).
bool uses(const PointConfig& c, DataOption o);

// ---- what the loop and the analyses ask of a point, through its family

// Every metric the point's backend computes, in its [metric][chain] block's order.
std::vector<std::string> metric_names(const PointConfig& c);
// The positions in metric_names(c) of the metrics the point writes (Family::writes), in order, and their names.
std::vector<int> written_metrics(const PointConfig& c);
std::vector<std::string> written_metric_names(const PointConfig& c);
// The theory column: the family's closed form, where its assumptions hold (fresh real data, no weighted mean).
std::optional<double> theory(const PointConfig& c, int metric, int generation);
double estimate_point_bytes(const PointConfig& c);
std::unique_ptr<FamilyRun> make_family_run(const PointConfig& c, const std::string& backend, int threads,
                                           ChainBlock block);

// A metric's collapse direction and whether it is a ratio to the truth, by name (the same in every family that has
// the name); kNone and false for a name no family has.
Direction collapse_direction(const std::string& metric);
bool truth_ratio(const std::string& metric);

}  // namespace ouro
