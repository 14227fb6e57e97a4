#!/usr/bin/env bash
# Data-parallel tests with real ranks (mpirun -n 2 and -n 4, oversubscribed on
# small machines), after Launch/setup.sh:
#   1. N ranks compute the same model as 1 rank: max |dparam| <= 1e-4 after one epoch;
#   2. only rank 0 writes files (each rank's file system calls are traced);
#   3. a rank killed with SIGKILL ends the whole job, non-zero, within 10 s;
#   4. a global batch the rank count does not divide (3 ranks) trains the same model;
#   5. an error every rank meets at start (a batch --deterministic cannot group, missing data or
#      checkpoint) is one line from rank 0 and exit code 1 on every rank, without MPI_Abort.
# Prints "N passed, M failed".
set -uo pipefail
. "$(dirname "$0")/lib.sh" mpi
use_venv || abort "cannot set up .venv"  # $python: .venv with numpy and safetensors
export VAE_DIST_PROGRESS=0
args=(train --data synthetic:4096 --epochs 1 --batch-size 128 --seed 3)

echo "mpi: 1 rank vs 2 and 4 ranks after one epoch"
"$bin" "${args[@]}" --out "$tmp/r1" > "$tmp/r1.log" 2>&1 || bad "single-process run failed: $(tail -1 "$tmp/r1.log")"
for np in 2 4; do
  if run_mpi "$np" "$bin" "${args[@]}" --out "$tmp/r$np" > "$tmp/r$np.log" 2>&1; then
    if out=$(compare "$tmp/r1/checkpoints/latest.safetensors" "$tmp/r$np/checkpoints/latest.safetensors" 1e-4); then
      ok "$np ranks: $out"
    else
      bad "$np ranks: $out"
    fi
    grep -q '"world_size": '"$np" "$tmp/r$np/metrics.jsonl" && ok "$np ranks: metrics report world_size $np" || bad "$np ranks: world_size missing from metrics"
  else
    bad "mpirun -n $np failed: $(tail -3 "$tmp/r$np.log")"
  fi
done

echo "mpi: every gradient reduction strategy on 2 ranks"
# Ranks on one node sum gradients through shared memory by default, each rank summing and
# updating its block (the sharded optimizer; --no-shard-optimizer: every rank runs Adam on the
# whole sum); VAE_DIST_SHARED_MEMORY=0 makes them use MPI's collectives as ranks
# on several nodes do: the allreduce overlapped with backward in buckets (the default there),
# --bucket-mb 0 one allreduce after backward, --shard-optimizer reduce-scatter + allgather. Each
# computes the 1-rank model to rounding; with 2 ranks every element's sum is a + b in any
# algorithm, so all five are bit-identical to each other.
grep -q "gradient reduction: sharded optimizer over shared memory (2 ranks on one node" "$tmp/r2.log" \
  && ok "the default on one node: $(sed -n 's/^vae-dist: gradient reduction: //p' "$tmp/r2.log")" || bad "default strategy on one node: $(grep reduction "$tmp/r2.log")"
