#!/usr/bin/env bash
# dp_compare.sh — DP-PSAC's comparison (Xia et al., "Differentially Private Learning with
# Per-Sample Adaptive Clipping", AAAI 2023, arXiv 2212.00328) on decopt-train's MLP:
#
#   accuracy  Abadi clipping over a grid of C, NSGD, Auto-S and PSAC (r = 0.1, C = 1 not tuned),
#             at epsilon 3 and 8 (delta 1e-5), seeds 1-3, on 1 node and on 8 nodes (ring, D-PSGD:
#             exact gossip, so compression does not confound the clipping);
#   deviation ‖u − m‖ and ‖u/‖u‖ − m/‖m‖‖ of each rule's noise-free update u from the true batch
#             mean m, on the same per-sample gradients along an SGD trajectory (decopt-dp-deviation).
#
# Learning rates: every rule gets the same step lr·C = 0.5 (the README's tuned value for C = 1), so
# Abadi's C grid tunes the clipping threshold, not the step size: lr = 0.5/C for Abadi, lr = 0.5
# with C = 1 for the normalising rules (whose update scales with C, which the lr absorbs).
#
# Cost (2 shared cores): 12 000 training samples, 2 epochs (750 private steps on 1 node, 94 rounds
# of 8 × 1 500-sample nodes), 5 evaluations per run: 108 runs, about 11 min of CPU (4.5 s per
# 1-node run, 7.5 s per 8-node run), 2 at a time (about 28 min of wall time on a loaded machine).
#
#   examples/train/experiments/dp_compare.sh [build-dir] [results-dir]
#
# Writes, under results-dir (default examples/train/results):
#   dp_compare_runs.csv      one row per run
#   dp_compare_summary.csv   mean, sample standard deviation, min and max over the seeds
#   dp_deviation.csv         deviation per rule at 20 points of the trajectory
#   dp_deviation_summary.jsonl  the same, averaged over the whole trajectory (one JSON line per rule)
#   dp_compare.png           accuracy per rule, epsilon and node count (error bars: ±1 std)
#   dp_deviation.png         direction and absolute deviation per rule against the SGD step
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
build=${1:-$root/build}
out=${2:-$root/examples/train/results}
train=$build/examples/train/decopt-train
deviation=$build/examples/dp_compare/decopt-dp-deviation
for program in "$train" "$deviation"; do
  [[ -x $program ]] || { echo "dp_compare.sh: $program not built (ninja -C $build decopt-train decopt-dp-deviation)" >&2; exit 1; }
done
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# DP_SAMPLES, DP_EPOCHS, DP_CLIPS, DP_SEEDS override the grid (e.g. for a quick check of the script).
samples=${DP_SAMPLES:-12000}
epochs=${DP_EPOCHS:-2}
step=0.5                       # lr·C, the same for every rule
abadi_clips=${DP_CLIPS:-"0.03 0.1 0.3 1 3 10"}
seeds=${DP_SEEDS:-"1 2 3"}
steps=$(( samples * epochs / 32 ))  # the deviation trajectory: as many SGD steps as 1 node's run
common=(--algorithm dpsgd --topology ring --epochs $epochs --train-samples $samples --evals 5 --quiet --json)

# DP_PLOT_ONLY=1 redraws the plots from the CSV files of an earlier run.
if [[ -z ${DP_PLOT_ONLY:-} ]]; then
# One line per run: nodes rule C lr epsilon seed. The normalising rules run at C = 1.
for nodes in 1 8; do
  for eps in 3 8; do
    for seed in $seeds; do
      for c in $abadi_clips; do
        echo "$nodes abadi $c $(awk -v s=$step -v c=$c 'BEGIN { printf "%.10g", s / c }') $eps $seed"
      done
      for rule in nsgd autos psac; do echo "$nodes $rule 1 $step $eps $seed"; done
    done
  done
done > "$work/grid"

