#!/usr/bin/env bash
# The reductions across nodes (docs/distributed.md, "How gradients are reduced"), with real ranks:
#   1. MPI_Iallreduce's algorithm: vae-dist's choice (Rabenseifner on 2 and 4 ranks, the ring on
#      3) on the start-up line; a user's OMPI_MCA_coll_libnbc_iallreduce_algorithm or MCA
#      parameter file wins over it;
#   2. the ring (3 ranks) and Rabenseifner (4 ranks) repeat bit for bit run to run, and compute the
#      1-rank model to rounding; the ring's bits differ from the binomial tree's (the choice is applied);
#   3. every reduction against a Double reference on 2 to 7 ranks (bench --allreduce --check);
#   4. the hierarchical reduction on network namespaces (Launch/netns.sh): 2 hosts x 3 ranks
#      (each local rank reduces a third across hosts) and 3 + 2 ranks (unequal hosts: the first
#      rank of each host reduces the whole node sum) against 1 rank; 2 x 3 repeats bit for bit.
# Prints "reduction: N passed, M failed"; the namespace checks skip with one line without root.
set -uo pipefail
. "$(dirname "$0")/lib.sh" reduction
. Launch/netns.sh
use_venv || abort "cannot set up .venv"
export VAE_DIST_PROGRESS=0
args=(train --data synthetic:2048 --epochs 1 --batch-size 120 --seed 7 --threads 1)
strategy() { sed -n 's/^vae-dist: gradient reduction: //p' "$1"; }

"$bin" "${args[@]}" --out "$tmp/r1" > "$tmp/r1.log" 2>&1 || bad "1 rank: $(tail -1 "$tmp/r1.log")"

