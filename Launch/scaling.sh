#!/usr/bin/env bash
# Scaling, measured and modelled. Measures, with the release binary:
#   - the collectives of each gradient reduction alone (`vae-dist bench --allreduce`: medians of
#     repeats, 4 KB .. 4 MB and the default model's 2.6 MB gradient) on 2 and 4 ranks over shared
#     memory (one host) and over TCP between network namespaces (Launch/netns.sh: one rank per
#     "host", veth links unlimited and limited with tc tbf to 25, 10 and 1 Gbit/s);
#   - the real training step on 2 ranks (`mpirun -n 2 vae-dist bench`, each reduction strategy,
#     per-rank batches 16, 64, 256) over shared memory and over the links;
#   - the single-rank step at 1 thread (`vae-dist bench`), for the compute rate;
# then Launch/scaling_model.py fits the alpha-beta model of Open MPI's algorithms, checks it
# against the measured steps and projects samples/s and efficiency to 8 .. 4096 ranks.
#   bash Launch/scaling.sh [OUT]           measure into OUT (default runs/scaling), then fit
#   bash Launch/scaling.sh --fit-only OUT  only the fit and the tables, from OUT's measurements
# The links need root (network namespaces); without it only shared memory is measured.
# About 6-8 minutes on 2 cores. Timings on a shared machine are noisy: every number is a median.
set -euo pipefail
cd "$(dirname "$0")/.."
. Launch/common.sh
. Launch/netns.sh
bin=$PWD/.build/release/vae-dist
fit_only=0
[ "${1:-}" = --fit-only ] && { fit_only=1; shift; }
out=${1:-runs/scaling}
python=python3
"$python" -c "import numpy" 2>/dev/null || { [ -x .venv/bin/python ] && python=.venv/bin/python; }
"$python" -c "import numpy" 2>/dev/null || { echo "scaling: numpy is missing (python3 -m pip install numpy)"; exit 1; }

if [ "$fit_only" -eq 0 ]; then
  [ -x "$bin" ] || { echo "scaling: no $bin (bash Launch/setup.sh first)"; exit 1; }
  mkdir -p "$out"
  : > "$out/collectives.jsonl"; : > "$out/steps.jsonl"
  export VAE_DIST_PROGRESS=0
  tag() {  # TRANSPORT GBIT: JSON lines of vae-dist bench, labelled with where they ran
    sed -n "s/^{/{\"transport\": \"$1\", \"link_gbit\": $2, /p"
  }
  echo "scaling: single rank, 1 thread: the compute rate"
  "$bin" bench --batches 16,32,64,128,256 --threads 1 --json | tag none null > "$out/compute.jsonl"
  for np in 2 4; do
    echo "scaling: shared memory, $np ranks: collectives"
    run_mpi "$np" "$bin" bench --allreduce --json | tag shm null >> "$out/collectives.jsonl"
  done
  echo "scaling: shared memory, 2 ranks: training step"
  run_mpi 2 "$bin" bench --batches 16,64,256 --threads 1 --json | tag shm null >> "$out/steps.jsonl"

  why=$(netns_unavailable)
  if [ -n "$why" ]; then
    echo "scaling: links not measured: network namespaces cannot be made here: $why"
  else
    trap netns_down EXIT
    trap 'exit 130' INT TERM
    netns_up 4
    netns_env
    head -2 "$NETNS_HOSTFILE" > "$NETNS_DIR/hosts2"
    for rate in none 25 10 1; do
      netns_unlimit
      if [ "$rate" = none ]; then gbit=null; else gbit=$rate; netns_rate "${rate}gbit"; fi
      for np in 2 4; do
        hosts=$NETNS_HOSTFILE; [ "$np" -eq 2 ] && hosts=$NETNS_DIR/hosts2
        echo "scaling: TCP over veth, link ${rate/none/unlimited}${gbit/null/} Gbit/s, $np hosts: collectives"
        bash Launch/launch.sh --hostfile "$hosts" -n "$np" bench --allreduce --json 2>/dev/null | tag veth "$gbit" >> "$out/collectives.jsonl"
      done
      if [ "$rate" != 25 ]; then
        echo "scaling: TCP over veth, link ${rate/none/unlimited}${gbit/null/} Gbit/s, 2 hosts: training step"
        bash Launch/launch.sh --hostfile "$NETNS_DIR/hosts2" -n 2 bench --batches 16,64,256 --threads 1 --json 2>/dev/null | tag veth "$gbit" >> "$out/steps.jsonl"
      fi
    done
    netns_down
  fi
  echo "scaling: $(wc -l < "$out/collectives.jsonl") collective timings, $(wc -l < "$out/steps.jsonl") step timings in $out"
fi
"$python" Launch/scaling_model.py "$out"
