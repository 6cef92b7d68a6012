// Host/device portability markers: the one shim that lets the per-element math
// in kernels/ be compiled by g++ for the cpu backend and by nvcc for the cuda
// backend from the same source (DESIGN.md, "two backends, one source of the math").
#pragma once

#if defined(__CUDACC__)
#define OURO_HD __host__ __device__
#define OURO_FORCEINLINE __forceinline__
#define OURO_UNROLL _Pragma("unroll")
#else
#define OURO_HD
#define OURO_FORCEINLINE inline __attribute__((always_inline))
#define OURO_UNROLL _Pragma("GCC unroll 16")
#endif

// Largest model dimension the fixed-size per-chain workspaces support.
#define OURO_MAX_DIM 16
