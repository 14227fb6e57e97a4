#!/usr/bin/env bash
# Starts vae-dist on several nodes: one script for a hostfile (mpirun) and for Slurm (srun), used
# by Launch/slurm.sbatch and by Tests/integration/multihost_test.sh exactly as a user runs it.
#   bash Launch/launch.sh --hostfile Launch/hostfile.example [-n 8] train --out /shared/runs/a
#   bash Launch/launch.sh [-n 8] train ...      inside a Slurm allocation: srun --mpi=pmix starts the ranks
#   bash Launch/launch.sh --dry-run ...         prints the command only
# Without -n, mpirun starts one rank per slot of the hostfile (srun: one per task). Every node runs
# this repository's .build/release/vae-dist at the same absolute path (build it once with
# Launch/setup.sh on a node with the same CPU type, on a shared file system or copied), and reads
# --data itself; only rank 0 writes --out, relative to the current folder. The network and how to
# reach the nodes are the site's Open MPI settings: OMPI_MCA_* in the environment or
# openmpi-mca-params.conf (Tests/integration/multihost_test.sh sets them for its network namespaces).
set -euo pipefail
repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
. "$repo/Launch/common.sh"
bin=${VAE_DIST_BIN:-$repo/.build/release/vae-dist}   # VAE_DIST_BIN: another build (same path on every node)
hostfile="" np="" dry=0
usage="usage: bash Launch/launch.sh [--hostfile FILE] [-n RANKS] [--dry-run] train|bench|eval ... (vae-dist arguments)"
while [ $# -gt 0 ]; do
  case "$1" in
    --hostfile) [ $# -ge 2 ] || { echo "launch: --hostfile needs a file ($usage)" >&2; exit 1; }; hostfile=$2; shift 2 ;;
    -n|--np) [ $# -ge 2 ] || { echo "launch: $1 needs a rank count ($usage)" >&2; exit 1; }; np=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "launch: no vae-dist command ($usage)" >&2; exit 1; }
if [ -n "$np" ] && ! [[ "$np" =~ ^[1-9][0-9]*$ ]]; then echo "launch: -n '$np': expected a positive rank count" >&2; exit 1; fi
[ -x "$bin" ] || { echo "launch: no $bin (build it first: bash Launch/setup.sh)" >&2; exit 1; }

if [ -n "$hostfile" ]; then
  [ -r "$hostfile" ] || { echo "launch: --hostfile $hostfile: no such readable file" >&2; exit 1; }
  grep -qvE '^[[:space:]]*(#|$)' "$hostfile" || { echo "launch: --hostfile $hostfile: names no host" >&2; exit 1; }
  mpi_allow_root
  command=(mpirun --hostfile "$hostfile" ${np:+-n "$np"} "$bin" "$@")
elif [ -n "${SLURM_JOB_ID:-}" ]; then
  # srun starts every rank through PMIx (Open MPI's srun support); vae-dist detects it.
  command=(srun --mpi=pmix ${np:+-n "$np"} "$bin" "$@")
else
  echo "launch: no --hostfile and not inside a Slurm allocation (SLURM_JOB_ID unset); on one machine use mpirun -n N $bin" >&2
  exit 1
fi
echo "+ ${command[*]}"
[ "$dry" -eq 1 ] && exit 0
# srun passes signals on to every task itself; mpirun gets them as SIGUSR1 (run_stoppable).
[ "${command[0]}" = srun ] && exec "${command[@]}"
run_stoppable "${command[@]}"
exit "$run_status"
