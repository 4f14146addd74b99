#!/usr/bin/env bash
# Builds and runs elias_decode.cpp: decopt's Elias decode beside BytePS's, in one binary.
#   bash bench/peers/byteps/run.sh [BYTEPS_CHECKOUT] [benchmark flags...]
# BYTEPS_CHECKOUT is a clone of github.com/bytedance/byteps (measured at f5df52f, Feb 2022); without
# one the script clones it into build/peers/. Only byteps/common/compressor is compiled (its
# dithering and registry sources, with the three shims of shim/ standing in for BytePS's
# common.h, logging.h and half.h); the build happens under build/peers/, outside the sources.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
work="$root/build/peers/byteps"
mkdir -p "$work"
src="${1:-}"
if [[ -z "$src" || "$src" == --* ]]; then
  src="$work/byteps-src"
  [[ -d "$src" ]] || git clone --depth 1 https://github.com/bytedance/byteps "$src"
else
  shift
fi
rm -rf "$work/tree" && mkdir -p "$work/tree/byteps/common"
cp -r "$src/byteps/common/compressor" "$work/tree/byteps/common/"
cp "$here"/shim/byteps/common/*.h "$work/tree/byteps/common/"
flags=(-O3 -march=native -DNDEBUG)
cd "$work"
# BYTEPS_BUILDING_SERVER: Decompress writes into the compressor's own buffer, not over the message
g++ -std=c++17 "${flags[@]}" -w -DBYTEPS_BUILDING_SERVER -Itree -c tree/byteps/common/compressor/compressor_registry.cc -o registry.o
g++ -std=c++17 "${flags[@]}" -w -DBYTEPS_BUILDING_SERVER -Itree -c tree/byteps/common/compressor/impl/dithering.cc -o dithering.o
g++ -std=c++20 "${flags[@]}" -ffp-contract=off -I"$root/include" -I"$root/bench" -I/usr/include/eigen3 -Itree \
  "$here/elias_decode.cpp" registry.o dithering.o -lbenchmark -lpthread -o elias_decode  # registry first: its map is constructed before dithering's registration
./elias_decode "$@"
