#!/usr/bin/env bash
# --accumulate N (README "Gradient accumulation"), after Launch/setup.sh: the batch of an optimizer
# step (--batch-size) in N micro-batches per rank equals one step on the whole batch:
#   1. --deterministic: bit-identical for N = 1, 2, 4 on 1 rank and N = 1, 2 on 2 ranks (each of
#      the 4 fixed groups is computed alone either way);
#   2. otherwise (the shared-memory sum, sharded or not; with VAE_DIST_SHARED_MEMORY=0 MPI's
#      overlapped buckets, one allreduce, the sharded optimizer), on 1 and 2 ranks: equal
#      to float rounding (1e-4; the weight gradients' sums over the batch are cut in N), as 1 vs 2
#      ranks are; the optimizer step count and samples/s count whole batches;
#   3. --accumulate may change on resume: bit-identical to the uninterrupted run (--deterministic);
#   4. with the KL warm-up (the one regime that needs no global-batch statistics): bit-identical
#      parameters and train_loss under --deterministic, equal to rounding otherwise;
#   5. bad values, and --capacity/--free-bits/--tc-beta with --accumulate N > 1 (also on resume):
#      one clear error line.
set -uo pipefail
. "$(dirname "$0")/lib.sh" accumulate
use_venv || abort "cannot set up .venv"  # $python: .venv with numpy and safetensors
export VAE_DIST_PROGRESS=0
args=(train --data synthetic:2560 --hidden 96 --latent 6 --batch-size 128 --epochs 2 --seed 4)
# run NP NAME ARGS...: trains under mpirun on NP ranks (1: no mpirun) into $tmp/NAME.
run() {
  local np=$1 name=$2; shift 2
  if [ "$np" -eq 1 ]; then "$bin" "${args[@]}" "$@" --out "$tmp/$name" > "$tmp/$name.log" 2>&1
  else run_mpi "$np" timeout 300 "$bin" "${args[@]}" "$@" --out "$tmp/$name" > "$tmp/$name.log" 2>&1; fi \
    || bad "$name: training failed: $(tail -1 "$tmp/$name.log")"
}

echo "accumulate: --deterministic, bit-identical"
run 1 d1 --deterministic
for case in "1 2" "1 4" "2 1" "2 2"; do
  read -r np n <<< "$case"
  run "$np" "d${np}x$n" --deterministic --accumulate "$n"
  out=$(compare "$tmp/d1" "$tmp/d${np}x$n" 0) && ok "--deterministic, $np rank(s), --accumulate $n vs 1 rank in one step: $(cut -d'(' -f1 <<< "$out")" \
    || bad "--deterministic, $np rank(s), --accumulate $n: $out"
done

echo "accumulate: shared memory, overlapped, one allreduce, sharded: equal to rounding"
run 1 o1
# The 2-rank cases run on one node: the shared-memory sum; "mpi" ones set VAE_DIST_SHARED_MEMORY=0.
for case in "1 2 - " "1 3 - " "2 1 - " "2 2 - " "2 2 - --shard-optimizer" "2 2 mpi " "2 2 mpi --bucket-mb 0" "2 2 mpi --shard-optimizer"; do
  read -r np n mpi extra <<< "$case"
  name="o${np}x$n${mpi#-}${extra// /}"
  shm=1; [ "$mpi" = mpi ] && shm=0
  # shellcheck disable=SC2086
  VAE_DIST_SHARED_MEMORY=$shm run "$np" "$name" --accumulate "$n" $extra
  strategy=$(sed -n 's/^vae-dist: gradient reduction: //p' "$tmp/$name.log")
  out=$(compare "$tmp/o1" "$tmp/$name" 1e-4) && ok "$np rank(s), --accumulate $n${extra:+ $extra} ($strategy) vs 1 rank in one step: $(cut -d'(' -f1 <<< "$out")" \
    || bad "$np rank(s), --accumulate $n $extra ($strategy): $out"
done
# A step counts whole batches: 2 epochs of 20 steps, samples/s over 128 examples a step.
"$python" - "$tmp/o2x2/metrics.jsonl" "$tmp/o1/metrics.jsonl" <<'PY' && ok "--accumulate 2: metrics count optimizer steps of 128 (step 40 after 2 epochs), samples/s of whole batches" || bad "--accumulate metrics: $(tail -1 "$tmp/o2x2/metrics.jsonl")"
import json, sys
parts, whole = ([json.loads(l) for l in open(p)] for p in sys.argv[1:])
assert [m["step"] for m in parts] == [20, 40] == [m["step"] for m in whole], (parts, whole)
assert all(m["samples_per_second"] > 0 for m in parts)
PY

