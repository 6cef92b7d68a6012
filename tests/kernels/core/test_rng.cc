// The device RNG's host build against Random123 (Debian's librandom123-dev):
// its published known-answer vectors, and its implementation on random input.
#include <Random123/philox.h>
#include <gtest/gtest.h>

#include <random>

#include "kernels/core/philox_batch.h"
#include "kernels/core/rng.h"

namespace {

using ouro::rng::philox4x32_10;

// Known-answer vectors of Philox4x32-10 from Random123's kat_vectors file:
// {counter[4], key[2], expected[4]}.
struct Kat {
  std::uint32_t ctr[4], key[2], out[4];
};
const Kat kKat[] = {
    {{0x00000000, 0x00000000, 0x00000000, 0x00000000},
     {0x00000000, 0x00000000},
     {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

TEST(Philox, MatchesRandom123KnownAnswers) {
  for (const Kat& k : kKat) {
    const auto b = philox4x32_10(k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3], k.key[0], k.key[1]);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(b.v[i], k.out[i]) << "word " << i;
    // And Random123 itself agrees with the vectors (the test checks its oracle).
    r123::Philox4x32 ref;
    const auto r = ref(r123::Philox4x32::ctr_type{{k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3]}},
                       r123::Philox4x32::key_type{{k.key[0], k.key[1]}});
    for (int i = 0; i < 4; ++i) EXPECT_EQ(r[i], k.out[i]);
  }
}

TEST(Philox, MatchesRandom123OnRandomInput) {
  std::mt19937 g(12345);  // 32-bit outputs
  r123::Philox4x32 ref;
  for (int trial = 0; trial < 100000; ++trial) {
    const auto w = [&g] { return static_cast<std::uint32_t>(g()); };
    const std::uint32_t c[4] = {w(), w(), w(), w()}, k[2] = {w(), w()};
    const auto b = philox4x32_10(c[0], c[1], c[2], c[3], k[0], k[1]);
    const auto r = ref(r123::Philox4x32::ctr_type{{c[0], c[1], c[2], c[3]}}, r123::Philox4x32::key_type{{k[0], k[1]}});
    for (int i = 0; i < 4; ++i) ASSERT_EQ(b.v[i], r[i]) << "trial " << trial;
  }
}

TEST(Philox, LayoutPutsSeedChainInKeyAndGenerationStreamIndexInCounter) {
  const std::uint64_t index = 0x0000000700000009ull;
  const auto a = ouro::rng::draw_block(11, 22, 33, ouro::rng::kStreamSyntheticDraw, index);
  const auto b = philox4x32_10(9, 7, ouro::rng::kStreamSyntheticDraw, 33, 11, 22);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(a.v[i], b.v[i]);
}

// The cpu backend's batch of blocks (AVX-512 and AVX2 where the build has
// them, else the plain loop), and the plain loop itself, are draw_block, lane by lane, for
// random keys, streams, generations and 64-bit indices, with and without the
// offset.
template <int N>
void expect_batch_is_draw_block(std::mt19937_64& g) {
  const auto w = [&g] { return static_cast<std::uint32_t>(g()); };
  const std::uint32_t seed = w(), chain = w(), stream = w(), gen = w();
  const ouro::rng::PhiloxKeys keys(seed, chain);
  std::uint64_t index[N], w0[N], w1[N], w2[N], w3[N];
  for (int b = 0; b < N; ++b) index[b] = g() >> (g() % 64);  // small and large indices
  for (std::uint64_t offset : {0ull, 1ull}) {
    ouro::rng::philox_blocks<N>(index, offset, stream, gen, keys, w0, w1, w2, w3);
    std::uint64_t p0[N], p1[N], p2[N], p3[N];
    ouro::rng::philox_blocks_plain<N>(index, offset, stream, gen, keys, p0, p1, p2, p3);
    for (int b = 0; b < N; ++b) {
      ASSERT_TRUE(p0[b] == w0[b] && p1[b] == w1[b] && p2[b] == w2[b] && p3[b] == w3[b]) << "plain loop, lane " << b;
      const auto d = ouro::rng::draw_block(seed, chain, gen, stream, index[b] + offset);
      const std::uint64_t got[4] = {w0[b], w1[b], w2[b], w3[b]};
      for (int i = 0; i < 4; ++i) ASSERT_EQ(got[i], d.v[i]) << "lane " << b << " word " << i;
      // And the words' uniforms are u01_open's.
      ASSERT_EQ(ouro::rng::u01_open_words(w0[b], w1[b]), ouro::rng::u01_open(d.v[0], d.v[1]));
      ASSERT_EQ(ouro::rng::u01_open_words(w2[b], w3[b]), ouro::rng::u01_open(d.v[2], d.v[3]));
    }
  }
}

TEST(Philox, BatchOfBlocksIsDrawBlock) {
  std::mt19937_64 g(777);
  for (int trial = 0; trial < 2000; ++trial) {
    expect_batch_is_draw_block<4>(g);
    expect_batch_is_draw_block<8>(g);
    expect_batch_is_draw_block<12>(g);  // (eight lanes of AVX-512, then four of AVX2, where the build has them)
    expect_batch_is_draw_block<32>(g);
  }
}

TEST(Uniform, OpenIntervalEndsAndCentre) {
  EXPECT_EQ(ouro::rng::u01_open(0, 0), 0x1.0p-53);
  EXPECT_LT(ouro::rng::u01_open(0xffffffffu, 0xffffffffu), 1.0);
  EXPECT_EQ(ouro::rng::u01_open(0x80000000u, 0), 0.5 + 0x1.0p-53);
}

// u01_open builds (k + 1/2) 2^-52 from the mantissa bits rather than by
// converting k: the same double, bit for bit, for every k (checked on the
// ends of the range and on a million words).
TEST(Uniform, MantissaConstructionIsTheExactValue) {
  auto reference = [](std::uint32_t hi, std::uint32_t lo) {
    const std::uint64_t k = ((static_cast<std::uint64_t>(hi) << 32) | lo) >> 12;
    return (static_cast<double>(k) + 0.5) * 0x1.0p-52;
  };
  std::uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 1000000; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift64
    const auto hi = static_cast<std::uint32_t>(x >> 32), lo = static_cast<std::uint32_t>(x);
    ASSERT_EQ(ouro::rng::u01_open(hi, lo), reference(hi, lo)) << hi << " " << lo;
  }
  for (std::uint32_t hi : {0u, 1u, 0x7fffffffu, 0x80000000u, 0xfffffffeu, 0xffffffffu})
    for (std::uint32_t lo : {0u, 0xfffu, 0x1000u, 0xffffffffu})
      EXPECT_EQ(ouro::rng::u01_open(hi, lo), reference(hi, lo));
}

}  // namespace