echo "reduction: MPI_Iallreduce's algorithm, and the user's settings first"
thread="a progress thread polls them every 50 us"  # ReductionProgress.swift
for v in "4:Rabenseifner" "3:ring"; do
  np=${v%%:*} algorithm=${v#*:}
  for run in a b; do
    VAE_DIST_SHARED_MEMORY=0 run_mpi "$np" "$bin" "${args[@]}" --out "$tmp/n$np$run" > "$tmp/n$np$run.log" 2>&1 || bad "$np ranks: $(tail -2 "$tmp/n$np$run.log")"
  done
  [ "$(strategy "$tmp/n${np}a.log")" = "allreduce overlapped with backward in 2 buckets ($algorithm), $thread" ] \
    && ok "$np ranks: $(strategy "$tmp/n${np}a.log")" || bad "$np ranks: expected $algorithm: $(strategy "$tmp/n${np}a.log")"
  out=$(compare "$tmp/n${np}a" "$tmp/n${np}b" 0) && ok "$np ranks, $algorithm: two runs bit-identical" || bad "$np ranks, $algorithm, run to run: $out"
  out=$(compare "$tmp/r1" "$tmp/n${np}a" 1e-4) && ok "$np ranks, $algorithm vs 1 rank: $(echo "$out" | cut -d'(' -f1)" || bad "$np ranks vs 1 rank: $out"
done
# The progress thread moves libnbc's rounds while backward computes; it changes when they run,
# never what they add: without it (VAE_DIST_PROGRESS_THREAD=0) the 4-rank run has the same bits.
VAE_DIST_PROGRESS_THREAD=0 VAE_DIST_SHARED_MEMORY=0 run_mpi 4 "$bin" "${args[@]}" --out "$tmp/n4nothread" > "$tmp/n4nothread.log" 2>&1 \
  || bad "4 ranks without the progress thread: $(tail -2 "$tmp/n4nothread.log")"
[ "$(strategy "$tmp/n4nothread.log")" = "allreduce overlapped with backward in 2 buckets (Rabenseifner), polled between layers: VAE_DIST_PROGRESS_THREAD=0" ] \
  && ok "VAE_DIST_PROGRESS_THREAD=0: $(strategy "$tmp/n4nothread.log")" || bad "VAE_DIST_PROGRESS_THREAD=0: $(strategy "$tmp/n4nothread.log")"
out=$(compare "$tmp/n4a" "$tmp/n4nothread" 0) && ok "4 ranks: with and without the progress thread bit-identical" || bad "progress thread changed the bits: $out"
# Every reduction against a Double reference (`bench --allreduce --check`, ReductionCheck.swift):
# the collectives on 0 to 65,537 floats (fewer elements than ranks: empty blocks) and the
# training strategies on models whose gradients divide unevenly, on 2 to 7 ranks.
for np in 2 3 4 5 6 7; do
  run_mpi "$np" "$bin" bench --allreduce --check > "$tmp/check$np.log" 2>&1; code=$?
  if [ "$code" -eq 0 ] && grep -q "^vae-dist bench --allreduce --check: all passed on $np ranks" "$tmp/check$np.log" \
     && [ "$(grep -c '^  ok ' "$tmp/check$np.log")" -eq 96 ] && ! grep -q FAILED "$tmp/check$np.log"; then
    ok "$np ranks: 96 reductions match the Double reference, the same bits on every rank (worst: $(grep -o 'error [0-9.e-]* of the allowed' "$tmp/check$np.log" | sort -k2 -g | tail -1))"
  else
    bad "$np ranks, bench --allreduce --check: exit $code: $(grep -m3 'FAILED\|error' "$tmp/check$np.log" | tr '\n' ' ')"
  fi
done
# That Open MPI runs what the line says: on 3 ranks the ring and libnbc's binomial tree add
# (r0 + r1) + r2 in different orders for most elements, so their runs must differ in some bit.
OMPI_MCA_coll_libnbc_iallreduce_algorithm=2 VAE_DIST_SHARED_MEMORY=0 run_mpi 3 "$bin" "${args[@]}" --out "$tmp/n3binomial" > "$tmp/n3binomial.log" 2>&1
! compare "$tmp/n3a" "$tmp/n3binomial" 0 > /dev/null && compare "$tmp/r1" "$tmp/n3binomial" 1e-4 > /dev/null \
  && ok "3 ranks: the ring's bits differ from the binomial tree's (Open MPI took the setting)" || bad "3 ranks: the ring run equals the binomial run: the algorithm was not applied"
OMPI_MCA_coll_libnbc_iallreduce_algorithm=2 VAE_DIST_SHARED_MEMORY=0 run_mpi 2 "$bin" "${args[@]}" --out "$tmp/env" > "$tmp/env.log" 2>&1
[ "$(strategy "$tmp/env.log")" = "allreduce overlapped with backward in 2 buckets (binomial tree, from OMPI_MCA_coll_libnbc_iallreduce_algorithm=2), $thread" ] \
  && ok "the environment's setting wins: $(strategy "$tmp/env.log")" || bad "OMPI_MCA_coll_libnbc_iallreduce_algorithm=2: $(strategy "$tmp/env.log")"
printf '# a site file\ncoll_libnbc_iallreduce_algorithm = ring   # measured here\n' > "$tmp/params.conf"
OMPI_MCA_mca_base_param_files=$tmp/params.conf VAE_DIST_SHARED_MEMORY=0 run_mpi 2 "$bin" "${args[@]}" --bucket-mb 0 --out "$tmp/file" > "$tmp/file.log" 2>&1
[ "$(strategy "$tmp/file.log")" = "allreduce after backward (ring, from $tmp/params.conf: coll_libnbc_iallreduce_algorithm = ring)" ] \
  && ok "an MCA parameter file wins: $(strategy "$tmp/file.log" | sed "s|$tmp/||")" || bad "parameter file: $(strategy "$tmp/file.log")"

echo "reduction: hierarchical across network namespaces"
why=$(netns_unavailable)
if [ -n "$why" ]; then echo "reduction: skipped the hierarchical checks: network namespaces cannot be made here: $why"; # --grad-compression bf16 on the hierarchy: uniform nodes compress the cross-node leg (the
# parameters stay within bf16 rounding of the fp32 run); unequal nodes keep it fp32, with a note.
hier h6bf16 "$NETNS_HOSTFILE" 6 --grad-compression bf16
hier h5bf16 "$tmp/hosts32" 5 --grad-compression bf16
grep -q "then bf16 sum (16-bit all-to-all, fp32 adds, 16-bit allgather) of the node sums across 2 nodes" "$tmp/h6bf16.log" \
  && ! grep -q "note: --grad-compression" "$tmp/h6bf16.log" \
  && out=$(compare "$tmp/h6a" "$tmp/h6bf16" 0.05) && ! compare "$tmp/h6a" "$tmp/h6bf16" 0 > /dev/null \
  && ok "2 hosts x 3 ranks, bf16: the cross-node leg in 16 bits, parameters within rounding of fp32 ($(echo "$out" | cut -d'(' -f1))" \
  || bad "2 x 3 bf16: $(strategy "$tmp/h6bf16.log"); $(compare "$tmp/h6a" "$tmp/h6bf16" 0.05)"
grep -q "^vae-dist: note: --grad-compression bf16 does nothing here: the nodes run different numbers of ranks" "$tmp/h5bf16.log" \
  && out=$(compare "$tmp/h5" "$tmp/h5bf16" 0) \
  && ok "3 + 2 ranks, bf16: the fp32 leg, a note, the same bits as without it" || bad "3 + 2 bf16: $(grep -m1 note "$tmp/h5bf16.log"); $(compare "$tmp/h5" "$tmp/h5bf16" 0)"
# The hierarchical strategy and the cross-node collectives against the Double reference.
for v in "$NETNS_HOSTFILE:6:then bf16 sum (16-bit all-to-all" "$tmp/hosts32:5:by each node's first rank"; do
  hosts=${v%%:*} rest=${v#*:}; np=${rest%%:*} what=${rest#*:}
  bash Launch/launch.sh --hostfile "$hosts" -n "$np" bench --allreduce --check > "$tmp/hcheck$np.log" 2>&1; code=$?
  if [ "$code" -eq 0 ] && grep -q "^  ok      default: hierarchical after backward" "$tmp/hcheck$np.log" \
     && grep -q "^  ok      bf16, this layout: hierarchical after backward.*$what" "$tmp/hcheck$np.log" && ! grep -q FAILED "$tmp/hcheck$np.log"; then
    ok "$np ranks on 2 hosts: every reduction, the hierarchical ones (fp32, and $what) included, matches the Double reference"
  else
    bad "$np ranks on 2 hosts, --check: exit $code: $(grep -m3 'FAILED\|error' "$tmp/hcheck$np.log" | tr '\n' ' ')"
  fi
done
summary reduction; exit; fi
at_exit netns_down
trap 'exit 130' INT TERM
netns_up 2 3 || abort "could not set up the namespaces"
netns_env
printf '%s slots=3\n%s slots=2\n' "${NETNS_HOSTS[0]}" "${NETNS_HOSTS[1]}" > "$tmp/hosts32"
hier() {  # NAME HOSTFILE NP [OPTIONS...]
  local name=$1 hosts=$2 np=$3; shift 3
  bash Launch/launch.sh --hostfile "$hosts" -n "$np" "${args[@]}" "$@" --out "$tmp/$name" > "$tmp/$name.log" 2>&1 || bad "$name: $(grep -m2 -i error "$tmp/$name.log" | tr '\n' ' ')"
}
hier h6a "$NETNS_HOSTFILE" 6; hier h6b "$NETNS_HOSTFILE" 6; hier h5 "$tmp/hosts32" 5
grep -q "hierarchical after backward: sum over shared memory on each node (3 ranks here), then allreduce of the node sums across 2 nodes (each of the 3 local ranks 1/3 of it" "$tmp/h6a.log" \
  && ok "2 hosts x 3 ranks: $(strategy "$tmp/h6a.log")" || bad "2 x 3: $(strategy "$tmp/h6a.log")"
out=$(compare "$tmp/r1" "$tmp/h6a" 1e-4) && ok "2 hosts x 3 ranks vs 1 rank: $(echo "$out" | cut -d'(' -f1)" || bad "2 x 3 vs 1 rank: $out"
out=$(compare "$tmp/h6a" "$tmp/h6b" 0) && ok "2 hosts x 3 ranks: two runs bit-identical" || bad "2 x 3 run to run: $out"
grep -q "then allreduce of the node sums across 2 nodes (by each node's first rank" "$tmp/h5.log" \
  && ok "3 + 2 ranks: $(strategy "$tmp/h5.log" | sed 's/.*then/then/')" || bad "3 + 2: $(strategy "$tmp/h5.log")"
out=$(compare "$tmp/r1" "$tmp/h5" 1e-4) && ok "3 + 2 ranks vs 1 rank: $(echo "$out" | cut -d'(' -f1)" || bad "3 + 2 vs 1 rank: $out"
# --grad-compression bf16 on the hierarchy: uniform nodes compress the cross-node leg (the
# parameters stay within bf16 rounding of the fp32 run); unequal nodes keep it fp32, with a note.
hier h6bf16 "$NETNS_HOSTFILE" 6 --grad-compression bf16
hier h5bf16 "$tmp/hosts32" 5 --grad-compression bf16
grep -q "then bf16 sum (16-bit all-to-all, fp32 adds, 16-bit allgather) of the node sums across 2 nodes" "$tmp/h6bf16.log" \
  && ! grep -q "note: --grad-compression" "$tmp/h6bf16.log" \
  && out=$(compare "$tmp/h6a" "$tmp/h6bf16" 0.05) && ! compare "$tmp/h6a" "$tmp/h6bf16" 0 > /dev/null \
  && ok "2 hosts x 3 ranks, bf16: the cross-node leg in 16 bits, parameters within rounding of fp32 ($(echo "$out" | cut -d'(' -f1))" \
  || bad "2 x 3 bf16: $(strategy "$tmp/h6bf16.log"); $(compare "$tmp/h6a" "$tmp/h6bf16" 0.05)"
grep -q "^vae-dist: note: --grad-compression bf16 does nothing here: the nodes run different numbers of ranks" "$tmp/h5bf16.log" \
  && out=$(compare "$tmp/h5" "$tmp/h5bf16" 0) \
  && ok "3 + 2 ranks, bf16: the fp32 leg, a note, the same bits as without it" || bad "3 + 2 bf16: $(grep -m1 note "$tmp/h5bf16.log"); $(compare "$tmp/h5" "$tmp/h5bf16" 0)"
# The hierarchical strategy and the cross-node collectives against the Double reference.
for v in "$NETNS_HOSTFILE:6:then bf16 sum (16-bit all-to-all" "$tmp/hosts32:5:by each node's first rank"; do
  hosts=${v%%:*} rest=${v#*:}; np=${rest%%:*} what=${rest#*:}
  bash Launch/launch.sh --hostfile "$hosts" -n "$np" bench --allreduce --check > "$tmp/hcheck$np.log" 2>&1; code=$?
  if [ "$code" -eq 0 ] && grep -q "^  ok      default: hierarchical after backward" "$tmp/hcheck$np.log" \
     && grep -q "^  ok      bf16, this layout: hierarchical after backward.*$what" "$tmp/hcheck$np.log" && ! grep -q FAILED "$tmp/hcheck$np.log"; then
    ok "$np ranks on 2 hosts: every reduction, the hierarchical ones (fp32, and $what) included, matches the Double reference"
  else
    bad "$np ranks on 2 hosts, --check: exit $code: $(grep -m3 'FAILED\|error' "$tmp/hcheck$np.log" | tr '\n' ' ')"
  fi
done
summary reduction
