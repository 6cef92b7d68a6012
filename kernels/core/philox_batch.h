// Philox4x32-10 of many counters at once, for the cpu backend's sampling
// loops (host only): the same blocks as rng::draw_block, bit for bit
// (tests/kernels/core/test_rng.cc checks every lane against it).
//
// The rounds multiply 32-bit words into 64-bit products. Written in plain
// C++ over 64-bit lanes (rng::philox4x32_10_keyed<std::uint64_t>), g++ 12
// does not see that the lanes' upper halves are zero and emulates each
// product with three 32x32-bit multiplies and shifts; with AVX2 the rounds
// are written out with _mm256_mul_epu32, one instruction per four products
// (a third of the instructions per block), and with AVX-512 with
// _mm512_mul_epu32, eight lanes at a time. Without AVX2 the plain loop runs
// (philox_blocks_plain, which the tests also check where AVX2 is on). Every
// cpu source is compiled with the same flags (CMakeLists.txt), so PhiloxKeys
// has one layout in a build.
#pragma once

#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "kernels/core/rng.h"

namespace ouro::rng {

// The round keys of one key {seed, chain} (philox4x32_10_round_keys), and
// with AVX2 each broadcast to four lanes, made once for many batches.
struct PhiloxKeys {
  PhiloxKeys(std::uint32_t seed, std::uint32_t chain) {
    philox4x32_10_round_keys(seed, chain, rk0, rk1);
#if defined(__AVX2__)
    for (int r = 0; r < 10; ++r) k0[r] = _mm256_set1_epi64x(rk0[r]), k1[r] = _mm256_set1_epi64x(rk1[r]);
#endif
#if defined(__AVX512F__)
    for (int r = 0; r < 10; ++r) z0[r] = _mm512_set1_epi64(rk0[r]), z1[r] = _mm512_set1_epi64(rk1[r]);
#endif
  }
  std::uint32_t rk0[10], rk1[10];
#if defined(__AVX2__)
  __m256i k0[10], k1[10];
#endif
#if defined(__AVX512F__)
  __m512i z0[10], z1[10];  // (eight lanes)
#endif
};

// philox_blocks in plain C++ (g++ vectorises it, with the emulated products).
template <int N>
inline void philox_blocks_plain(const std::uint64_t* index, std::uint64_t offset, std::uint32_t stream,
                                std::uint32_t generation, const PhiloxKeys& keys, std::uint64_t* w0, std::uint64_t* w1,
                                std::uint64_t* w2, std::uint64_t* w3) {
#pragma omp simd
  for (int b = 0; b < N; ++b) {
    const std::uint64_t at = index[b] + offset;
    std::uint64_t c0 = at & 0xFFFFFFFFull, c1 = at >> 32, c2 = stream, c3 = generation;
    philox4x32_10_keyed<std::uint64_t>(c0, c1, c2, c3, keys.rk0, keys.rk1);
    w0[b] = c0, w1[b] = c1, w2[b] = c2, w3[b] = c3;
  }
}

// Blocks {index[b] + offset} of one stream, b < N, under `keys`: w0..w3[b]
// are the block's four 32-bit words, each in a 64-bit lane. N must be a
// multiple of 4.
template <int N>
inline void philox_blocks(const std::uint64_t* index, std::uint64_t offset, std::uint32_t stream,
                          std::uint32_t generation, const PhiloxKeys& keys, std::uint64_t* w0, std::uint64_t* w1,
                          std::uint64_t* w2, std::uint64_t* w3) {
  static_assert(N % 4 == 0, "four lanes at a time");
#if defined(__AVX512F__)
  // With AVX-512 the same rounds eight lanes at a time (_mm512_mul_epu32), while eight remain.
  int b8 = 0;
  {
    const __m512i low = _mm512_set1_epi64(0xFFFFFFFFll);
    const __m512i m0 = _mm512_set1_epi64(0xD2511F53ll), m1 = _mm512_set1_epi64(0xCD9E8D57ll);
    for (; b8 + 8 <= N; b8 += 8) {
      const __m512i at =
          _mm512_add_epi64(_mm512_loadu_si512(index + b8), _mm512_set1_epi64(static_cast<long long>(offset)));
      __m512i c0 = _mm512_and_si512(at, low), c1 = _mm512_srli_epi64(at, 32);
      __m512i c2 = _mm512_set1_epi64(stream), c3 = _mm512_set1_epi64(generation);
      for (int r = 0; r < 10; ++r) {
        const __m512i p0 = _mm512_mul_epu32(c0, m0), p1 = _mm512_mul_epu32(c2, m1);
        const __m512i n0 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p1, 32), c1), keys.z0[r]);
        const __m512i n2 = _mm512_xor_si512(_mm512_xor_si512(_mm512_srli_epi64(p0, 32), c3), keys.z1[r]);
        c1 = _mm512_and_si512(p1, low);
        c3 = _mm512_and_si512(p0, low);
        c0 = n0;
        c2 = n2;
      }
      _mm512_storeu_si512(w0 + b8, c0);
      _mm512_storeu_si512(w1 + b8, c1);
      _mm512_storeu_si512(w2 + b8, c2);
      _mm512_storeu_si512(w3 + b8, c3);
    }
  }
  if (b8 == N) return;
#else
  constexpr int b8 = 0;
#endif
#if defined(__AVX2__)
  const __m256i low = _mm256_set1_epi64x(0xFFFFFFFFll);
  const __m256i m0 = _mm256_set1_epi64x(0xD2511F53ll), m1 = _mm256_set1_epi64x(0xCD9E8D57ll);
  const __m256i* k0 = keys.k0;
  const __m256i* k1 = keys.k1;
  for (int b = b8; b < N; b += 4) {
    const __m256i at = _mm256_add_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(index + b)),
                                        _mm256_set1_epi64x(static_cast<long long>(offset)));
    __m256i c0 = _mm256_and_si256(at, low), c1 = _mm256_srli_epi64(at, 32);
    __m256i c2 = _mm256_set1_epi64x(stream), c3 = _mm256_set1_epi64x(generation);
    for (int r = 0; r < 10; ++r) {  // the rounds of philox4x32_10_keyed
      const __m256i p0 = _mm256_mul_epu32(c0, m0), p1 = _mm256_mul_epu32(c2, m1);
      const __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), c1), k0[r]);
      const __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), c3), k1[r]);
      c1 = _mm256_and_si256(p1, low);
      c3 = _mm256_and_si256(p0, low);
      c0 = n0;
      c2 = n2;
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w0 + b), c0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w1 + b), c1);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w2 + b), c2);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w3 + b), c3);
  }
#else
  (void)b8;
  philox_blocks_plain<N>(index, offset, stream, generation, keys, w0, w1, w2, w3);
#endif
}

// u01_open of two of philox_blocks' words (each below 2^32 in its 64-bit
// lane), in a form g++ vectorises.
inline double u01_open_words(std::uint64_t hi, std::uint64_t lo) { return u01_from_bits((hi << 32) | lo); }

}  // namespace ouro::rng
