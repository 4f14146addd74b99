#!/usr/bin/env bash
# ctest helper: decopt-train on 4 MPI ranks with --timeout 3. Once the ranks are training (rank 2
# has read as many bytes as the data files hold, then a second more; no evaluation before the end,
# so the ranks are exchanging), rank 2 is stopped with kill -STOP, as an operator's mistake or a
# frozen machine would. The job must end by itself within the timeout + 10 s, with a non-zero exit
# and a TransportError naming rank, round and neighbour on stderr ("rank 1 timed out after 3 s
# waiting for round t from neighbour (rank) 2"), and leave no process behind (any found is
# continued and killed, and the test fails).
#   check_mpi_stopped_rank.sh MPIEXEC PROGRAM [DATA_DIR]
set -u
mpiexec=$1 program=$2 data=${3:-/usr/share/datasets/fashion-mnist}  # decopt-train's default --data
work=$(mktemp -d)
token=decopt-train-stopped-$$-$RANDOM  # in every command line of the job: how its processes are found
ln -s "$program" "$work/$token"
job_pids() { pgrep -f "$token"; }
kill_left_behind() {
  for pid in $(job_pids); do
    kill -CONT "$pid" 2>/dev/null
    kill -KILL "$pid" 2>/dev/null
  done
}
fail() {
  echo "FAILED: $*"
  echo "--- stderr of the job:"
  cat "$work/err"
  kill_left_behind
  rm -rf "$work"
  exit 1
}

"$mpiexec" -np 4 --allow-run-as-root --oversubscribe "$work/$token" --nodes 4 --rounds 1000000 \
  --eval-every 1000000 --train-samples 1000 --hidden 16 --quiet --transport mpi --timeout 3 --data "$data" >"$work/out" 2>"$work/err" &
job=$!
data_bytes=$(cat "$data"/*.gz | wc -c)
rank2=""
for _ in $(seq 600); do  # start-up and loading: at most 60 s
  kill -0 "$job" 2>/dev/null || fail "the job ended before rank 2 was stopped"
  if [ -z "$rank2" ]; then
    for pid in $(job_pids); do
      if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=2'; then rank2=$pid; fi
    done
  fi
  if [ -n "$rank2" ]; then
    read_bytes=$(awk '$1 == "rchar:" {print $2}' "/proc/$rank2/io" 2>/dev/null)
    [ "${read_bytes:-0}" -ge "$data_bytes" ] && break
  fi
  sleep 0.1
done
[ -n "$rank2" ] && [ "${read_bytes:-0}" -ge "$data_bytes" ] || fail "rank 2 did not load the data within 60 s"
sleep 1
kill -STOP "$rank2"
start=$(date +%s%N)
for _ in $(seq 400); do  # at most 40 s
  kill -0 "$job" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$job" 2>/dev/null && fail "the job still runs 40 s after rank 2 was stopped"
wait "$job"
rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
[ -n "$(job_pids)" ] && fail "processes left behind after the job ended: $(job_pids | tr '\n' ' ')"
[ "$rc" -ne 0 ] || fail "the job exited 0"
[ "$elapsed_ms" -le 13000 ] || fail "the job took $elapsed_ms ms to end after rank 2 was stopped (timeout 3 s)"
expect='^decopt-train: decopt: transport: rank [0-9]+ timed out after 3[.0-9]* s waiting for round [0-9]+ from neighbour \(rank\) [0-9]+$'
line=$(grep -E -m1 "$expect" "$work/err") || fail "no TransportError naming rank, round and neighbour on stderr"
echo "ended ${elapsed_ms} ms after rank 2 was stopped (exit $rc): $line"
rm -rf "$work"
