#!/usr/bin/env bash
# Issue 17, item 2: Stochastic Gradient Push (Assran, Loizou, Ballas & Rabbat, "Stochastic Gradient
# Push for Distributed Deep Learning", ICML 2019) on directed graphs against D-PSGD on undirected
# ones. SGP on the directed exponential graph (i -> i + 2^k: log2 n out-neighbours) and on the
# directed ring (one out-neighbour); D-PSGD on the undirected exponential graph (the target: SGP
# within 1 point of it) and on the ring, for reference. Fashion-MNIST MLP, IID split, 2 epochs,
# simulated network, seed 1, the same lr (0.1) and batch (32) for every run, every other flag at its
# default, on 8 and 16 nodes. Each run reports the mean of the nodes' own test accuracies
# (test_accuracy), the average model's (average_model_accuracy), the bytes sent and the messages
# per node per round; SGP's also its push-sum weights (1 on these regular graphs, up to rounding).
#
# Usage: examples/train/experiments/push_sum.sh [path/to/decopt-train] [out.jsonl] [extra flags...]
# Cost: 8 runs of 2 epochs (470 rounds on 8 nodes, 235 on 16), about 0.5-2 min of wall time each on
# the shared 2-core machine, one at a time.
set -euo pipefail
TRAIN=${1:-build/release/examples/train/decopt-train}
OUT=${2:-examples/train/results/push_sum.jsonl}
shift $(( $# > 2 ? 2 : $# ))
: > "$OUT"
for nodes in 8 16; do
  for run in "sgp directed-exponential" "sgp directed-ring" "dpsgd exponential" "dpsgd ring"; do
    read -r algorithm topology <<< "$run"
    echo "== $nodes nodes, $algorithm on $topology $*" >&2
    "$TRAIN" --nodes "$nodes" --algorithm "$algorithm" --topology "$topology" --lr 0.1 --batch 32 \
      --epochs 2 --seed 1 --quiet --json "$@" | tail -n 1 >> "$OUT"
  done
done
# One line per run: nodes, algorithm, graph, nodes' mean accuracy, average model's, MB, messages/node/round.
python3 - "$OUT" <<'PY'
import json, sys
print(f"{'nodes':>5} {'algorithm':<6} {'graph':<26} {'mean acc':>8} {'avg acc':>8} {'MB sent':>10} {'msg/node/rd':>11} {'consensus':>10}")
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"{r['nodes']:>5} {r['algorithm']:<6} {r['topology']:<26} {r['test_accuracy']:>8.4f} "
          f"{r['average_model_accuracy']:>8.4f} {r['total_bytes_sent'] / 1e6:>10.1f} "
          f"{r['messages_per_node_per_round']:>11.3f} {r['consensus_distance']:>10.3g}")
PY