run_one() {  # nodes rule C lr epsilon seed
  local json
  json=$(nice -n 10 "$train" "${common[@]}" --nodes "$1" --clipping "$2" --dp-clip "$3" --lr "$4" \
           --dp-epsilon "$5" --dp-delta 1e-5 --dp-r 0.1 --seed "$6" | tail -n 1)
  local acc sigma
  acc=$(sed -n 's/.*"test_accuracy":\([^,]*\).*/\1/p' <<<"$json")
  sigma=$(sed -n 's/.*"dp_noise":\([^,]*\).*/\1/p' <<<"$json")
  [[ -n $acc && -n $sigma ]] || { echo "dp_compare.sh: no summary from: $*" >&2; return 1; }
  echo "$1,$2,$3,$4,$5,$6,$sigma,$acc"
}
export -f run_one
export train
export common_text="${common[*]}"
# xargs runs a fresh bash per line; the array travels as text.
echo "dp_compare.sh: $(wc -l <"$work/grid") runs, 2 at a time" >&2
xargs -P 2 -L 1 bash -c 'common=($common_text); run_one "$@"' _ <"$work/grid" >"$work/runs"
{
  echo "nodes,rule,clip,lr,epsilon,seed,noise_multiplier,test_accuracy"
  sort -t, -k1,1n -k2,2 -k3,3g -k5,5n -k6,6n "$work/runs"
} >"$out/dp_compare_runs.csv"

# The deviation on one trajectory of as many SGD steps as a 1-node run takes, at 20 points of 10
# batches each, every rule on the same per-sample gradients.
nice -n 10 "$deviation" --train-samples $samples --steps $steps --points 20 --batches 10 --abadi-clip "${abadi_clips// /,}" \
  --clip 1 --r 0.1 --seed 1 --csv "$out/dp_deviation.csv" >"$out/dp_deviation_summary.jsonl"
fi

# Mean, sample standard deviation, min and max over the seeds of each (nodes, rule, C, epsilon).
awk -F, 'NR > 1 {
    k = $1 "," $2 "," $3 "," $5; n[k]++; s[k] += $8; q[k] += $8 * $8
    if (!(k in lo) || $8 < lo[k]) lo[k] = $8
    if (!(k in hi) || $8 > hi[k]) hi[k] = $8
  }
  END {
    print "nodes,rule,clip,epsilon,seeds,mean,std,min,max"
    for (k in n) {
      m = s[k] / n[k]; v = n[k] > 1 ? (q[k] - n[k] * m * m) / (n[k] - 1) : 0
      printf "%s,%d,%.4f,%.4f,%.4f,%.4f\n", k, n[k], m, sqrt(v > 0 ? v : 0), lo[k], hi[k]
    }
  }' "$out/dp_compare_runs.csv" | sort -t, -k1,1n -k4,4n -k2,2 -k3,3g >"$out/dp_compare_summary.csv"

# The bar chart's table: one row per rule (Abadi at its best C per column), one column pair
# (mean, std) per setting.
awk -F, 'NR > 1 {
    col = $1 "n" $4
    if ($2 == "abadi") { if (!(col in best) || $6 > best[col]) { best[col] = $6; bstd[col] = $7; bc[col] = $3 } }
    else { mean[$2, col] = $6; sd[$2, col] = $7 }
  }
  END {
    split("1n3 1n8 8n3 8n8", cols, " ")
    printf "\"Abadi (best C:"; for (i = 1; i <= 4; i++) printf " %g", bc[cols[i]]; printf ")\""
    for (i = 1; i <= 4; i++) printf " %s %s", best[cols[i]], bstd[cols[i]]; printf "\n"
    split("nsgd:NSGD autos:Auto-S psac:PSAC", names, " ")
    for (j = 1; j <= 3; j++) {
      split(names[j], nm, ":"); printf "\"%s\"", nm[2]
      for (i = 1; i <= 4; i++) printf " %s %s", mean[nm[1], cols[i]], sd[nm[1], cols[i]]; printf "\n"
    }
  }' "$out/dp_compare_summary.csv" >"$work/bars.dat"

# Abadi's accuracy against C, per setting (the tuning curve).
for col in "1 3" "1 8" "8 3" "8 8"; do
  set -- $col
  awk -F, -v n=$1 -v e=$2 'NR > 1 && $1 == n && $4 == e && $2 == "abadi" { print $3, $6, $7 }' \
    "$out/dp_compare_summary.csv" | sort -g >"$work/abadi_$1_$2.dat"
