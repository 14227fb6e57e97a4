#!/usr/bin/env bash
# Sets up (apt packages, release build) and trains on the default data with
# NP ranks (default 4) under mpirun. Extra arguments go to `vae-dist train`:
#   Launch/train.sh                       # 4 ranks, Fashion-MNIST, 10 epochs, runs/latest
#   NP=2 Launch/train.sh --epochs 20 --beta 4 --out runs/beta4
set -euo pipefail
cd "$(dirname "$0")/.."
bash Launch/setup.sh
. Launch/common.sh
np=${NP:-4}
mpi_setup "$np"
set -x
exec mpirun -n "$np" "${MPIRUN_FLAGS[@]}" .build/release/vae-dist train "$@"
