#!/usr/bin/env bash
# AsyVRSC (Shen, Xu, Liu, Guo & Ling, "Asynchronous Stochastic Composition Optimization with
# Variance Reduction", arXiv 1811.06396): relative suboptimality (f(x̃) − f*)/|f*| of the snapshot
# against wall-clock seconds on the mean-variance portfolio problem (100 assets, 1000 periods, the
# exact f* from one linear solve), for VRSC, AsyVRSC-Shared with 1 and 2 threads and
# AsyVRSC-Distributed with 1 and 2 workers (threads of one process), and AsyVRSC-Shared in the
# coordinate-update model (--coordinates-per-step 1: each inner step writes one coordinate drawn
# uniformly; d = 100 times the inner steps per epoch, so an epoch makes the same expected progress).
#
# Output under OUT (default examples/portfolio/results): asyvrsc_<solver>_<k>[_coord].csv (decopt-portfolio
# --csv: epoch, seconds, suboptimality, objective, gradient_norm), asyvrsc_summary.csv (the JSON
# lines' epochs and seconds) and asyvrsc_suboptimality_vs_seconds.png.
# Seconds are wall time: they depend on the machine and its load (the figures in the README were
# taken on a shared 2-core machine; rerun on an idle one for clean timings).
#
# Usage: examples/portfolio/experiments/asyvrsc_threads.sh [path/to/decopt-portfolio] [out-dir]
set -euo pipefail

PORTFOLIO=${1:-build/examples/portfolio/decopt-portfolio}
OUT=${2:-examples/portfolio/results}
EPOCHS=${EPOCHS:-30}
mkdir -p "$OUT"

runs=("vrsc 1" "asyvrsc-shared 1" "asyvrsc-shared 2" "asyvrsc-distributed 1" "asyvrsc-distributed 2"
      "asyvrsc-shared 1 coord" "asyvrsc-shared 2 coord")
echo "solver,threads,json" >"$OUT/asyvrsc_summary.csv"
for run in "${runs[@]}"; do
  read -r solver k model <<<"$run"
  csv="$OUT/asyvrsc_${solver}_${k}${model:+_$model}.csv"
  args=(--solver "$solver" --epochs "$EPOCHS" --csv "$csv" --json)
  [[ $solver != vrsc ]] && args+=(--threads "$k")
  [[ -n $model ]] && args+=(--coordinates-per-step 1 --inner-steps 100000)  # 1000 periods x 100 assets
  line=$(nice -n 10 "$PORTFOLIO" "${args[@]}" | tail -n 1)
  echo "$solver${model:+-$model},$k,\"${line//\"/\"\"}\"" >>"$OUT/asyvrsc_summary.csv"
  echo "$solver${model:+ ($model)} x$k: $line" >&2
done

plot_line() {  # plot_line CSV-STEM TITLE
  printf '"%s" using 2:($3 > 0 ? $3 : 1e-16) with linespoints title "%s"' "$OUT/asyvrsc_$1.csv" "$2"
}
{
  echo 'set terminal pngcairo size 1000,640 font ",11"'
  echo "set output \"$OUT/asyvrsc_suboptimality_vs_seconds.png\""
  echo 'set datafile separator ","'
  echo 'set key autotitle columnhead'
  echo 'set logscale y'
  echo 'set format y "10^{%L}"'
  echo 'set xlabel "wall-clock seconds"'
  echo 'set ylabel "relative suboptimality (f(x~) - f*) / |f*| of the snapshot"'
  echo 'set title "Mean-variance portfolio, 100 assets, 1000 periods: one point per epoch"'
  echo 'set grid'
  printf 'plot %s, %s, %s, %s, %s, %s, %s\n' \
    "$(plot_line vrsc_1 'VRSC (sequential)')" \
    "$(plot_line asyvrsc-shared_1 'AsyVRSC-Shared, 1 thread, all coordinates per step')" \
    "$(plot_line asyvrsc-shared_2 'AsyVRSC-Shared, 2 threads, all coordinates per step')" \
    "$(plot_line asyvrsc-shared_1_coord 'AsyVRSC-Shared, 1 thread, one coordinate per step')" \
    "$(plot_line asyvrsc-shared_2_coord 'AsyVRSC-Shared, 2 threads, one coordinate per step')" \
    "$(plot_line asyvrsc-distributed_1 'AsyVRSC-Distributed, 1 worker')" \
    "$(plot_line asyvrsc-distributed_2 'AsyVRSC-Distributed, 2 workers')"
} | gnuplot
echo "wrote $OUT/asyvrsc_suboptimality_vs_seconds.png" >&2
