#!/usr/bin/env bash
# Sets up (apt packages, release build) and trains on the default data with
# NP ranks under mpirun (default 1: on one node one rank whose kernels run on every core beats
# several ranks, docs/performance.md; each rank takes cores / NP threads). Extra arguments go
# to `vae-dist train`; relative paths in them (--data, --out) are the current folder's:
#   Launch/train.sh                       # 1 rank x all cores, Fashion-MNIST, 10 epochs, runs/latest
#   NP=2 Launch/train.sh --epochs 20 --beta 4 --out runs/beta4
# Ctrl-C, SIGTERM or SIGHUP (a closed terminal) stops the job cleanly: this script passes it to
# mpirun as SIGUSR1, which Open MPI forwards to every rank at once; the ranks finish the step,
# rank 0 writes a checkpoint (however long that takes), and this script exits 0 when that
# checkpoint records the stop.
set -euo pipefail
repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
bash "$repo/Launch/setup.sh"
. "$repo/Launch/common.sh"
bin=$repo/.build/release/vae-dist
np=${NP:-1}
mpi_setup "$np"
# Fewer ranks than cores: each rank gets cores / NP of them (Open MPI would bind it to one core,
# and its kernels would run on one thread).
cores=$(nproc)
if [ -z "${SLURM_JOB_ID:-}" ] && [ "$np" -lt "$cores" ]; then
  MPIRUN_FLAGS+=(--map-by "slot:PE=$((cores / np))" --bind-to core)
fi
out=runs/latest
args=("$@")
for i in "${!args[@]}"; do
  case "${args[$i]}" in
    --out) out=${args[$((i + 1))]:-$out} ;;
    --out=*) out=${args[$i]#--out=} ;;
  esac
done
echo "+ mpirun -n $np ${MPIRUN_FLAGS[*]} $bin train $*"
run_stoppable mpirun -n "$np" "${MPIRUN_FLAGS[@]}" "$bin" train "$@"
if [ -n "$run_signaled" ]; then
  stopped=$("$bin" inspect --json "$out/checkpoints/latest.safetensors" 2>/dev/null \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["metadata"].get("stopped_by", ""))' 2>/dev/null || true)
  if [ -n "$stopped" ]; then
    echo "train.sh: stopped by $run_signaled (passed to the ranks as $stopped) with a checkpoint in $out; continue with the same command plus --resume"
    exit 0
  fi
fi
exit "$run_status"
