#include "sim/families/family.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "sim/engine/config.h"

namespace ouro {

const char* kind_name(FamilyKind k) {
  switch (k) {
    case FamilyKind::kContinuous:
      return "continuous";
    case FamilyKind::kText:
      return "text";
    case FamilyKind::kLabelled:
      return "labelled";
  }
  return "";
}

const char* direction_name(Direction d) { return d == Direction::kDown ? "down" : d == Direction::kUp ? "up" : ""; }

const char* data_option_key(DataOption o) {
  switch (o) {
    case DataOption::kEstimatorWeight:
      return "data.estimator_weight";
    case DataOption::kVerifier:
      return "data.verifier";
    case DataOption::kTailUpsample:
      return "data.tail_upsample";
    case DataOption::kAgeDecay:
      return "data.age_decay";
    case DataOption::kDedup:
      return "data.dedup";
    case DataOption::kDedupGrid:
      return "data.dedup_resolution";
  }
  return "";
}

bool BackendSupport::offers(DataOption o) const {
  return std::find(options.begin(), options.end(), o) != options.end();
}

bool uses(const PointConfig& c, DataOption o) {
  switch (o) {
    case DataOption::kEstimatorWeight:
      return c.estimator_weight >= 0.0;
    case DataOption::kVerifier:
      return c.verifier;
    case DataOption::kTailUpsample:
      return c.tail_upsample && c.tail_factor != 1.0;  // a factor of 1 changes nothing
    case DataOption::kAgeDecay:
      return c.age_decay != 1.0;
    case DataOption::kDedup:
      return c.dedup;
    case DataOption::kDedupGrid:
      return c.dedup && c.dedup_resolution > 0.0;
  }
  return false;
}

int Family::min_samples(const PointConfig&) const { return 2; }

void Family::check(const PointConfig&) const {}

std::vector<std::string> Family::metric_names(const PointConfig&) const {
  std::vector<std::string> names;
  for (const auto& m : metrics()) names.emplace_back(m.name);
  return names;
}

bool Family::writes(const PointConfig& c, const std::string& metric) const {
  if (metric == "draws_per_kept") return uses(c, DataOption::kVerifier) || uses(c, DataOption::kDedup);
  return true;
}

std::vector<std::string> Family::input_files(const PointConfig&) const { return {}; }

std::optional<double> Family::theory(const PointConfig&, int, int) const { return std::nullopt; }

int Family::point_dim(const PointConfig& c) const {
  if (!has_points()) return 0;
  return make_run(c, "cpu", 1, ChainBlock{0, 1})->point_dim();
}

std::string Family::backend_gap(const PointConfig& c, const std::string& backend) const {
  const BackendSupport s = support(backend);
  if (!s.runs) return fmt::format("the {} family", name());
  for (DataOption o : {DataOption::kDedup, DataOption::kVerifier, DataOption::kTailUpsample, DataOption::kAgeDecay,
                       DataOption::kEstimatorWeight, DataOption::kDedupGrid})
    if (uses(c, o) && !s.offers(o)) return data_option_key(o);
  return "";
}

namespace {

std::vector<const Family*>& table() {
  static std::vector<const Family*> t = builtin_families();
  return t;
}

// Whether `name` is metric m's name, or one of its per-component names (name_1, name_2, ...).
bool names_metric(const MetricSpec& m, const std::string& name) {
  const std::string own = m.name;
  if (!m.per_component) return name == own;
  const std::string prefix = own.substr(0, own.size() - 1);  // "component_std_k" -> "component_std_"
  return name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
         std::all_of(name.begin() + prefix.size(), name.end(), [](char ch) { return std::isdigit(ch) != 0; });
}

std::optional<MetricSpec> metric_by_name(const std::string& name) {
  for (const Family* f : family_table())
    for (const auto& m : f->metrics())
      if (names_metric(m, name)) return m;
  return std::nullopt;
}

}  // namespace

const std::vector<const Family*>& family_table() { return table(); }

const Family* find_family(const std::string& name) {
  for (const Family* f : family_table())
    if (name == f->name()) return f;
  return nullptr;
}

void register_family(const Family& f) {
  if (find_family(f.name()) == nullptr) table().push_back(&f);
}

std::vector<std::string> metric_names(const PointConfig& c) { return c.family->metric_names(c); }

std::vector<int> written_metrics(const PointConfig& c) {
  const std::vector<std::string> names = metric_names(c);
  std::vector<int> slots;
  for (std::size_t m = 0; m < names.size(); ++m)
    if (c.family->writes(c, names[m])) slots.push_back(static_cast<int>(m));
  return slots;
}

std::vector<std::string> written_metric_names(const PointConfig& c) {
  const std::vector<std::string> names = metric_names(c);
  std::vector<std::string> written;
  for (int m : written_metrics(c)) written.push_back(names[m]);
  return written;
}

std::optional<double> theory(const PointConfig& c, int metric, int generation) {
  // The closed forms assume fresh real data; reused real points are another process (no theory column beyond
  // generation 1).
  if (c.real_source == kernels::RealSource::kFixed && c.real_count > 0 && generation > 1) return std::nullopt;
  // Nor do they cover a weighted mean.
  if (c.estimator_weight >= 0.0 && c.real_count > 0 && c.real_count < c.samples && generation > 1) return std::nullopt;
  return c.family->theory(c, metric, generation);
}

double estimate_point_bytes(const PointConfig& c) { return c.family->point_bytes(c); }

std::unique_ptr<FamilyRun> make_family_run(const PointConfig& c, const std::string& backend, int threads,
                                           ChainBlock block) {
  return c.family->make_run(c, backend, threads, block);
}

Direction collapse_direction(const std::string& metric) {
  const auto m = metric_by_name(metric);
  return m ? m->direction : Direction::kNone;
}

bool truth_ratio(const std::string& metric) {
  const auto m = metric_by_name(metric);
  return m && m->truth_ratio;
}

}  // namespace ouro
