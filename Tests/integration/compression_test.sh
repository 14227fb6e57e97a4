#!/usr/bin/env bash
# --grad-compression bf16|fp16 (VAETraining/CompressedReduction.swift) with real ranks through
# MPI (VAE_DIST_SHARED_MEMORY=0: on one node the shared-memory sum would send nothing):
#   1. the start-up line names the compression; bf16 on 2, 3 (blocks of unequal size) and 4
#      ranks, fp16 on 2 and 4, bf16 with --shard-optimizer on 3 finish with every rank holding
#      the same parameters at every step (--check-every 1), repeat bit for bit run to run, stay
#      within 0.03 of the fp32 run's parameters after an epoch (measured: 0.005-0.008), and
#      differ from it (the rounding is applied);
#   2. through shared memory the run says the option does nothing; --deterministic refuses it;
#      a checkpoint trained without it resumes with it (resume may change it).
# Prints "compression: N passed, M failed".
set -uo pipefail
. "$(dirname "$0")/lib.sh" compression
use_venv || abort "cannot set up .venv"
export VAE_DIST_PROGRESS=0
args=(train --data synthetic:2048 --epochs 1 --batch-size 120 --seed 7 --threads 1 --check-every 1)
strategy() { sed -n 's/^vae-dist: gradient reduction: //p' "$1"; }
mpi() {  # NAME NP ARGS...: a run through MPI's collectives
  local name=$1 np=$2; shift 2
  VAE_DIST_SHARED_MEMORY=0 run_mpi "$np" "$bin" "${args[@]}" "$@" --out "$tmp/$name" > "$tmp/$name.log" 2>&1 \
    || bad "$name: $(grep -m2 -i error "$tmp/$name.log" | tr '\n' ' ')"
}

echo "compression: 16-bit gradients through MPI"
mpi fp32 2
checked=0
for v in "2 bf16" "3 bf16" "4 bf16" "2 fp16" "4 fp16" "3 bf16 --shard-optimizer"; do
  set -- $v; np=$1 c=$2; shift 2
  name=n$np$c${1:+s}
  mpi "${name}a" "$np" --grad-compression "$c" "$@"
  mpi "${name}b" "$np" --grad-compression "$c" "$@"
  line=$(strategy "$tmp/${name}a.log")
  grep -q "$c on the network: all-to-all of 16-bit blocks, each rank's block summed in fp32" <<< "$line" \
    && ok "$np ranks $c $*: $line" || bad "$np ranks $c $*: the start-up line does not name $c: $line"
  out=$(compare "$tmp/${name}a" "$tmp/${name}b" 0) && ok "$np ranks $c $*: two runs bit-identical" || bad "$np ranks $c $*, run to run: $out"
  out=$(compare "$tmp/fp32" "$tmp/${name}a" 0.03) && ok "$np ranks $c $* vs fp32: $(echo "$out" | cut -d'(' -f1)" || bad "$np ranks $c $* vs fp32: $out"
  ! same "$tmp/fp32" "$tmp/${name}a" && ok "$np ranks $c $*: differs from fp32 (the gradient was rounded)" || bad "$np ranks $c $*: bit-identical to fp32: nothing was compressed"
  checked=$((checked + 1))
done
[ "$checked" -eq 6 ] || bad "ran $checked of 6 configurations"

echo "compression: where it does nothing or may not be used"
run_mpi 2 "$bin" "${args[@]}" --grad-compression bf16 --out "$tmp/shm" > "$tmp/shm.log" 2>&1 || bad "shared memory: $(tail -1 "$tmp/shm.log")"
grep -q "^vae-dist: note: --grad-compression bf16 does nothing here: every rank is on this node" "$tmp/shm.log" \
  && ok "shared memory: $(grep -m1 'note: --grad-compression' "$tmp/shm.log" | cut -c1-90)..." || bad "shared memory: no note: $(strategy "$tmp/shm.log")"
out=$(compare "$tmp/fp32" "$tmp/shm" 1e-4) && ok "shared memory with bf16 vs fp32 through MPI: $(echo "$out" | cut -d'(' -f1)" || bad "shared memory with bf16: $out"
VAE_DIST_SHARED_MEMORY=0 run_mpi 2 "$bin" "${args[@]}" --deterministic --grad-compression fp16 --out "$tmp/det" > "$tmp/det.log" 2>&1 \
  && bad "--deterministic with --grad-compression ran" \
  || { grep -q "grad-compression fp16 rounds each rank's gradient" "$tmp/det.log" && ok "--deterministic refuses it" || bad "--deterministic: $(tail -1 "$tmp/det.log")"; }
"$bin" "${args[@]}" --grad-compression half --out "$tmp/bad" > "$tmp/bad.log" 2>&1 \
  && bad "--grad-compression half accepted" || { grep -q "expected none, bf16 or fp16" "$tmp/bad.log" && ok "an unknown format: $(grep -m1 expected "$tmp/bad.log")" || bad "unknown format: $(tail -1 "$tmp/bad.log")"; }
# A copy of the fp32 run's folder: a checkpoint trained without compression.
cp -r "$tmp/fp32" "$tmp/resumed2"
mpi resumed2 2 --grad-compression bf16 --epochs 2 --resume
[ "$(resumed_at "$tmp/resumed2.log")" -gt 0 ] 2>/dev/null && strategy "$tmp/resumed2.log" | grep -q bf16 \
  && ok "a checkpoint trained in fp32 resumes with bf16 at step $(resumed_at "$tmp/resumed2.log")" || bad "resume with bf16: $(tail -2 "$tmp/resumed2.log")"
summary compression
