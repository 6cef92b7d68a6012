// Test support for statistical oracles: a metric's mean over chains against its closed form, with a planted bug
// whose curve the check must be able to tell apart, and the engine's theory column against the same closed form.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/backend_test.h"

namespace ouro::test {

// Checks metric `name` of `c` against theory(t) at `gens` (|z| < z_max; a metric with the same value in every chain
// must equal it), and that the planted bug's curve bug(t) lies more than 2 z_max standard errors from theory(t) at
// some checked generation, so that an engine with the bug would fail.
inline void check_oracle(const FamilyCurves& c, const std::string& name, const std::vector<int>& gens,
                         const std::function<double(int)>& theory, const std::function<double(int)>& bug,
                         const char* bug_name, double z_max) {
  double power = 0.0;
  for (int t : gens) {
    const Summary& s = c.at(t, name);
    if (s.se == 0.0) {
      EXPECT_EQ(s.mean, theory(t)) << name << " generation " << t;
      continue;
    }
    EXPECT_LT(std::abs(zscore(s, theory(t))), z_max)
        << name << " generation " << t << ": mean " << s.mean << " se " << s.se << " theory " << theory(t);
    power = std::max(power, std::abs(theory(t) - bug(t)) / s.se);
  }
  EXPECT_GT(power, 2 * z_max) << "the test cannot tell the planted bug (" << bug_name << ") from correct code";
}

// The engine's theory column agrees with the closed form the test states, to relative `rel` (the column is what the
// plots overlay).
inline void check_theory_column(const FamilyCurves& c, const std::string& name, const std::vector<int>& gens,
                                const std::function<double(int)>& theory, double rel = 1e-12) {
  for (int t : gens) {
    const std::optional<double> th = ouro::theory(c.config, c.metric(name), t);
    ASSERT_TRUE(th.has_value()) << name << " generation " << t;
    EXPECT_NEAR(*th, theory(t), rel * std::abs(theory(t))) << name << " generation " << t;
  }
}

}  // namespace ouro::test