done

# The bars start a little below the lowest mean, so that the differences between rules show.
ylow=$(awk -F, 'NR > 1 && (lo == "" || $6 < lo) { lo = $6 } END { printf "%.2f", int((lo - 0.05) * 20) / 20 }' "$out/dp_compare_summary.csv")
gnuplot <<EOF
set terminal pngcairo size 1400,560 font ",11"
set output "$out/dp_compare.png"
set multiplot layout 1,2 title "DP-PSAC comparison: D-PSGD MLP on Fashion-MNIST ($samples samples, $epochs epochs, delta 1e-5, seeds 1-3, ±1 std)"
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.7 border -1
set ylabel "test accuracy"
set yrange [$ylow:*]
set key below
set xtics rotate by -15
plot "$work/bars.dat" using 2:3:xtic(1) title "1 node, eps 3", \
     "" using 4:5 title "1 node, eps 8", \
     "" using 6:7 title "8 nodes ring, eps 3", \
     "" using 8:9 title "8 nodes ring, eps 8"
unset style
set style data linespoints
set logscale x
set xlabel "Abadi clip bound C (lr = $step/C)"
set xtics norotate
set yrange [*:*]
set title "Abadi clipping: accuracy against C"
plot "$work/abadi_1_3.dat" using 1:2:3 with yerrorlines title "1 node, eps 3", \
     "$work/abadi_1_8.dat" using 1:2:3 with yerrorlines title "1 node, eps 8", \
     "$work/abadi_8_3.dat" using 1:2:3 with yerrorlines title "8 nodes, eps 3", \
     "$work/abadi_8_8.dat" using 1:2:3 with yerrorlines title "8 nodes, eps 8"
unset multiplot
EOF

for rule in nsgd autos psac; do
  awk -F, -v r=$rule 'NR > 1 && $3 == r { print $2, $5, $6 }' "$out/dp_deviation.csv" >"$work/dev_$rule.dat"
done
for c in $abadi_clips; do
  awk -F, -v c=$c 'NR > 1 && $3 == "abadi" && $4 == c { print $2, $5, $6 }' "$out/dp_deviation.csv" >"$work/dev_abadi_$c.dat"
done

gnuplot <<EOF
set terminal pngcairo size 1400,560 font ",11"
set output "$out/dp_deviation.png"
set multiplot layout 1,2 title "Deviation of the noise-free update u from the true batch mean m (MLP, batch 32, mean of 10 batches per point)"
set style data linespoints
set xlabel "SGD step of the trajectory"
set key below
set ylabel "|| u/||u|| - m/||m|| ||  (scale-free)"
set title "direction deviation (u rescaled to the norm of m)"
plot "$work/dev_abadi_0.1.dat" using 1:3 title "Abadi C = 0.1", "$work/dev_abadi_1.dat" using 1:3 title "Abadi C = 1", \
     "$work/dev_abadi_10.dat" using 1:3 title "Abadi C = 10", \
     "$work/dev_nsgd.dat" using 1:3 title "NSGD (C = 1, r = 0.1)", "$work/dev_autos.dat" using 1:3 title "Auto-S (C = 1, gamma = 0.01)", \
     "$work/dev_psac.dat" using 1:3 title "PSAC (C = 1, r = 0.1)"
set ylabel "|| u - m ||"
set logscale y
set title "absolute deviation (u is on the scale of C, m on that of the gradients)"
plot "$work/dev_abadi_0.1.dat" using 1:2 title "Abadi C = 0.1", "$work/dev_abadi_1.dat" using 1:2 title "Abadi C = 1", \
     "$work/dev_abadi_10.dat" using 1:2 title "Abadi C = 10", \
     "$work/dev_nsgd.dat" using 1:2 title "NSGD", "$work/dev_autos.dat" using 1:2 title "Auto-S", "$work/dev_psac.dat" using 1:2 title "PSAC"
unset multiplot
EOF
echo "dp_compare.sh: wrote $out/dp_compare_summary.csv, dp_compare.png, dp_deviation.csv, dp_deviation.png" >&2
