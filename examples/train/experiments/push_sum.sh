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
# A table of the runs, then SGP's gap to D-PSGD on the undirected graph of the same kind (the
# target: directed exponential against exponential within 1 point).
python3 - "$OUT" <<'PY'
import json, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
columns = [("nodes", 5, "{}"), ("algorithm", 9, "{}"), ("topology", 26, "{}"), ("test_accuracy", 8, "{:.4f}"),
           ("average_model_accuracy", 8, "{:.4f}"), ("total_bytes_sent", 10, "{:.1f}"),
           ("messages_per_node_per_round", 11, "{:.3f}"), ("consensus_distance", 10, "{:.3g}")]
titles = ["nodes", "algorithm", "graph", "mean acc", "avg acc", "MB sent", "msg/node/rd", "consensus"]
print(" ".join(t.rjust(w) for t, (_, w, _) in zip(titles, columns)))
for r in runs:
    values = [r[k] / 1e6 if k == "total_bytes_sent" else r[k] for k, _, _ in columns]
    print(" ".join(f.format(v).rjust(w) for v, (_, w, f) in zip(values, columns)))
by = {(r["nodes"], r["algorithm"], r["topology"].split("(")[0]): r for r in runs}
for n in sorted({r["nodes"] for r in runs}):
    for directed, undirected in (("directed-exponential", "exponential"), ("directed-ring", "ring")):
        s, d = by.get((n, "sgp", directed)), by.get((n, "dpsgd", undirected))
        if s and d:
            print(f"n = {n}: SGP on {directed} - D-PSGD on {undirected}: "
                  f"{100 * (s['test_accuracy'] - d['test_accuracy']):+.2f} points (nodes' mean), "
                  f"{100 * (s['average_model_accuracy'] - d['average_model_accuracy']):+.2f} (average model), "
                  f"{100 * s['total_bytes_sent'] / d['total_bytes_sent']:.0f}% of the bytes")
PY
