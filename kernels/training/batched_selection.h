// Selection (kernels/training/regime.h) on the cpu with its uniforms drawn in vectorised batches: the same
// decisions, bit for bit (tests/kernels/training/test_batched_selection.cc), at a fraction of the cost. Algorithm S
// draws one uniform per pool position, so for a pool of t generations of n points each generation's subsample
// costs t n uniforms: the Philox blocks behind them dominate accumulate_subsample's cost, and here 64 of them are
// made at a time (philox_blocks) instead of one by one. Host only.
#pragma once

#include <cstdint>

#include "kernels/core/philox_batch.h"
#include "kernels/core/rng.h"

namespace ouro::kernels {

class BatchedSelection {
 public:
  BatchedSelection(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation, std::int64_t total,
                   std::int64_t needed)
      : keys_(seed, chain), generation_(generation), total_(total), needed_(needed) {}

  bool done() const { return needed_ == 0 || j_ >= total_; }

  // Decides position j (in increasing order): taken with probability (still needed) / (total - j).
  bool next() {
    if (j_ >= filled_) fill();
    const double u = uniforms_[j_ - first_];
    const bool take = static_cast<double>(total_ - j_) * u < static_cast<double>(needed_);
    needed_ -= take ? 1 : 0;
    ++j_;
    return take;
  }

 private:
  static constexpr int kBlocks = 32;  // two uniforms per block

  // Uniforms j_ .. j_ + 63 of the subsample stream (as subsample_uniform: uniform j is words 0, 1 of block j / 2
  // for even j, words 2, 3 for odd j).
  void fill() {
    alignas(64) std::uint64_t index[kBlocks], w0[kBlocks], w1[kBlocks], w2[kBlocks], w3[kBlocks];
    first_ = j_ & ~static_cast<std::int64_t>(1);
    const auto b0 = static_cast<std::uint64_t>(first_ >> 1);
    for (int b = 0; b < kBlocks; ++b) index[b] = b0 + static_cast<std::uint64_t>(b);
    rng::philox_blocks<kBlocks>(index, 0, rng::kStreamSubsample, generation_, keys_, w0, w1, w2, w3);
    for (int b = 0; b < kBlocks; ++b) {
      uniforms_[2 * b] = rng::u01_open_words(w0[b], w1[b]);
      uniforms_[2 * b + 1] = rng::u01_open_words(w2[b], w3[b]);
    }
    filled_ = first_ + 2 * kBlocks;
  }

  rng::PhiloxKeys keys_;
  std::uint32_t generation_;
  std::int64_t total_, needed_, j_ = 0, first_ = 0, filled_ = 0;
  double uniforms_[2 * kBlocks];
};

}  // namespace ouro::kernels
