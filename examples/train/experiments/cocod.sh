#!/usr/bin/env bash
# CoCoD-SGD's headline on decopt's own terms (Shen et al., "Faster Distributed Deep Net Training:
# Computation and Communication Decoupled Stochastic Gradient Descent", IJCAI 2019, arXiv
# 1906.12043): up to 2-3x faster than synchronous SGD to the same accuracy.
#
# Fashion-MNIST MLP, 8 nodes, simulated network with a deterministic virtual clock: every gradient
# evaluation costs STEP_SECONDS of virtual time (decopt-train --step-seconds; the measured compute
# time is ignored, so the figures do not depend on this machine or its load), and the link's
# bandwidth is set so that one exchange costs EXCHANGE_RATIO x one local step. Methods, at the same
# number of gradient evaluations (EPOCHS over TRAIN_SAMPLES images):
#   sync SGD       --step sync    --local-steps 1
#   Local-SGD(tau) --step sync    --local-steps tau     tau in {2, 4, 8}
#   CoCoD(tau)     --step overlap --local-steps tau     (the exchange runs during the tau steps)
# Two settings:
#   complete  dpsgd (identity compressor: D-PSGD's exact gossip), complete graph, gamma = 1: with
#             W = 11^T/n this is exact averaging, i.e. the paper's setting.
#   ring      Malcom-PSGD (dithered quantizer + vector source coding + l1 prox, its defaults) on a
#             ring, over the SAME link as "complete" (the compressed exchange is then far cheaper
#             than a step) and over a link slowed until the compressed exchange again costs
#             EXCHANGE_RATIO x one step ("ring-slow").
# Accuracy is that of the nodes' average model x̄ = (1/n) Σ_i x_i (decopt-train --eval-average: the
# model a run deploys, and CoCoD-SGD's output); EVAL_AVERAGE=0 scores the mean of the nodes' own
# models instead, where CoCoD's nodes each carry their last tau local steps unaveraged.
# Output under OUT (default examples/train/results/cocod): runs.csv (every evaluation of every run),
# summary.csv (simulated seconds to TARGET per run, speed-up vs sync SGD), accuracy_vs_simulated_time.png.
#
# Usage: examples/train/experiments/cocod.sh [path/to/decopt-train] [out-dir]
# Cost: 21 runs of 3 epochs over 16 000 images (2 000 per node; 189-192 gradient evaluations per
# node), each evaluated >= 24 times on the whole test set: about 3 min of CPU with --eval-average,
# 8 min without (nice -n 10; the figures themselves do not depend on the machine).
set -euo pipefail

TRAIN=${1:-build/examples/train/decopt-train}
OUT=${2:-examples/train/results/cocod}
STEP_SECONDS=${STEP_SECONDS:-0.01}    # virtual seconds per gradient evaluation
EXCHANGE_RATIO=${EXCHANGE_RATIO:-1.5} # one exchange = this many local steps
TARGET=${TARGET:-0.80}                # mean test accuracy (whole test set) to reach
TRAIN_SAMPLES=${TRAIN_SAMPLES:-16000}
EPOCHS=${EPOCHS:-3}
EVALS=${EVALS:-25}
NODES=8
SEED=${SEED:-1}
EVAL_AVERAGE=${EVAL_AVERAGE:-1}

mkdir -p "$OUT/runs"
common=(--nodes "$NODES" --train-samples "$TRAIN_SAMPLES" --seed "$SEED" --step-seconds "$STEP_SECONDS"
        --target-accuracy "$TARGET" --quiet --json)
scored="mean test accuracy of the 8 nodes' own models"
if [[ $EVAL_AVERAGE == 1 ]]; then
  common+=(--eval-average)
  scored="test accuracy of the nodes' average model"
fi

json_field() {  # json_field NAME LINE: the value of a numeric (or null) field of a one-line JSON object
  sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" <<<"$2"
}

# Bandwidth (Mbit/s) at which one message of the setting costs EXCHANGE_RATIO x STEP_SECONDS,
# from the mean message size of a one-epoch run (links = messages per round: n(n-1) or 2n).
calibrate() {  # calibrate LINKS FLAGS...
  local links=$1
  shift
  local line
  line=$(nice -n 10 "$TRAIN" "${common[@]}" "$@" --epochs 1 --evals 1 | tail -n 1)
  local bytes rounds
  bytes=$(json_field total_bytes_sent "$line")
  rounds=$(json_field rounds "$line")
  awk -v b="$bytes" -v r="$rounds" -v l="$links" -v s="$STEP_SECONDS" -v x="$EXCHANGE_RATIO" \
    'BEGIN { printf "%.6g", 8 * b / (r * l) / (x * s) / 1e6 }'
}

complete_flags=(--algorithm dpsgd --topology complete --gamma 1)
ring_flags=(--algorithm malcom --topology ring)
complete_mbps=$(calibrate $((NODES * (NODES - 1))) "${complete_flags[@]}")
ring_slow_mbps=$(calibrate $((2 * NODES)) "${ring_flags[@]}")
echo "link: complete/dpsgd $complete_mbps Mbit/s; ring-slow/malcom $ring_slow_mbps Mbit/s" >&2