for v in "shm-unsharded::--no-shard-optimizer" "overlapped:0:" "plain:0:--bucket-mb 0" "sharded:0:--shard-optimizer"; do
  name=${v%%:*} rest=${v#*:}; shm=${rest%%:*} extra=${rest#*:}
  VAE_DIST_SHARED_MEMORY=$shm run_mpi 2 "$bin" "${args[@]}" $extra --out "$tmp/$name" > "$tmp/$name.log" 2>&1 || bad "$name: $(tail -2 "$tmp/$name.log")"
  strategy=$(sed -n 's/^vae-dist: gradient reduction: //p' "$tmp/$name.log")
  out=$(compare "$tmp/r2/checkpoints/latest.safetensors" "$tmp/$name/checkpoints/latest.safetensors" 0) \
    && ok "2 ranks, $strategy: bit-identical to the shared-memory default" || bad "2 ranks, $name ($strategy): $out"
done
grep -q "gradient reduction: allreduce overlapped with backward in [2-9] buckets" "$tmp/overlapped.log" \
  && ok "VAE_DIST_SHARED_MEMORY=0 overlaps MPI's allreduce: $(sed -n 's/^vae-dist: gradient reduction: //p' "$tmp/overlapped.log")" \
  || bad "VAE_DIST_SHARED_MEMORY=0: $(grep reduction "$tmp/overlapped.log")"
grep -q "gradient reduction: sum over shared memory after backward (2 ranks on one node)" "$tmp/shm-unsharded.log" && grep -q "gradient reduction: sharded optimizer (reduce-scatter" "$tmp/sharded.log" \
  || bad "--no-shard-optimizer and MPI's sharded strategy: $(grep -h reduction "$tmp/shm-unsharded.log" "$tmp/sharded.log")"
out=$(VAE_DIST_SHARED_MEMORY=yes run_mpi 2 "$bin" "${args[@]}" --out "$tmp/badshm" 2>&1); code=$?
[ "$code" -ne 0 ] && [ "$(echo "$out" | grep -c 'error: VAE_DIST_SHARED_MEMORY=yes: expected 1')" -ge 1 ] \
  && ok "VAE_DIST_SHARED_MEMORY=yes: exit $code, $(echo "$out" | grep -m1 'error: VAE')" || bad "VAE_DIST_SHARED_MEMORY=yes: exit $code: $(echo "$out" | head -3)"
# An MPI without shared-memory windows (Open MPI's osc/sm component left out): one note, MPI's
# collectives, the same model.
OMPI_MCA_osc=^sm run_mpi 2 "$bin" "${args[@]}" --out "$tmp/noshm" > "$tmp/noshm.log" 2>&1 || bad "without osc/sm: $(tail -2 "$tmp/noshm.log")"
if grep -q "^vae-dist: note: no shared memory for the gradients (MPI_Win_allocate_shared of .*); using MPI's collectives" "$tmp/noshm.log" \
   && grep -q "gradient reduction: allreduce overlapped with backward" "$tmp/noshm.log" \
   && out=$(compare "$tmp/r2/checkpoints/latest.safetensors" "$tmp/noshm/checkpoints/latest.safetensors" 0); then
  ok "no shared-memory windows (OMPI_MCA_osc=^sm): $(grep -o 'note: no shared memory[^(]*' "$tmp/noshm.log")-> MPI's allreduce, bit-identical"
else bad "without shared-memory windows: $(grep -E 'note|reduction|error' "$tmp/noshm.log" | head -3 | tr '\n' ' ') ${out:-}"; fi
# 4 ranks: the shared-memory sums are the same without the sharded optimizer (bit-identical) and
# the 1-rank model to rounding either way.
VAE_DIST_SHARED_MEMORY=1 run_mpi 4 "$bin" "${args[@]}" --no-shard-optimizer --out "$tmp/shm-unsharded4" > "$tmp/shm-unsharded4.log" 2>&1 || bad "shared-memory unsharded on 4: $(tail -2 "$tmp/shm-unsharded4.log")"
grep -q "gradient reduction: sharded optimizer over shared memory (4 ranks" "$tmp/r4.log" && grep -q "gradient reduction: sum over shared memory after backward (4 ranks" "$tmp/shm-unsharded4.log" \
  || bad "4 ranks, default and --no-shard-optimizer: $(grep -h reduction "$tmp/r4.log" "$tmp/shm-unsharded4.log")"
out=$(compare "$tmp/r4/checkpoints/latest.safetensors" "$tmp/shm-unsharded4/checkpoints/latest.safetensors" 0) \
  && ok "4 ranks, the sum over shared memory with --no-shard-optimizer: bit-identical to the sharded default ($(echo "$out" | cut -d'(' -f1 | sed 's/ *$//'))" \
  || bad "4 ranks, shared-memory unsharded vs the sharded default: $out"
VAE_DIST_SHARED_MEMORY=0 run_mpi 4 "$bin" "${args[@]}" --shard-optimizer --out "$tmp/sharded4" > "$tmp/sharded4.log" 2>&1 || bad "sharded on 4: $(tail -2 "$tmp/sharded4.log")"
out=$(compare "$tmp/r1/checkpoints/latest.safetensors" "$tmp/sharded4/checkpoints/latest.safetensors" 1e-4) \
  && ok "4 ranks, sharded optimizer (MPI) vs 1 rank: $(echo "$out" | cut -d'(' -f1)" || bad "4 ranks, sharded: $out"
"$python" - "$tmp/sharded4/checkpoints/latest.safetensors" "$tmp/r4/checkpoints/latest.safetensors" <<'PY' && ok "4 ranks, sharded: the checkpoint holds every rank's Adam moments" || bad "sharded checkpoint moments"
import sys, numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
for k in a:
    if k.startswith("optimizer."):
        assert np.abs(a[k] - b[k]).max() <= 1e-4 * max(1.0, float(np.abs(b[k]).max())), k
        assert (a[k] != 0).mean() > 0.5 or (b[k] == 0).mean() > 0.5, k  # no block left at zero
PY

# --clip-grad-norm clips by the norm of the global-batch gradient over all ranks (the sharded
# optimizer sums its blocks' squared norms). With --deterministic the gradients are the same bits
# on any rank count, so 1 rank and 2 sharded ranks must agree exactly; without it, sharded and
# unsharded 2-rank runs must (each element's sum is a + b either way). (Without --deterministic,
# 1 vs 2 ranks differ by more than unclipped runs do: clipping shrinks gradients toward Adam's
# eps, where it amplifies rounding differences most.)
"$bin" "${args[@]}" --clip-grad-norm 0.5 --deterministic --out "$tmp/clip1" > /dev/null 2>&1
run_mpi 2 "$bin" "${args[@]}" --clip-grad-norm 0.5 --deterministic --shard-optimizer --out "$tmp/clip2" > "$tmp/clip2.log" 2>&1 || bad "clip on 2 ranks: $(tail -2 "$tmp/clip2.log")"
run_mpi 2 "$bin" "${args[@]}" --clip-grad-norm 0.5 --out "$tmp/clip3" > /dev/null 2>&1
run_mpi 2 "$bin" "${args[@]}" --clip-grad-norm 0.5 --no-shard-optimizer --out "$tmp/clip4" > /dev/null 2>&1
# The same with MPI's collectives (the strategies ranks on several nodes use): overlapped, sharded.
VAE_DIST_SHARED_MEMORY=0 run_mpi 2 "$bin" "${args[@]}" --clip-grad-norm 0.5 --out "$tmp/clip5" > /dev/null 2>&1
VAE_DIST_SHARED_MEMORY=0 run_mpi 2 "$bin" "${args[@]}" --clip-grad-norm 0.5 --shard-optimizer --out "$tmp/clip6" > /dev/null 2>&1
if out=$(compare "$tmp/clip1/checkpoints/latest.safetensors" "$tmp/clip2/checkpoints/latest.safetensors" 0) \
   && out2=$(compare "$tmp/clip3/checkpoints/latest.safetensors" "$tmp/clip4/checkpoints/latest.safetensors" 0) \
   && out2=$(compare "$tmp/clip3/checkpoints/latest.safetensors" "$tmp/clip5/checkpoints/latest.safetensors" 0) \
   && out2=$(compare "$tmp/clip3/checkpoints/latest.safetensors" "$tmp/clip6/checkpoints/latest.safetensors" 0) \
   && ! compare "$tmp/r2/checkpoints/latest.safetensors" "$tmp/clip3/checkpoints/latest.safetensors" 1e-3 > /dev/null; then
  ok "--clip-grad-norm 0.5: 1 rank vs 2 sharded ranks (--deterministic) bit-identical; on 2 ranks the shared-memory sum, sharded or not, and MPI's overlapped and sharded strategies bit-identical; clipping changed the run"
else
  bad "clip: $out ${out2:-}"
fi
run_mpi 2 "$bin" bench --batches 16 --json > "$tmp/bench.json" 2>&1 && "$python" - "$tmp/bench.json" <<'PY' && ok "mpirun -n 2 vae-dist bench: $(tail -1 "$tmp/bench.json")" || bad "distributed bench: $(tail -3 "$tmp/bench.json")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
assert [l["strategy"] for l in lines] == ["overlapped", "after-backward", "bf16", "sharded", "shared-memory", "shared-memory-sharded"], lines
assert [l["reduction"].split(" (")[0] for l in lines] == ["allreduce overlapped with backward in 2 buckets", "allreduce after backward",
    "allreduce after backward in 16 bits", "sharded optimizer", "sum over shared memory after backward", "sharded optimizer over shared memory"], lines
for l in lines:
    assert l["ranks"] == 2 and l["samples_per_second"] > 0 and l["compute_ms_per_step"] > 0, l
    assert l["communication_ms_per_step"] > 0 and l["optimizer_ms_per_step"] > 0, l
PY

echo "mpi: --deterministic: 1, 2 and 4 ranks bit-identical, sharded or not"
for np in 1 2 4; do
  run_mpi "$np" "$bin" "${args[@]}" --deterministic --out "$tmp/d$np" > "$tmp/d$np.log" 2>&1 || bad "--deterministic on $np ranks failed: $(tail -2 "$tmp/d$np.log")"
done
run_mpi 4 "$bin" "${args[@]}" --deterministic --shard-optimizer --out "$tmp/ds4" > "$tmp/ds4.log" 2>&1 || bad "--deterministic --shard-optimizer on 4 ranks failed: $(tail -2 "$tmp/ds4.log")"
for run in d2 d4 ds4; do
  out=$(compare "$tmp/d1/checkpoints/latest.safetensors" "$tmp/$run/checkpoints/latest.safetensors" 0) \
    && ok "--deterministic, 1 rank vs $(grep -o '[0-9] ranks' "$tmp/$run.log" | head -1)$([ "$run" = ds4 ] && echo ', sharded optimizer'): $(echo "$out" | cut -d'(' -f1)" \
    || bad "--deterministic, 1 vs $run: $out"
done

echo "mpi: resume under MPI"
# Same rank count: bit-identical to the uninterrupted run.
run_mpi 2 "$bin" train --data synthetic:4096 --epochs 2 --seed 3 --out "$tmp/u2" > /dev/null 2>&1 || bad "2-epoch run failed"
run_mpi 2 "$bin" train --data synthetic:4096 --epochs 1 --seed 3 --out "$tmp/s2" > /dev/null 2>&1 || bad "1-epoch run failed"
cp -r "$tmp/s2" "$tmp/s4"
run_mpi 2 "$bin" train --data synthetic:4096 --epochs 2 --seed 3 --out "$tmp/s2" --resume > "$tmp/s2.log" 2>&1 || bad "resume on 2 failed"
# The resumed run must say it continued the checkpoint (epoch 1 = 32 steps) and ran only epoch 2:
# training is a pure function of the seed, so a run that ignored the checkpoint and started over
# would end with the same parameters.
resumed() { grep -q "^vae-dist: resumed from .* at global step 32 (1 epochs + 0 steps)" "$1" && grep -q "^vae-dist: this process ran 32 steps" "$1"; }
resumed "$tmp/s2.log" && ok "resume on 2 ranks: $(grep -o 'resumed from .*' "$tmp/s2.log" | sed "s|$tmp/||"); $(grep -o 'ran [0-9]* steps' "$tmp/s2.log")" \
  || bad "resume on 2 ranks did not continue the checkpoint: $(grep -E '^vae-dist: (resumed|this process ran)' "$tmp/s2.log" | tr '\n' ' ')"
out=$(compare "$tmp/u2/checkpoints/latest.safetensors" "$tmp/s2/checkpoints/latest.safetensors" 0) \
  && ok "2 ranks, resumed on 2: bit-identical ($out)" || bad "2 ranks, resumed on 2: $out"
# The checkpoint records what ran: the default's says the optimizer was sharded, and a checkpoint
# that says it was not (--no-shard-optimizer, or any from before the sharded default) resumes
# unsharded when the option is not given again; the sums are the same bits either way.
grep -q '\\"shardOptimizer\\":true' <("$bin" inspect --json "$tmp/s2/checkpoints/latest.safetensors") \
  && ok "the default run's checkpoint records the sharded optimizer" || bad "no shardOptimizer true in $tmp/s2's checkpoint"
run_mpi 2 "$bin" train --data synthetic:4096 --epochs 1 --seed 3 --no-shard-optimizer --out "$tmp/o2" > /dev/null 2>&1 || bad "1-epoch --no-shard-optimizer run failed"
run_mpi 2 "$bin" train --data synthetic:4096 --epochs 2 --seed 3 --out "$tmp/o2" --resume > "$tmp/o2.log" 2>&1 || bad "resume of the unsharded checkpoint failed"
if resumed "$tmp/o2.log" && grep -q "gradient reduction: sum over shared memory after backward" "$tmp/o2.log" \
   && out=$(compare "$tmp/u2/checkpoints/latest.safetensors" "$tmp/o2/checkpoints/latest.safetensors" 0); then
  ok "a checkpoint trained unsharded resumes unsharded, bit-identical to the sharded default"
else bad "resume of an unsharded checkpoint: $(grep -E 'reduction|resumed' "$tmp/o2.log" | tr '\n' ' ') ${out:-}"; fi
# Another rank count: the 2-rank state differs from a 4-rank one by summation order
# (~2e-6), and Adam turns rounding-level gradients of rarely active weights into
# lr-sized steps (update ~ lr * g / (|g| + eps)), so after one more epoch parameters
# agree to ~5e-3 (a 2e-6 random perturbation on one process does the same) while
# the losses agree to the printed digits.
run_mpi 4 "$bin" train --data synthetic:4096 --epochs 2 --seed 3 --out "$tmp/u4" > /dev/null 2>&1 || bad "4-rank run failed"
run_mpi 4 "$bin" train --data synthetic:4096 --epochs 2 --seed 3 --out "$tmp/s4" --resume > "$tmp/s4.log" 2>&1 || bad "resume on 4 failed"
resumed "$tmp/s4.log" && ok "resume of a 2-rank checkpoint on 4 ranks continued it at global step 32" \
  || bad "resume on 4 ranks did not continue the checkpoint: $(grep -E '^vae-dist: (resumed|this process ran)' "$tmp/s4.log" | tr '\n' ' ')"
out=$(compare "$tmp/u4/checkpoints/latest.safetensors" "$tmp/s4/checkpoints/latest.safetensors" 2e-2) \
  && ok "2 ranks, resumed on 4: $out" || bad "2 ranks, resumed on 4: $out"
a=$(tail -1 "$tmp/u4/metrics.jsonl" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["test_nelbo"])')
b=$(tail -1 "$tmp/s4/metrics.jsonl" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["test_nelbo"])')
awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; exit !(d < 0.05 && d > -0.05) }' && ok "test_nelbo $a (4 ranks) vs $b (2 then 4 ranks)" || bad "test_nelbo $a vs $b"

