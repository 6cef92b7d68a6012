// The Gaussian family's entries for sim/families/family.h.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sim/families/family.h"

namespace ouro {

const std::vector<std::string>& gaussian_metric_names();
double gaussian_point_bytes(const PointConfig& c);
std::unique_ptr<FamilyRun> make_gaussian_run(const PointConfig& c, const std::string& backend, int threads,
                                             ChainBlock block);

}  // namespace ouro
