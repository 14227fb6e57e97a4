#!/usr/bin/env bash
# Sets up (apt packages, release build) and trains on the default data with
# NP ranks (default 4) under mpirun. Extra arguments go to `vae-dist train`:
#   Launch/train.sh                       # 4 ranks, Fashion-MNIST, 10 epochs, runs/latest
#   NP=2 Launch/train.sh --epochs 20 --beta 4 --out runs/beta4
# Ctrl-C (or SIGTERM) stops the job cleanly: mpirun passes it to every rank as SIGTERM, the
# ranks finish the step, rank 0 writes a checkpoint, and this script exits 0 when that
# checkpoint records the stop (mpirun itself reports a signaled job with exit 1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash Launch/setup.sh
. Launch/common.sh
np=${NP:-4}
mpi_setup "$np"
out=runs/latest
args=("$@")
for i in "${!args[@]}"; do
  case "${args[$i]}" in
    --out) out=${args[$((i + 1))]:-$out} ;;
    --out=*) out=${args[$i]#--out=} ;;
  esac
done
echo "+ mpirun -n $np ${MPIRUN_FLAGS[*]} .build/release/vae-dist train $*"
signaled=0
mpirun -n "$np" "${MPIRUN_FLAGS[@]}" .build/release/vae-dist train "$@" &
pid=$!
trap 'signaled=1; kill -TERM "$pid" 2>/dev/null || true' INT TERM
set +e
while :; do
  wait "$pid"; code=$?  # returns early when the trap runs; wait again until mpirun is gone
  kill -0 "$pid" 2>/dev/null || break
done
set -e
if [ "$signaled" -eq 1 ]; then
  stopped=$(.build/release/vae-dist inspect --json "$out/checkpoints/latest.safetensors" 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["metadata"].get("stopped_by", ""))' 2>/dev/null || true)
  if [ -n "$stopped" ]; then
    echo "train.sh: stopped by $stopped with a checkpoint in $out; continue with the same command plus --resume"
    exit 0
  fi
fi
exit "$code"
