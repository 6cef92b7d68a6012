// Reading a run folder from a test: its manifest, and two runs' tables compared byte for byte.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/cli.h"

namespace ouro::test {

inline nlohmann::json manifest_of(const fs::path& out) { return nlohmann::json::parse(slurp(out / "manifest.json")); }

// metrics.csv, per_chain.csv, the summaries, and early_warning.csv and scatter.csv where the runs have them, of two
// runs, byte for byte; scatter.csv only where `scatter_bytes` (memory batches and MPI ranks write its rows in another
// order, or other rows).
inline void expect_same_output(const fs::path& a, const fs::path& b, const std::string& what,
                               bool scatter_bytes = true) {
  const std::string ma = slurp(a / "metrics.csv"), pa = slurp(a / "per_chain.csv");
  ASSERT_GT(ma.size(), 500u) << what;
  EXPECT_TRUE(ma == slurp(b / "metrics.csv")) << what << ": metrics.csv differs";
  EXPECT_TRUE(pa == slurp(b / "per_chain.csv")) << what << ": per_chain.csv differs";
  for (const char* f : {"summary.csv", "summary_chains.csv"})
    EXPECT_TRUE(slurp(a / f) == slurp(b / f)) << what << ": " << f << " differs";
  EXPECT_EQ(fs::exists(a / "early_warning.csv"), fs::exists(b / "early_warning.csv")) << what;
  if (fs::exists(a / "early_warning.csv")) {
    EXPECT_TRUE(slurp(a / "early_warning.csv") == slurp(b / "early_warning.csv"))
        << what << ": early_warning.csv differs";
  }
  EXPECT_EQ(fs::exists(a / "scatter.csv"), fs::exists(b / "scatter.csv")) << what;
  if (scatter_bytes && fs::exists(a / "scatter.csv")) {
    EXPECT_TRUE(slurp(a / "scatter.csv") == slurp(b / "scatter.csv")) << what << ": scatter.csv differs";
  }
}

}  // namespace ouro::test
