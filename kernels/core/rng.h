// Counter-based random numbers for every chain, on both backends.
//
// ouroboros draws all randomness from Philox4x32-10 (Salmon, Moraes, Dror & Shaw,
// "Parallel random numbers: as easy as 1, 2, 3", SC 2011). A draw is a pure
// function of (key, counter), so any chain's numbers can be produced by any
// thread, block, rank or backend in any order, and an old generation's samples
// can be regenerated instead of stored.
//
// Bit layout (RNG layout version kRngLayoutVersion, recorded in manifest.json):
//   key     = { seed, chain }                          (2 x 32 bit)
//   counter = { index_lo, index_hi, stream, generation } (4 x 32 bit)
// `index` is the 64-bit position of the 128-bit block inside the stream. The
// sweep point is deliberately absent: every point of a sweep sees the same
// streams (common random numbers), so differences between points are paired.
//
// The rounds below are the published Philox4x32 rounds with 10 rounds; the
// tests check them against Random123's known-answer vectors and against
// Random123's own implementation (Debian's librandom123-dev). They are written
// out here, in plain 32/64-bit integer arithmetic, so that g++ vectorises them
// in the cpu backend's sampling loops and nvcc compiles the identical code.
#pragma once

#include <cstdint>

#include "kernels/core/elementary.h"
#include "kernels/core/portability.h"

namespace ouro::rng {

inline constexpr int kRngLayoutVersion = 1;

// Every random stream of ouroboros, listed once. A stream id is part of the
// counter, so two streams can never overlap.
enum Stream : std::uint32_t {
  kStreamRealDraw = 1,            // points drawn from the truth
  kStreamSyntheticDraw = 2,       // points drawn from the previous generation's model
  kStreamSubsample = 3,           // selection of the accumulate_subsample training set
  kStreamRealComponent = 4,       // mixtures: the component of each real draw
  kStreamSyntheticComponent = 5,  // mixtures: the component of each synthetic draw
  kStreamEmInit = 6,              // mixtures: k-means++ seeding of EM restarts
  kStreamTruth = 7,               // a truth's own random construction (key: seed, kHeldoutChain)
  kStreamVerify = 8,              // data.verifier: the keep decision of synthetic candidate j (word j)
  kStreamModelSample = 9,         // the model sample of the sample-based metrics and the scatter: its normals
  kStreamModelChoice = 10,        // ... and the component (mixtures) or parent (kernel density) of each of its points
};

// The held-out evaluation set is the same for every chain: the real draws of
// generation 0 under this chain id, which no chain has (chain ids are
// < 2^32 - 1, and no chain draws at generation 0).
inline constexpr std::uint32_t kHeldoutChain = 0xFFFFFFFFu;

struct Block {
  std::uint32_t v[4];
};

// The ten round keys (Weyl key schedule, mod 2^32) of one key. Loops that
// apply the same key to many counters compute them once (the cpu backend
// hoists them out of its vectorised loop).
OURO_HD OURO_FORCEINLINE void philox4x32_10_round_keys(std::uint32_t k0, std::uint32_t k1, std::uint32_t* rk0,
                                                       std::uint32_t* rk1) {
  for (int r = 0; r < 10; ++r) {
    rk0[r] = k0;
    rk1[r] = k1;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

// The ten Philox rounds on four 32-bit counter words, in place, under round
// keys rk0/rk1. `Word` is std::uint32_t on the device and in scalar code;
// philox_blocks (kernels/core/philox_batch.h) instantiates it with std::uint64_t
// lanes that hold 32-bit values where the build has no AVX2 (with AVX2 it
// writes the same rounds with intrinsics). The masks make both
// instantiations compute the same function.
template <class Word>
OURO_HD OURO_FORCEINLINE void philox4x32_10_keyed(Word& c0, Word& c1, Word& c2, Word& c3, const std::uint32_t* rk0,
                                                  const std::uint32_t* rk1) {
  constexpr std::uint64_t kLow = 0xFFFFFFFFull;
  OURO_UNROLL
  for (int r = 0; r < 10; ++r) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(0xD2511F53u) * static_cast<std::uint64_t>(c0);
    const std::uint64_t p1 = static_cast<std::uint64_t>(0xCD9E8D57u) * static_cast<std::uint64_t>(c2);
    const Word n0 = static_cast<Word>(p1 >> 32) ^ c1 ^ static_cast<Word>(rk0[r]);
    const Word n2 = static_cast<Word>(p0 >> 32) ^ c3 ^ static_cast<Word>(rk1[r]);
    c1 = static_cast<Word>(p1 & kLow);
    c3 = static_cast<Word>(p0 & kLow);
    c0 = n0;
    c2 = n2;
  }
}

// Philox4x32-10 of one counter under one key.
OURO_HD OURO_FORCEINLINE Block philox4x32_10(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2, std::uint32_t c3,
                                             std::uint32_t k0, std::uint32_t k1) {
  std::uint32_t rk0[10], rk1[10];
  philox4x32_10_round_keys(k0, k1, rk0, rk1);
  philox4x32_10_keyed(c0, c1, c2, c3, rk0, rk1);
  return Block{{c0, c1, c2, c3}};
}

// The block at position `index` of `stream` in `generation` for chain `chain`.
OURO_HD OURO_FORCEINLINE Block draw_block(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation,
                                          std::uint32_t stream, std::uint64_t index) {
  return philox4x32_10(static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32), stream, generation,
                       seed, chain);
}

// A double in the open interval (0, 1) from 64 random bits: (2k + 1) 2^-53
// for the top 52 bits k, the centre of k's cell, so neither 0 nor 1 occurs.
// Computed without an integer-to-double conversion (AVX2 has none for 64-bit
// lanes, so a vectorised loop would convert lane by lane): k as the mantissa
// of 1 + k 2^-52, then - 1 and + 2^-53, each step exact.
OURO_HD OURO_FORCEINLINE double u01_from_bits(std::uint64_t bits) {
  const std::uint64_t k = bits >> 12;
  return (kernels::double_of(0x3FF0000000000000ull | k) - 1.0) + 0x1.0p-53;
}
OURO_HD OURO_FORCEINLINE double u01_open(std::uint32_t hi, std::uint32_t lo) {
  return u01_from_bits((static_cast<std::uint64_t>(hi) << 32) | lo);
}

}  // namespace ouro::rng
