#!/usr/bin/env bash
# The convolutional VAE (--arch conv, docs/training.md "Architectures"), after Launch/setup.sh:
#   1. the same parameter bits on --threads 1, 2 and 3; --deterministic on 1, 2 and 4 ranks;
#      the AVX2 and AVX-512 kernels (VAE_DIST_ISA, where this CPU has both);
#   2. kill -9 in the second epoch (held there by the test hook, not raced), then --resume:
#      bit-identical to the uninterrupted run;
#   3. --accumulate 2 with --deterministic equals one micro-batch; the gaussian likelihood,
#      --autoencoder, beta-TCVAE, KL warm-up and capacity train to finite checkpoints;
#   4. every subcommand on a conv checkpoint (sample, reconstruct, interpolate, traverse,
#      latent-map, manifold, encode, eval with --iw-samples, inspect), colour images (.npy);
#   5. bench's conv pass table at 1 and 2 threads (--json);
#   6. one clear error line and exit 1 for image sides the layers cannot halve, bad
#      --conv-channels, and images whose activations would pass 256 MB an example.
#   bash Tests/integration/conv_test.sh
set -uo pipefail
. "$(dirname "$0")/lib.sh" conv
use_venv || abort "cannot set up .venv"
export VAE_DIST_PROGRESS=0
small=(--data synthetic:640 --arch conv --conv-channels 4,8 --hidden 16 --latent 3 --batch-size 64 --seed 4 --log-every 100000)

echo "conv: --threads 1, 2, 3 give the same bits"
for t in 1 2 3; do
  "$bin" train "${small[@]}" --epochs 1 --threads "$t" --out "$tmp/t$t" > "$tmp/t$t.log" 2>&1 || bad "--threads $t: $(tail -1 "$tmp/t$t.log")"
done
same "$tmp/t1" "$tmp/t2" && same "$tmp/t1" "$tmp/t3" && ok "--threads 1/2/3: bit-identical parameters" \
  || bad "--threads: parameters differ: $(compare "$tmp/t1" "$tmp/t2"; compare "$tmp/t1" "$tmp/t3")"
valid "$(checkpoint_of "$tmp/t1")" && ok "the checkpoint holds finite values" || bad "non-finite values in the checkpoint"

echo "conv: --deterministic on 1, 2 and 4 ranks"
for np in 1 2 4; do
  run_mpi "$np" "$bin" train "${small[@]}" --epochs 1 --deterministic --threads 1 --out "$tmp/d$np" > "$tmp/d$np.log" 2>&1 \
    || bad "$np ranks: $(tail -1 "$tmp/d$np.log")"
done
same "$tmp/d1" "$tmp/d2" && same "$tmp/d1" "$tmp/d4" && ok "--deterministic: 1, 2 and 4 ranks bit-identical" \
  || bad "--deterministic ranks differ: $(compare "$tmp/d1" "$tmp/d2"; compare "$tmp/d1" "$tmp/d4")"
"$bin" train "${small[@]}" --epochs 1 --deterministic --accumulate 2 --threads 1 --out "$tmp/acc" > "$tmp/acc.log" 2>&1 \
  || bad "--accumulate 2: $(tail -1 "$tmp/acc.log")"
same "$tmp/d1" "$tmp/acc" && ok "--deterministic --accumulate 2 equals one micro-batch" || bad "--accumulate 2 differs: $(compare "$tmp/d1" "$tmp/acc")"

echo "conv: the kernel sets"
isas=avx2
grep -q -w avx512f /proc/cpuinfo && grep -q -w avx512vl /proc/cpuinfo && isas="avx2 avx512 avx512ymm"
for isa in $isas; do
  VAE_DIST_ISA=$isa "$bin" train "${small[@]}" --epochs 1 --threads 2 --out "$tmp/isa-$isa" > "$tmp/isa-$isa.log" 2>&1 \
    || bad "VAE_DIST_ISA=$isa: $(tail -1 "$tmp/isa-$isa.log")"
