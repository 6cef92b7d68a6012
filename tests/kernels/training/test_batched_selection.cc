// BatchedSelection takes the same positions as Selection, in the same order, for pools and takes of every size
// around its batch of 64 uniforms.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/training/batched_selection.h"
#include "kernels/training/regime.h"

namespace {

using namespace ouro::kernels;

TEST(BatchedSelection, TakesSelectionsPositions) {
  for (std::int64_t total : {1, 2, 63, 64, 65, 130, 1000, 100000})
    for (std::int64_t take : {std::int64_t{1}, total / 3 + 1, total}) {
      for (std::uint32_t chain : {0u, 17u}) {
        std::vector<std::int64_t> want, got;
        for_each_selected(5u, chain, 9u, total, take, [&](std::int64_t j) { want.push_back(j); });
        BatchedSelection sel{5u, chain, 9u, total, take};
        for (std::int64_t j = 0; !sel.done(); ++j)
          if (sel.next()) got.push_back(j);
        ASSERT_EQ(got, want) << "total " << total << " take " << take << " chain " << chain;
        ASSERT_EQ(static_cast<std::int64_t>(got.size()), take);
      }
    }
}

}  // namespace