echo "accumulate: resume with another --accumulate"
run 1 r --deterministic --epochs 1
"$bin" "${args[@]}" --resume --accumulate 4 --out "$tmp/r" > "$tmp/r2.log" 2>&1 || bad "resume with --accumulate 4 failed: $(tail -1 "$tmp/r2.log")"
out=$(compare "$tmp/d1" "$tmp/r" 0) && grep -q "changed on resume: .*--accumulate 1 -> 4" "$tmp/r2.log" \
  && ok "resumed with --accumulate 4 after 1 epoch of 1: bit-identical to the uninterrupted run ($(grep -o 'changed on resume: .*' "$tmp/r2.log"))" \
  || bad "resume with another --accumulate: $out $(grep changed "$tmp/r2.log")"

echo "accumulate: with --kl-warmup"
# The warm-up's weight follows the step only, and its penalty (in train_loss) weighs the rank's KL
# summed over all micro-batches: the same bits as one micro-batch.
warm=(--kl-warmup 30 --epochs 1)
run 1 w1 --deterministic "${warm[@]}"
for case in "1 4" "2 2"; do
  read -r np n <<< "$case"
  run "$np" "w${np}x$n" --deterministic --accumulate "$n" "${warm[@]}"
  out=$(compare "$tmp/w1" "$tmp/w${np}x$n" 0) && "$python" - "$tmp/w1/metrics.jsonl" "$tmp/w${np}x$n/metrics.jsonl" <<'PY' \
    && ok "--kl-warmup --deterministic, $np rank(s), --accumulate $n vs 1 rank in one step: $(cut -d'(' -f1 <<< "$out")and the same train_loss" \
    || bad "--kl-warmup --deterministic, $np rank(s), --accumulate $n: $out"
import json, sys
a, b = (json.loads(open(p).read().splitlines()[-1]) for p in sys.argv[1:])
assert a["step"] == b["step"] == 20 and a["train_loss"] == b["train_loss"], (a, b)
PY
done
run 1 wo1 "${warm[@]}"
run 1 wo3 --accumulate 3 "${warm[@]}"
out=$(compare "$tmp/wo1" "$tmp/wo3" 1e-4) \
  && ok "--kl-warmup, --accumulate 3 vs 1 (overlapped): $(cut -d'(' -f1 <<< "$out")" \
  || bad "--kl-warmup, --accumulate 3 vs 1: $out"

echo "accumulate: bad values"
check_error() {  # check_error PATTERN NP ARGS...
  local pattern=$1 np=$2 out code; shift 2
  if [ "$np" -eq 1 ]; then out=$("$bin" "${args[@]}" "$@" --out "$tmp/bad" 2>&1); code=$?
  else out=$(run_mpi "$np" timeout 120 "$bin" "${args[@]}" "$@" --out "$tmp/bad" 2>&1 | grep "error:"); code=$?; fi
  grep -q -- "$pattern" <<< "$out" && [ "$np" -gt 1 -o "$code" -eq 1 ] && ok "$*: $(head -1 <<< "$out")" || bad "$*: exit $code: $out"
}
check_error "--accumulate must be at least 1" 1 --accumulate 0
check_error "cannot be cut into 1 rank x --accumulate 200 micro-batches" 1 --accumulate 200
check_error "--accumulate x ranks must divide 4" 2 --deterministic --accumulate 4
for regime in "--tc-beta 6" "--free-bits 0.5" "--capacity 5 --capacity-steps 10"; do
  # shellcheck disable=SC2086
  check_error "${regime%% *} needs the latents of the whole global batch before any backward, and --accumulate 2 runs" 1 $regime --accumulate 2
done
run 1 fb --free-bits 0.5 --epochs 1
out=$("$bin" train --resume --accumulate 2 --epochs 2 --out "$tmp/fb" 2>&1); code=$?
[ $code -eq 1 ] && [ "$(wc -l <<< "$out")" -eq 1 ] && grep -q -- "--free-bits needs the latents of the whole global batch" <<< "$out" \
  && ok "resume of a --free-bits run with --accumulate 2: $out" || bad "resume of a --free-bits run with --accumulate 2 (exit $code): $out"
summary accumulate
