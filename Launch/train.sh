#!/usr/bin/env bash
# Sets up (apt packages, release build) and trains on the default data with
# NP ranks (default 4) under mpirun. Extra arguments go to `vae-dist train`; relative paths in
# them (--data, --out) are the current folder's, as for any command:
#   Launch/train.sh                       # 4 ranks, Fashion-MNIST, 10 epochs, runs/latest
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
