// libFuzzer target for the config parser, load_experiment_text (sim/engine/config.h).
//
// Input: a YAML document. Its lines of the form "#set key.path=value" are
// also passed as --set overrides, so the override path (YAML values parsed
// and grafted into the tree, axes un-swept) is fuzzed with the document;
// to YAML they are comments, so the document itself is unchanged.
//
// Refusing a config is the parser's job: ConfigError is the one expected
// failure. Any other exception escaping is reported as a finding (abort),
// and so is anything the sanitizers see.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include "sim/engine/config.h"

namespace fs = std::filesystem;

namespace {

fs::path fixture;

void remove_fixture() {
  std::error_code ec;
  fs::remove_all(fixture, ec);
}

// The number of points the document's sweep asks for (before --set lines
// un-sweep axes), 0 when the document or its sweep is not a well-formed
// mapping of lists (the parser's refusal then is what the input tests).
double sweep_points(const std::string& text) {
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap() || !root["sweep"] || !root["sweep"].IsMap()) return 0;
    double points = 1;
    for (const auto& kv : root["sweep"])
      if (kv.second.IsSequence()) points *= static_cast<double>(kv.second.size());
    return points;
  } catch (const YAML::Exception&) {
    return 0;
  }
}

}  // namespace

// truth.corpus: kjv reads $OUROBOROS_SOURCE_DIR/data/kjv.txt. The fuzzer
// points it at a private folder with a 20-verse stand-in, so the n-gram
// checks that follow the corpus (vocabulary size, tail set) are reached in
// microseconds and the run never depends on the real text being cached.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fixture = fs::temp_directory_path() / ("ouroboros-fuzz-config-" + std::to_string(::getpid()));
  fs::create_directories(fixture / "data");
  std::ofstream kjv(fixture / "data" / "kjv.txt", std::ios::binary);
  for (int v = 0; v < 20; ++v)
    kjv << "And God said, Let there be light: and there was light " << v % 7 << " of the lord's " << v << ".\n";
  kjv.close();
  setenv("OUROBOROS_SOURCE_DIR", fixture.c_str(), 1);
  std::atexit(remove_fixture);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> sets;
  static const std::string kSet = "#set ";
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    if (text.compare(pos, kSet.size(), kSet) == 0)
      sets.push_back(text.substr(pos + kSet.size(), eol - pos - kSet.size()));
    pos = eol + 1;
  }
  // A sweep the parser accepts costs time linear in its points (each point is
  // a copy of the tree, validated whole: about 0.4 ms in a Release build, ten
  // times that under the sanitizers), so a grown corpus of 10^4-point sweeps
  // would spend the fuzzer's budget re-validating one document. Such inputs
  // are left out (-1: not added to the corpus); sweeps of up to 64 points
  // exercise the same expansion, and sweeps over the 10^4 cap, refused before
  // they are expanded, are still run.
  const double points = sweep_points(text);
  if (points > 64 && points <= 10000) return -1;
  try {
    const ouro::Experiment ex = ouro::load_experiment_text(text, sets);
    // A config that is accepted has at least one point, each with a name,
    // positive counts and its family's settings (the run loop relies on it).
    if (ex.points.empty()) {
      std::fprintf(stderr, "fuzz_config: an accepted config with no sweep point\n");
      std::abort();
    }
    for (const auto& p : ex.points)
      if (p.config.chains < 1 || p.config.generations < 1 || p.config.samples < 2 ||
          p.labels.size() != ex.axes.size() || p.config.family == nullptr || p.config.family_settings == nullptr) {
        std::fprintf(stderr, "fuzz_config: an accepted point out of range\n");
        std::abort();
      }
    // plot.scatter: what the loop draws and writes (scatter.csv) is in range, and every point has each generation.
    const ouro::ScatterSettings& s = ex.scatter;
    if (s.on) {
      bool bad = s.chains < 1 || s.chains > 16 || s.points < 1 || s.points > 100000 || s.generations.empty() ||
                 s.generations.front() < 0 || !std::is_sorted(s.generations.begin(), s.generations.end()) ||
                 std::adjacent_find(s.generations.begin(), s.generations.end()) != s.generations.end();
      for (const auto& p : ex.points)
        bad = bad || !p.config.family->has_points() || s.generations.back() > p.config.generations;
      if (bad) {
        std::fprintf(stderr, "fuzz_config: accepted plot.scatter settings out of range\n");
        std::abort();
      }
    }
  } catch (const ouro::ConfigError&) {
    // The expected refusal.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_config: unexpected exception (not ConfigError): %s\n", e.what());
    std::abort();
  }
  return 0;
}