done
all_same=1
for isa in $isas; do same "$tmp/isa-avx2" "$tmp/isa-$isa" || all_same=0; done
[ "$all_same" = 1 ] && ok "VAE_DIST_ISA=$(echo $isas | tr ' ' '|'): bit-identical parameters" || bad "the kernel sets give other bits"

echo "conv: kill -9 in epoch 2, then --resume"
"$bin" train "${small[@]}" --epochs 3 --out "$tmp/straight" > "$tmp/straight.log" 2>&1 || bad "straight run: $(tail -1 "$tmp/straight.log")"
# 10 steps an epoch: held before global step 15, after epoch 1's checkpoint.
VAE_DIST_FAULT=hold:15 "$bin" train "${small[@]}" --epochs 3 --out "$tmp/killed" > "$tmp/killed.log" 2>&1 &
pid=$!
if held "$tmp/killed.log" 15 "$pid"; then
  kill -9 "$pid"; { wait "$pid"; } 2>/dev/null
  "$bin" train "${small[@]}" --epochs 3 --out "$tmp/killed" --resume > "$tmp/resumed.log" 2>&1 || bad "--resume: $(tail -1 "$tmp/resumed.log")"
  [ "$(resumed_at "$tmp/resumed.log")" = 10 ] && same "$tmp/straight" "$tmp/killed" \
    && ok "resumed at step 10 after kill -9 at step 15: bit-identical to the uninterrupted run" \
    || bad "resume after kill -9: resumed at '$(resumed_at "$tmp/resumed.log")', $(compare "$tmp/straight" "$tmp/killed")"
else
  bad "the run never held before step 15: $(tail -2 "$tmp/killed.log")"; kill -9 "$pid" 2>/dev/null
fi

echo "conv: likelihoods and regimes"
for variant in "--likelihood gaussian" "--autoencoder" "--tc-beta 6" "--kl-warmup 5" "--capacity 5 --capacity-steps 10 --gamma 10" "--beta 4"; do
  name=$(echo "$variant" | tr -d ' -')
  # shellcheck disable=SC2086
  if "$bin" train "${small[@]}" --epochs 1 $variant --out "$tmp/$name" > "$tmp/$name.log" 2>&1 && valid "$(checkpoint_of "$tmp/$name")"; then
    ok "$variant: trains to a finite checkpoint ($(grep -o 'test_nelbo [0-9.]*' "$tmp/$name.log" | tail -1))"
  else
    bad "$variant: $(tail -1 "$tmp/$name.log")"
  fi
done

echo "conv: every subcommand on a conv checkpoint"
mkdir -p "$tmp/out"
run=$tmp/t1
for command in "sample --out $tmp/out/s.png --tensors $tmp/out/s.safetensors" "reconstruct --out $tmp/out/r.png" \
               "interpolate --out $tmp/out/i.png" "traverse --out $tmp/out/t.png" "latent-map --out $tmp/out/l.png" \
               "manifold --out $tmp/out/m.png" "encode --out $tmp/out/e.safetensors" "eval --iw-samples 4" "inspect --verify"; do
  # shellcheck disable=SC2086
  set -- $command
  sub=$1; shift
  if [ "$sub" = inspect ]; then out=$("$bin" inspect "$@" "$run" 2>&1); else out=$("$bin" "$sub" --checkpoint "$run" "$@" 2>&1); fi
  [ $? -eq 0 ] && ok "$sub: $(echo "$out" | tail -1 | cut -c1-110)" || bad "$sub: $(echo "$out" | tail -2)"
done
"$python" - "$tmp/out/s.safetensors" <<'PY' && ok "sample --tensors: 64 images of 28x28 in [0, 1]" || bad "sample --tensors"
import sys
import numpy as np
from safetensors.numpy import load_file
t = load_file(sys.argv[1])
assert t["images"].shape[0] == 64 and t["images"].shape[1:3] == (28, 28), t["images"].shape
assert np.isfinite(t["images"]).all() and t["images"].min() >= 0 and t["images"].max() <= 1
PY

echo "conv: colour images (.npy [N, 16, 16, 3])"
"$python" -c "
import numpy as np
r = np.random.default_rng(1)
x = np.zeros((256, 16, 16, 3), np.uint8)
for i in range(256):
    a, b = r.integers(0, 10, 2); x[i, a:a + 6, b:b + 6, i % 3] = 255
