#!/usr/bin/env bash
# The gradient reductions side by side across "hosts" (network namespaces, Launch/netns.sh; needs
# root): one rank per host, every link limited to RATE with tc tbf, training
# `train --data synthetic:8192 --batch-size 128 --epochs 3 --threads 1` in rounds that alternate
#   default    the default (overlapped buckets, the progress thread)
#   nothread   the same with VAE_DIST_PROGRESS_THREAD=0
#   bucket0    --bucket-mb 0 (one allreduce after backward)
#   old        the default before 2026-12-06: libnbc's binomial tree, no progress thread
# and prints each one's median samples/s and exposed communication per step over every epoch.
#   bash Launch/reduction_ab.sh [HOSTS [ROUNDS [RATE [OUT]]]]   (defaults: 2 3 1gbit runs/reduction-ab)
set -uo pipefail
cd "$(dirname "$0")/.."
. Launch/common.sh
. Launch/netns.sh
hosts_n=${1:-2} rounds=${2:-3} rate=${3:-1gbit} out=${4:-runs/reduction-ab}
why=$(netns_unavailable)
[ -z "$why" ] || { echo "reduction-ab: network namespaces cannot be made here: $why"; exit 1; }
[ -x .build/release/vae-dist ] || { echo "reduction-ab: no .build/release/vae-dist (bash Launch/setup.sh first)"; exit 1; }
use_venv || { echo "reduction-ab: no Python (.venv, see use_venv in Launch/common.sh)"; exit 1; }
mkdir -p "$out" && : > "$out/results.tsv"
renice -n -10 -p $$ > /dev/null  # as Launch/scaling.sh: a waiting rank should not lose its core
trap netns_down EXIT
trap 'exit 130' INT TERM
netns_up "$hosts_n" || exit 1
netns_env
export OMPI_MCA_btl_tcp_progress_thread=1 VAE_DIST_PROGRESS=0
netns_rate "$rate" || exit 1
args=(train --data synthetic:8192 --batch-size 128 --epochs 3 --threads 1)
for round in $(seq 1 "$rounds"); do
  for c in default nothread bucket0 old; do
    extra=() envs=()
    case $c in
      nothread) envs=(VAE_DIST_PROGRESS_THREAD=0) ;;
      bucket0) extra=(--bucket-mb 0) ;;
      old) envs=(VAE_DIST_PROGRESS_THREAD=0 OMPI_MCA_coll_libnbc_iallreduce_algorithm=2) ;;
    esac
    rm -rf "$out/run-$c"
    if ! env "${envs[@]}" bash Launch/launch.sh --hostfile "$NETNS_HOSTFILE" -n "$hosts_n" "${args[@]}" "${extra[@]}" \
         --out "$out/run-$c" > "$out/$c-$round.log" 2>&1; then
      echo "reduction-ab: $c failed: $(tail -2 "$out/$c-$round.log" | tr '\n' ' ')"; exit 1
    fi
    "$python" - "$out/run-$c/metrics.jsonl" "$c" >> "$out/results.tsv" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(sys.argv[2], r["samples_per_second"], r["communication_ms_per_step"], sep="\t")
PY
    echo "reduction-ab: round $round, $c: $(grep -m1 'gradient reduction' "$out/$c-$round.log" | sed 's/^vae-dist: gradient reduction: //')"
  done
done
"$python" - "$out/results.tsv" "$hosts_n" "$rate" <<'PY'
import collections, statistics, sys
rate, comm = collections.defaultdict(list), collections.defaultdict(list)
for line in open(sys.argv[1]):
    c, sps, ms = line.split("\t")
    rate[c].append(float(sps)); comm[c].append(float(ms))
print(f"reduction-ab: {sys.argv[2]} hosts, {sys.argv[3]} links, median of {len(rate['default'])} epochs:")
for c in rate:
    print(f"  {c:9s} {statistics.median(rate[c]):8.0f} samples/s  exposed communication {statistics.median(comm[c]):6.2f} ms/step"
          f"  ({min(rate[c]):.0f}-{max(rate[c]):.0f})  {statistics.median(rate[c]) / statistics.median(rate['bucket0']):.2f}x --bucket-mb 0")
PY