echo "mpi: only rank 0 writes"
if command -v strace >/dev/null; then
  mkdir -p "$tmp/trace"
  run_mpi 2 sh -c 'exec strace -qq -f -e trace=openat,creat,rename,renameat,renameat2,link,linkat,mkdir,mkdirat,unlink,unlinkat -o "$0/trace.$OMPI_COMM_WORLD_RANK" "$@"' \
    "$tmp/trace" "$bin" "${args[@]}" --out "$tmp/w" > "$tmp/w.log" 2>&1 || bad "traced run failed: $(tail -2 "$tmp/w.log")"
  writes0=$(grep -E "$tmp/w" "$tmp/trace/trace.0" | grep -cE 'O_WRONLY|O_RDWR|O_CREAT|rename|link\(|mkdir|unlink')
  writes1=$(grep -E "$tmp/w" "$tmp/trace/trace.1" | grep -E 'O_WRONLY|O_RDWR|O_CREAT|rename|link\(|mkdir|unlink' | tee "$tmp/rank1-writes" | wc -l)
  if [ "$writes0" -gt 0 ] && [ "$writes1" -eq 0 ]; then ok "rank 0 made $writes0 writing calls under --out, rank 1 none"
  else bad "rank 0: $writes0 writing calls, rank 1: $writes1 ($(head -2 "$tmp/rank1-writes"))"; fi
