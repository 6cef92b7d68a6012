#include "sim/io/provenance.h"

#include <fstream>

#include <fmt/format.h>
#include <CLI/Version.hpp>
#include <Eigen/Core>

#ifndef OUROBOROS_VERSION
#define OUROBOROS_VERSION "unknown"
#endif
#ifndef OUROBOROS_GIT_COMMIT
#define OUROBOROS_GIT_COMMIT "unknown"
#endif
#ifndef OUROBOROS_YAML_CPP_VERSION
#define OUROBOROS_YAML_CPP_VERSION "unknown"
#endif

namespace ouro::provenance {

std::string version() { return OUROBOROS_VERSION; }
std::string git_commit() { return OUROBOROS_GIT_COMMIT; }

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  return "unknown";
}

nlohmann::json dependencies() {
  return {
      {"compiler", __VERSION__},
      {"openmp", _OPENMP},
      {"eigen", fmt::format("{}.{}.{}", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION)},
      {"fmt", FMT_VERSION},
      {"nlohmann_json",
       fmt::format("{}.{}.{}", NLOHMANN_JSON_VERSION_MAJOR, NLOHMANN_JSON_VERSION_MINOR, NLOHMANN_JSON_VERSION_PATCH)},
      {"cli11", CLI11_VERSION},
      {"yaml_cpp", OUROBOROS_YAML_CPP_VERSION},
  };
}

}  // namespace ouro::provenance
