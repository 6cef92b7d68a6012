// Facts for manifest.json: which ouroboros, built from which commit, against
// which libraries, on which CPU.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace ouro::provenance {

std::string version();     // OUROBOROS_VERSION from CMake
std::string git_commit();  // commit at configure time, "+dirty" if the tree had changes, or "unknown"
std::string cpu_model();   // from /proc/cpuinfo
nlohmann::json dependencies();

}  // namespace ouro::provenance