else
  bad "strace is not installed (Tests/test.sh installs it)"
fi

echo "mpi: a rank killed with SIGKILL ends the job within 10 s"
run_mpi 2 "$bin" train --data synthetic:20000 --epochs 50 --out "$tmp/k" > "$tmp/k.log" 2>&1 &
launcher=$!
victim=""
for _ in $(seq 100); do
  for pid in $(pgrep -f "$tmp/k" 2>/dev/null); do
    if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then victim=$pid; fi
  done
  [ -n "$victim" ] && [ -s "$tmp/k/metrics.jsonl" ] && break
  sleep 0.2
done
if [ -z "$victim" ]; then
  bad "rank 1 never started"; kill -9 $launcher 2>/dev/null
else
  start=$(date +%s.%N)
  kill -9 "$victim"
  for _ in $(seq 150); do kill -0 $launcher 2>/dev/null || break; sleep 0.1; done
  if kill -0 $launcher 2>/dev/null; then
    bad "job still running 15 s after rank 1 was killed"; pkill -9 -f "$tmp/k"; kill -9 $launcher
  else
    wait $launcher; code=$?
    took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    if [ "$code" -ne 0 ] && awk -v t="$took" 'BEGIN { exit !(t < 10) }'; then ok "job ended in ${took}s with exit code $code"
    else bad "job ended in ${took}s with exit code $code"; fi
  fi
  sleep 0.5
  pgrep -f "$tmp/k" >/dev/null && { bad "ranks left running after the job ended"; pkill -9 -f "$tmp/k"; }
