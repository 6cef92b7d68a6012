#include "sim/analysis/aggregate.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace ouro {

namespace {

// Order-preserving map of a non-NaN double to an unsigned integer.
std::uint64_t sort_key(double x) {
  std::uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return (b >> 63) ? ~b : (b | (1ull << 63));
}

double from_key(std::uint64_t k) {
  const std::uint64_t b = (k >> 63) ? (k & ~(1ull << 63)) : ~k;
  double x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

// The elements of ranks `ranks` (ascending, relative to `keys`) by MSD radix
// selection on 11-bit digits whose lowest bit is `shift`: a histogram per
// level, one pass that gathers the buckets holding a wanted
// rank, recursion into those only. Linear time, exact, and insensitive to
// ties and heavy tails (where introselect slows down).
void radix_select(std::vector<std::uint64_t>& keys, int shift, const std::size_t* ranks, std::uint64_t* out, int m,
                  int depth = 0) {
  constexpr int kBits = 11, kBuckets = 1 << kBits;
  if (keys.size() <= 48 || shift <= -kBits) {
    std::sort(keys.begin(), keys.end());
    for (int i = 0; i < m; ++i) out[i] = keys[ranks[i]];
    return;
  }
  auto digit = [shift](std::uint64_t k) {
    return static_cast<int>((shift >= 0 ? k >> shift : k << -shift) & (kBuckets - 1));
  };
  std::size_t start[kBuckets + 1] = {};
  for (std::uint64_t k : keys) ++start[digit(k) + 1];
  for (int b = 0; b < kBuckets; ++b) start[b + 1] += start[b];
  // Wanted buckets (at most m), each with its ranks relative to the bucket.
  int slot_of[kBuckets];
  std::fill(slot_of, slot_of + kBuckets, -1);
  int first[8], count[8], slots = 0;
  std::size_t sub[8];
  for (int i = 0; i < m; ++i) {
    const int b = static_cast<int>(std::upper_bound(start, start + kBuckets + 1, ranks[i]) - start - 1);
    if (slot_of[b] < 0) {
      slot_of[b] = slots;
      first[slots] = i;
      count[slots] = 0;
      ++slots;
    }
    ++count[slot_of[b]];
    sub[i] = ranks[i] - start[b];
  }
  // One buffer per recursion level, slot and thread, reused across calls.
  thread_local std::vector<std::uint64_t> buffers[8][8];
  for (int j = 0; j < slots; ++j) buffers[depth][j].clear();
  for (std::uint64_t k : keys) {
    const int j = slot_of[digit(k)];
    if (j >= 0) buffers[depth][j].push_back(k);
  }
  for (int j = 0; j < slots; ++j)
    radix_select(buffers[depth][j], shift - kBits, sub + first[j], out + first[j], count[j], depth + 1);
}

}  // namespace

void quantiles_type7(const std::vector<double>& v, const double* q, double* out, int k) {
  const std::size_t n = v.size();
  if (n == 0) {
    for (int i = 0; i < k; ++i) out[i] = std::numeric_limits<double>::quiet_NaN();
    return;
  }
  // Ranks floor(h) and floor(h) + 1 of every quantile, h = (n - 1) q.
  std::vector<std::size_t> ranks;
  for (int i = 0; i < k; ++i) {
    const auto lo = static_cast<std::size_t>(std::floor((static_cast<double>(n) - 1.0) * q[i]));
    ranks.push_back(lo);
    ranks.push_back(std::min(lo + 1, n - 1));
  }
  std::vector<std::size_t> sorted = ranks;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  thread_local std::vector<std::uint64_t> keys;
  std::vector<std::uint64_t> got(sorted.size());
  keys.resize(n);
  for (std::size_t i = 0; i < n; ++i) keys[i] = sort_key(v[i]);
  // The first digit starts at the highest bit in which the keys differ, so
  // the first histogram already spreads the values' actual range.
  std::uint64_t kmin = keys[0], kmax = keys[0];
  for (std::uint64_t x : keys) {
    kmin = x < kmin ? x : kmin;
    kmax = x > kmax ? x : kmax;
  }
  const int top = kmin == kmax ? 0 : 63 - __builtin_clzll(kmin ^ kmax);
  // radix_select only reorders `keys` (our scratch) when it sorts a leaf.
  for (std::size_t a = 0; a < sorted.size(); a += 8) {
    const int m = static_cast<int>(std::min<std::size_t>(8, sorted.size() - a));
    radix_select(keys, top - 10, sorted.data() + a, got.data() + a, m);
  }
  auto value_at = [&](std::size_t rank) {
    return from_key(got[std::lower_bound(sorted.begin(), sorted.end(), rank) - sorted.begin()]);
  };
  for (int i = 0; i < k; ++i) {
    const double h = (static_cast<double>(n) - 1.0) * q[i];
    const double a = value_at(ranks[2 * i]), b = value_at(ranks[2 * i + 1]);
    const double f = h - std::floor(h);
    // Linear interpolation, with its limits where an end is infinite (a
    // quantile falling on or next to infinite values is infinite, never
    // inf - inf or 0 * inf = NaN).
    if (f == 0.0 || a == b) out[i] = a;
    else if (std::isinf(a) && std::isinf(b)) out[i] = f < 0.5 ? a : b;
    else if (std::isinf(a)) out[i] = a;
    else if (std::isinf(b)) out[i] = b;
    else out[i] = a + f * (b - a);
  }
}

Summary summarize(const double* values, std::int64_t n, std::vector<double>& scratch) {
  // One pass: keep the non-NaN values (NaN marks a degenerate chain, in
  // every metric alike), their sum, minimum and maximum. Infinite values are
  // real results (e.g. kl of a model collapsed below double range) and stay.
  scratch.resize(static_cast<std::size_t>(n));
  std::size_t kept = 0;
  double sum = 0.0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = values[i];
    if (std::isnan(x)) continue;
    scratch[kept++] = x;
    sum += x;
    lo = x < lo ? x : lo;
    hi = x > hi ? x : hi;
  }
  scratch.resize(kept);
  Summary s{};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  s.chains = static_cast<std::int64_t>(kept);
  s.degenerate = n - s.chains;
  if (s.chains == 0) {
    s.mean = s.se = s.std = s.q05 = s.q50 = s.q95 = nan;
    return s;
  }
  if (lo == hi) {  // every chain has the same value (e.g. synthetic_share): exact
    s.mean = s.q05 = s.q50 = s.q95 = lo;
    s.std = s.se = s.chains > 1 ? 0.0 : nan;
    return s;
  }
  // Two-pass variance around the mean, in chain order (deterministic).
  s.mean = sum / s.chains;
  double ss = 0.0;
  for (double x : scratch) ss += (x - s.mean) * (x - s.mean);
  s.std = s.chains > 1 ? std::sqrt(ss / (s.chains - 1)) : nan;
  s.se = s.chains > 1 ? s.std / std::sqrt(static_cast<double>(s.chains)) : nan;
  const double probs[3] = {0.05, 0.50, 0.95};
  double qs[3];
  quantiles_type7(scratch, probs, qs, 3);
  s.q05 = qs[0];
  s.q50 = qs[1];
  s.q95 = qs[2];
  return s;
}

}  // namespace ouro
