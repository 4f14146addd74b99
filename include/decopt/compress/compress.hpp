// decopt/compress/compress.hpp — the compression pipeline: every sparsifier, quantizer and coder,
// and Compressor<S, Q, C>. Include this (or decopt/decopt.hpp), not the individual headers.
#pragma once

#include "decopt/compress/message.hpp"
#include "decopt/compress/concepts.hpp"
#include "decopt/compress/scale_blocks.hpp"
// sparsifiers
#include "decopt/compress/dense.hpp"
#include "decopt/compress/top_k.hpp"
#include "decopt/compress/random_k.hpp"
#include "decopt/compress/rand_top_k.hpp"
// quantizers
#include "decopt/compress/identity.hpp"
#include "decopt/compress/dithered_quantizer.hpp"
#include "decopt/compress/sign.hpp"
#include "decopt/compress/half.hpp"
// coders
#include "decopt/compress/raw_coder.hpp"
#include "decopt/compress/elias_coder.hpp"
#include "decopt/compress/vector_source_coder.hpp"
// the pipeline
#include "decopt/compress/compressor.hpp"
#include "decopt/compress/hooks.hpp"
#include "decopt/compress/matrix_blocks.hpp"
#include "decopt/compress/support_coded.hpp"
// top-level compressors: low rank over matrix blocks, permutation blocks across nodes
#include "decopt/compress/power_sgd.hpp"
#include "decopt/compress/perm_k.hpp"