echo "setting,method,step,tau,bandwidth_mbps,rounds,test_accuracy,simulated_seconds,simulated_seconds_to_target,rounds_to_target,bytes_to_target" \
  >"$OUT/summary.csv"
: >"$OUT/runs.csv"

run() {  # run SETTING MBPS METHOD STEP TAU FLAGS...
  local setting=$1 mbps=$2 method=$3 step=$4 tau=$5
  shift 5
  local csv="$OUT/runs/$setting-$method.csv"
  local line
  line=$(nice -n 10 "$TRAIN" "${common[@]}" "$@" --bandwidth-mbps "$mbps" --step "$step" --local-steps "$tau" \
           --epochs "$EPOCHS" --evals "$EVALS" --csv "$csv" | tail -n 1)
  echo "$setting,$method,$step,$tau,$mbps,$(json_field rounds "$line"),$(json_field test_accuracy "$line")," \
       "$(json_field simulated_seconds "$line"),$(json_field simulated_seconds_to_target "$line")," \
       "$(json_field rounds_to_target "$line"),$(json_field bytes_to_target "$line")" | tr -d ' ' >>"$OUT/summary.csv"
  # runs.csv: setting, method, then decopt-train's own columns.
  awk -v s="$setting" -v m="$method" -F, 'NR == 1 { next } { print s "," m "," $0 }' "$csv" >>"$OUT/runs.csv"
  echo "$setting $method: $line" >&2
}

grid() {  # grid SETTING MBPS FLAGS...
  local setting=$1 mbps=$2
  shift 2
  run "$setting" "$mbps" sync-SGD sync 1 "$@"
  for tau in 2 4 8; do
    run "$setting" "$mbps" "Local-SGD($tau)" sync "$tau" "$@"
    run "$setting" "$mbps" "CoCoD($tau)" overlap "$tau" "$@"
  done
}

grid complete "$complete_mbps" "${complete_flags[@]}"
grid ring "$complete_mbps" "${ring_flags[@]}"
grid ring-slow "$ring_slow_mbps" "${ring_flags[@]}"

# The header of decopt-train's CSV, prefixed, on top of runs.csv.
header=$(head -n 1 "$OUT/runs/complete-sync-SGD.csv")
sed -i "1i setting,method,$header" "$OUT/runs.csv"

# Speed-up of each run over sync SGD of its setting, to the target.
awk -F, -v OFS=, 'NR == 1 { print $0, "speedup_vs_sync"; next }
  { rows[NR] = $0; set[NR] = $1; t[NR] = $9; if ($2 == "sync-SGD") base[$1] = $9 }
  END { for (i = 2; i <= NR; ++i) {
          s = (t[i] == "null" || base[set[i]] == "" || base[set[i]] == "null") ? "null" : sprintf("%.3f", base[set[i]] / t[i])
          print rows[i], s } }' "$OUT/summary.csv" >"$OUT/summary.tmp" && mv "$OUT/summary.tmp" "$OUT/summary.csv"

# Accuracy against simulated time: one panel per setting, one curve per method.
col() { head -n 1 "$OUT/runs.csv" | tr ',' '\n' | grep -nx "$1" | cut -d: -f1; }
acc=$(col test_accuracy)
sim=$(col simulated_seconds)
methods="sync-SGD Local-SGD(2) CoCoD(2) Local-SGD(4) CoCoD(4) Local-SGD(8) CoCoD(8)"
panel() {  # panel SETTING TITLE: a gnuplot plot command for one setting
  local setting=$1 title=$2 sep=""
  printf 'set title "%s"\nplot ' "$title"
  for m in $methods; do
    printf '%s"< grep \\"^%s,%s,\\" %s" using %d:%d with linespoints title "%s"' \
      "$sep" "$setting" "$m" "$OUT/runs.csv" "$sim" "$acc" "$m"
    sep=", "
  done
  printf ', %s with lines dashtype 2 lc "black" title "target %s"\n' "$TARGET" "$TARGET"
}
{
  echo 'set terminal pngcairo size 1800,560 font ",10"'
  echo "set output \"$OUT/accuracy_vs_simulated_time.png\""
  echo 'set datafile separator ","'
  echo 'set multiplot layout 1,3'
  echo 'set xlabel "simulated seconds (virtual clock: '"$STEP_SECONDS"' s per gradient evaluation)"'
  echo "set ylabel \"$scored (10 000 test images)\""
  echo 'set yrange [0.6:0.88]'
  echo 'set key bottom right'
  echo 'set grid'
  panel complete "D-PSGD (identity), complete graph, gamma = 1; exchange = $EXCHANGE_RATIO local steps ($complete_mbps Mbit/s)"
  panel ring "Malcom-PSGD, ring, same link ($complete_mbps Mbit/s)"
  panel ring-slow "Malcom-PSGD, ring; exchange = $EXCHANGE_RATIO local steps ($ring_slow_mbps Mbit/s)"
  echo 'unset multiplot'
} | gnuplot
echo "wrote $OUT/summary.csv, $OUT/runs.csv, $OUT/accuracy_vs_simulated_time.png" >&2
column -s, -t "$OUT/summary.csv" >&2
