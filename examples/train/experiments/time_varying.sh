#!/usr/bin/env bash
# Issue 17, item 1: time-varying gossip on the one-peer exponential schedule (Ying et al.,
# "Exponential Graph is Provably Efficient for Decentralized Deep Training", NeurIPS 2021) against
# the static exponential graph it is drawn from, which sends log2 n messages per node per round.
# Fashion-MNIST MLP, IID split, 2 epochs, simulated network, seed 1, every other flag at its
# default; D-PSGD (exact gossip), CHOCO-SGD and Malcom-PSGD (on the schedule: its plain pipeline,
# dithered + VSC + l1 prox, since SupportCoded does not fit per-edge copies; on the static graph:
# SupportCoded as always), on 8 and 16 nodes. Each run reports the mean of the nodes' own test
# accuracies (test_accuracy) and the average model's (average_model_accuracy), the bytes sent and
# the messages per node per round.
#
# Usage: [ALGORITHMS="dpsgd choco malcom"] examples/train/experiments/time_varying.sh [path/to/decopt-train] [out.jsonl] [extra flags...]
# (e.g. extra flags --lr-schedule cosine: time_varying_cosine.jsonl)
# Cost: 12 runs of 2 epochs (470 rounds on 8 nodes, 235 on 16), about 1-2 min of wall time each on
# the shared 2-core machine.
set -euo pipefail
TRAIN=${1:-build/release/examples/train/decopt-train}
OUT=${2:-examples/train/results/time_varying.jsonl}
shift $(( $# > 2 ? 2 : $# ))
: > "$OUT"
for nodes in 8 16; do
  for algorithm in ${ALGORITHMS:-dpsgd choco malcom}; do
    for schedule in static one-peer-exp; do
      echo "== $nodes nodes, $algorithm, $schedule $*" >&2
      "$TRAIN" --nodes "$nodes" --algorithm "$algorithm" --topology exponential --schedule "$schedule" \
        --epochs 2 --seed 1 --quiet --json "$@" | tail -n 1 >> "$OUT"
    done
  done
done
# One line per run: nodes, algorithm, schedule, nodes' mean accuracy, average model's, MB, messages/node/round.
python3 - "$OUT" <<'PY'
import json, sys
print(f"{'nodes':>5} {'algorithm':<8} {'schedule':<13} {'mean acc':>8} {'avg acc':>8} {'MB sent':>10} {'msg/node/rd':>11}")
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"{r['nodes']:>5} {r['algorithm']:<8} {r['schedule']:<13} {r['test_accuracy']:>8.4f} "
          f"{r['average_model_accuracy']:>8.4f} {r['total_bytes_sent'] / 1e6:>10.1f} {r['messages_per_node_per_round']:>11.3f}")
PY
