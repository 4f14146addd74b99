// decopt/core/diagnostics.hpp — DECOPT_AVX512_QUIET_BEGIN / DECOPT_AVX512_QUIET_END around code
// that uses AVX-512 intrinsics, directly or through Eigen's packet math.
//
// GCC 12's AVX-512 headers implement the unmasked intrinsics (_mm512_slli_epi64,
// _mm512_cvtepi32_ps, _mm512_extractf64x4_pd …) as masked builtins whose pass-through operand is
// _mm512_undefined_*(), a self-initialised variable. Once inlined, -Wmaybe-uninitialized (in
// -Wall; -Wuninitialized where the optimiser proves the "use") reports it: about 80 times in a
// program built with -march=native that uses decopt's compressors, more where it uses Eigen's
// dense double kernels (GCC bug 105593, fixed in GCC 13). The operand is never read: the mask is
// all ones. GCC applies a diagnostic pragma when any location of the inlining chain lies inside
// it, so bracketing decopt's code silences exactly those reports in every program that includes
// decopt (a -Wno-… flag would only help decopt's own builds) without changing the generated
// code. Only builds for AVX-512 are affected, so elsewhere the macros are empty and every other
// build keeps the full warning.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__AVX512F__)
#define DECOPT_AVX512_QUIET_BEGIN \
  _Pragma("GCC diagnostic push") \
  _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"") \
  _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")
#define DECOPT_AVX512_QUIET_END _Pragma("GCC diagnostic pop")
#else
#define DECOPT_AVX512_QUIET_BEGIN
#define DECOPT_AVX512_QUIET_END
#endif
