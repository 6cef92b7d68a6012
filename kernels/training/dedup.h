// data.dedup for the continuous families (Gaussians, mixtures), written once
// for both backends and both families.
//
// A continuous point repeats another only after rounding: coordinate a of x
// falls in cell floor(x_a / r + 1/2) of the grid of spacing r
// (data.dedup_resolution), and a synthetic candidate whose cell already holds
// a synthetic point kept in the same generation is dropped (the caller draws
// the next candidate in its place). The kept cells live in an
// open-addressing table of the kept points' indices, found by linear probing
// and compared cell by cell, so a hash collision cannot drop a point.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/core/portability.h"

namespace ouro::kernels {

struct Dedup {
  int on = 0;
  double resolution = 0.0;  // r, the grid spacing
};

// The cell of one coordinate (basic IEEE operations: the same cell on both
// backends), kept as a double -- an integer value, or inf or NaN -- so that
// no conversion can overflow; 0 and -0 are one cell.
OURO_HD inline double dedup_cell(double x, double r) { return floor(x / r + 0.5) + 0.0; }

OURO_HD inline std::uint64_t dedup_hash(const double* x, int d, double r) {
  std::uint64_t h = 0x9E3779B97F4A7C15ull;
  for (int a = 0; a < d; ++a) {
    const double cell = dedup_cell(x[a], r);
    std::uint64_t bits;
    memcpy(&bits, &cell, sizeof bits);
    h ^= bits + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  return h;
}

// Slots of the table for `need` kept points: a power of two of at least
// twice as many (an open-addressing table at most half full).
OURO_HD inline std::int64_t dedup_table_size(std::int64_t need) {
  std::int64_t size = 2;
  while (size < 2 * need) size *= 2;
  return size;
}

// One generation's kept cells: `table` has `slots` entries (-1: empty), each
// the index k of a kept point whose coordinates are points[k*d .. k*d+d-1]
// (the caller's array of kept points).
struct DedupCells {
  std::int64_t* table;
  std::int64_t slots;
  const double* points;
  int d;
  double r;

  OURO_HD void clear() const {
    for (std::int64_t i = 0; i < slots; ++i) table[i] = -1;
  }

  // Whether x's cell holds no kept point; if so, x is recorded as kept point
  // k (whose coordinates the caller stores at points + k*d).
  OURO_HD bool admit(const double* x, std::int64_t k) const {
    const auto mask = static_cast<std::uint64_t>(slots - 1);
    std::int64_t slot = static_cast<std::int64_t>(dedup_hash(x, d, r) & mask);
    for (; table[slot] >= 0; slot = static_cast<std::int64_t>((static_cast<std::uint64_t>(slot) + 1) & mask)) {
      const double* y = points + table[slot] * d;
      bool same = true;
      for (int a = 0; a < d && same; ++a) same = dedup_cell(x[a], r) == dedup_cell(y[a], r);
      if (same) return false;
    }
    table[slot] = k;
    return true;
  }
};

}  // namespace ouro::kernels