np.save('$tmp/colour.npy', x)"
"$bin" train --data "$tmp/colour.npy" --arch conv --conv-channels 4,8 --hidden 16 --latent 3 --batch-size 32 --epochs 1 --out "$tmp/colour" > "$tmp/colour.log" 2>&1 \
  && valid "$(checkpoint_of "$tmp/colour")" && "$bin" sample --checkpoint "$tmp/colour" --out "$tmp/out/colour.png" > /dev/null 2>&1 \
  && ok "RGB 16x16: trains and samples ($(grep -o 'test_nelbo [0-9.]*' "$tmp/colour.log" | tail -1))" || bad "RGB: $(tail -1 "$tmp/colour.log")"

echo "conv: bench's pass table at 1 and 2 threads"
"$bin" bench --arch conv --conv-channels 4,8 --hidden 16 --batches 2 --threads 1,2 --json > "$tmp/bench.jsonl" 2>&1 \
  && "$python" - "$tmp/bench.jsonl" <<'PY' && ok "bench --arch conv --threads 1,2: $(grep -m1 '"threads": 2, "gflops"' "$tmp/bench.jsonl" | cut -c1-150)" \
  || bad "bench --arch conv --threads 1,2: $(tail -2 "$tmp/bench.jsonl")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
peak = next(r for r in rows if r["kind"] == "peak")["peak_gflops"]
passes = [r for r in rows if r["kind"] == "conv_pass"]
layers = ["encoder.conv.0", "encoder.conv.1", "decoder.deconv.0", "decoder.deconv.1"]
kinds = ["forward", "input gradient", "weight gradient"]
# Each pass at 1 thread, then at 2 (the speedup paired call by call with the first count).
assert [(r["layer"], r["pass"], r["threads"]) for r in passes] == [(l, k, t) for l in layers for k in kinds for t in (1, 2)], passes
for r in passes:
    assert r["batch"] == 2 and 0 < r["fastest_seconds"] <= r["seconds"], r
    assert abs(r["peak_fraction"] - r["gflops"] / peak / r["threads"]) < 1e-4 * r["peak_fraction"], r
    assert (r["speedup"] is None) == (r["threads"] == 1), r
    assert r["threads"] == 1 or 0.05 < r["speedup"] < 20, r
steps = sorted(r["threads"] for r in rows if r["kind"] == "step")
assert steps == [1, 2], steps
PY

echo "conv: errors"
check_one_line() {  # WHAT EXPECTED COMMAND...: exit 1 and one line holding EXPECTED
  local what=$1 expected=$2 out code; shift 2
  out=$("$@" 2>&1); code=$?
  [ "$code" -eq 1 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && [[ "$out" == *"$expected"* ]] && ok "$what: $out" || bad "$what: exit $code: $out"
}
check_one_line "28x28 with 4 layers" "needs image sides divisible by 16, but the images are 28x28: give --conv-channels 2 values" \
  "$bin" train --data synthetic:640 --arch conv --epochs 1 --out "$tmp/e1"
check_one_line "--conv-channels 0" "--conv-channels '4,0': expected positive numbers" \
  "$bin" train --data synthetic:640 --arch conv --conv-channels 4,0 --epochs 1 --out "$tmp/e2"
check_one_line "--arch cnn" "--arch 'cnn': expected mlp or conv" "$bin" train --data synthetic:640 --arch cnn --out "$tmp/e3"
"$python" -c "import numpy as np; np.save('$tmp/huge.npy', np.zeros((4, 1024, 1024), np.uint8))"
check_one_line "1024x1024 images: activations bounded before allocation" "MB of activations per example; at most 256 MB" \
  "$bin" train --data "$tmp/huge.npy" --arch conv --batch-size 2 --epochs 1 --out "$tmp/e4"
check_one_line "--resume with another --arch" "--arch cannot change on resume" \
  "$bin" train "${small[@]}" --arch mlp --epochs 2 --resume --out "$tmp/t1"

summary conv
