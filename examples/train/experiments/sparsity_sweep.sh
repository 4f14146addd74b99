#!/usr/bin/env bash
# Issue 15 item 2: do sparse models cost fewer bits, and at what accuracy? Malcom-PSGD (support
# coding, SupportCoded) on the Fashion-MNIST MLP, 8 nodes, ring, 10 epochs, one run per line of
# RUNS: "label|flags" (--lambda, --support-patience, --support-levels, --lambda-warmup, --lambda-ramp).
# Writes OUT/summary.csv, one row per run: test accuracy, zero fraction of the models and of the
# sent supports, bits per parameter per round over the whole run, over the last evaluation interval
# (--evals 20: the last ~5% of the rounds) and over the last epoch, the target bits
# (1 - 0.8 * sent zero fraction) x the lambda = 0 run's last interval (the first run of RUNS must be
# lambda = 0), and neighbor_sum_error (s against s recomputed from every node's x-hat).
# Usage: examples/train/experiments/sparsity_sweep.sh [decopt-train] [out-dir]; RUNS from the
# environment, one "label|flags" per line; JOBS runs at a time (default 2). A run whose JSON is
# already in OUT is not run again. Cost: ~3-4 min of CPU per run (8 nodes x 2344 rounds).
set -euo pipefail
TRAIN=${1:-build/release/examples/train/decopt-train}
OUT=${2:-examples/train/results/sparsity}
JOBS=${JOBS:-2}
RUNS=${RUNS:-"lambda0|--lambda 0
l3e-4|--lambda 3e-4
l1e-3|--lambda 1e-3
l2e-3|--lambda 2e-3
l3e-3|--lambda 3e-3
l1e-2|--lambda 1e-2
l3e-3_w5r3|--lambda 3e-3 --lambda-warmup 5 --lambda-ramp 3
l1e-2_w8|--lambda 1e-2 --lambda-warmup 8"}
mkdir -p "$OUT"
run() {  # label flags...
  local label=$1; shift
  [ -s "$OUT/$label.json" ] && return 0
  "$TRAIN" --algorithm malcom --nodes 8 --topology ring --epochs 10 --quiet --json --csv "$OUT/$label.csv" "$@" \
    | tail -1 > "$OUT/$label.json.tmp" && mv "$OUT/$label.json.tmp" "$OUT/$label.json"
}
while IFS='|' read -r label flags; do
  [ -z "$label" ] && continue
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  # shellcheck disable=SC2086
  run "$label" $flags &
done <<< "$RUNS"
wait
python3 - "$OUT" "$RUNS" > "$OUT/summary.csv" <<'PY'
import csv, json, sys
out, runs = sys.argv[1], [l.split('|', 1) for l in sys.argv[2].splitlines() if l.strip()]
print("label,flags,test_accuracy,model_zeros,sent_zeros,bits_overall,bits_last_interval,bits_last_epoch,target_bits,neighbor_sum_error")
base = None
for label, flags in runs:
    j = json.load(open(f"{out}/{label}.json"))
    rows = list(csv.DictReader(open(f"{out}/{label}.csv")))
    last = float(rows[-1]["bits_per_param_per_round"])
    epoch_before = [r for r in rows if float(r["epoch"]) <= float(rows[-1]["epoch"]) - 1 + 1e-9][-1]
    links = 2 * j["nodes"]  # a ring: every node sends to 2 neighbours
    last_epoch = 8 * (int(rows[-1]["bytes_sent"]) - int(epoch_before["bytes_sent"])) / (
        (j["rounds"] - int(epoch_before["round"])) * links * j["parameters"])
    zeros = j.get("sent_sparsity", j["sparsity"])
    base = last if base is None else base
    print(f"{label},{flags.strip()},{j['test_accuracy']:.4f},{j['sparsity']:.3f},{zeros:.3f},"
          f"{j['bits_per_param_per_round']:.3f},{last:.3f},{last_epoch:.3f},{(1 - 0.8 * zeros) * base:.3f},"
          f"{j['neighbor_sum_error']:.2e}")
PY
cat "$OUT/summary.csv"

# The curves: test accuracy, model sparsity and bits per parameter per round against rounds.
plot_runs() {  # plot_runs COLUMN: one line per run
  local first=1
  while IFS='|' read -r label _; do
    [[ -z $label ]] && continue
    ((first)) || printf ', '
    printf '"%s/%s.csv" using 2:%s with linespoints title "%s"' "$OUT" "$label" "$1" "$label"
    first=0
  done <<<"$RUNS"
}
{
  echo 'set terminal pngcairo size 1500,460 font ",10" noenhanced'
  echo "set output \"$OUT/sparsity_curves.png\""
  echo 'set datafile separator ","'
  echo 'set multiplot layout 1,3 title "Malcom-PSGD on the Fashion-MNIST MLP, 8-node ring, 10 epochs: l1 weight lambda and its schedule"'
  echo 'set xlabel "round"; set grid; unset key'  # one key, in the middle panel (same colours)
  echo 'set ylabel "test accuracy (mean over nodes)"'
  echo "plot $(plot_runs 6)"
  echo 'set ylabel "parameters exactly zero (fraction, mean over nodes)"; set key center right'
  echo "plot $(plot_runs 9)"
  echo 'set ylabel "bits per parameter per round (since the previous point)"; set logscale y; unset key'
  echo "plot $(plot_runs 15)"
  echo 'unset multiplot'
} | gnuplot
echo "wrote $OUT/sparsity_curves.png"
