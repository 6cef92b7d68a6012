// The run-wide checks of an experiment's config (sim/engine/config.h): the sections that hold one definition for
// every sweep point (plot, summary, early_warning), read once the points are expanded and each validated, and
// checked against them all. Internal to load_experiment (config.cc).
#pragma once

#include "sim/engine/config.h"

namespace ouro {
namespace config_detail {

// plot: its metrics are written for some point of the experiment.
void check_plot(const ConfigReader& r, const Experiment& ex);

// plot.scatter: fills Experiment::scatter when the section is there.
void check_scatter(const ConfigReader& r, Experiment& ex);

// summary: fills Experiment::summary (the family's default when absent).
void check_summary(const ConfigReader& r, Experiment& ex);

// early_warning: fills Experiment::early_warning when the section is there.
void check_early_warning(const ConfigReader& r, Experiment& ex);

}  // namespace config_detail
}  // namespace ouro