fi

echo "mpi: a global batch that the rank count does not divide"
# 128 over 3 ranks: slices of 43, 43 and 42 examples, the chain rule seeded with 1/128.
run_mpi 3 "$bin" "${args[@]}" --out "$tmp/r3" > "$tmp/r3.log" 2>&1 || bad "mpirun -n 3: $(tail -2 "$tmp/r3.log")"
out=$(compare "$tmp/r1/checkpoints/latest.safetensors" "$tmp/r3/checkpoints/latest.safetensors" 1e-4) \
  && ok "3 ranks, batch 128 (43 + 43 + 42): $(echo "$out" | cut -d'(' -f1)" || bad "3 ranks: $out"

echo "mpi: an error every rank meets alike is one line from rank 0, exit 1, no MPI_Abort"
# Start-up stages vote before the next collective: all failed -> rank 0 prints, every rank exits 1
# (mpirun's own "Primary job terminated normally, but 1 process returned a non-zero exit code"
# follows; that is not MPI_Abort's banner).
one_error() {  # one_error LOG CODE TEXT: exactly one "vae-dist: error:" line holding TEXT, no MPI_ABORT, exit 1
  [ "$2" -eq 1 ] && [ "$(grep -c '^vae-dist: error:' "$1")" -eq 1 ] && grep -q "^vae-dist: error: .*$3" "$1" && ! grep -q MPI_ABORT "$1"
}
run_mpi 4 "$bin" train --data synthetic:512 --epochs 1 --batch-size 130 --deterministic --out "$tmp/e" > "$tmp/e.log" 2>&1; code=$?
one_error "$tmp/e.log" "$code" "--deterministic splits every batch into 4 fixed groups" \
  && ok "4 ranks, --deterministic with batch 130: exit $code, $(grep -m1 'error' "$tmp/e.log")" || bad "deterministic batch 130: exit $code: $(head -4 "$tmp/e.log")"
run_mpi 2 "$bin" train --data no-such-folder --out "$tmp/nf" > "$tmp/nf.log" 2>&1; code=$?
one_error "$tmp/nf.log" "$code" "no-such-folder: not found" \
  && ok "2 ranks, --data no-such-folder: exit $code, one line: $(grep -m1 'error' "$tmp/nf.log")" || bad "--data no-such-folder: exit $code: $(head -4 "$tmp/nf.log")"
run_mpi 2 "$bin" train --resume --out "$tmp/none" > "$tmp/nr.log" 2>&1; code=$?
one_error "$tmp/nr.log" "$code" "not found, nothing to resume" \
  && ok "2 ranks, --resume without a checkpoint (rank 0 reads): one line, exit $code" || bad "--resume without a checkpoint: exit $code: $(head -4 "$tmp/nr.log")"

summary mpi
