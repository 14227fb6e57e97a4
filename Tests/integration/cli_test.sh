#!/usr/bin/env bash
# Every subcommand on a fresh checkpoint, as a user runs them, and the error
# contract for bad input: one line on stderr naming the problem, exit code 1.
set -uo pipefail
. "$(dirname "$0")/lib.sh" cli
use_venv || abort "cannot set up .venv"  # $python: .venv with numpy and safetensors
export VAE_DIST_PROGRESS=0
# Image grids by content (tools/check_grids.py: size, reconstruct, interpolate, traverse).
grid() { "$python" "$tools/check_grids.py" "$@"; }

"$bin" train --data synthetic:3000 --epochs 3 --batch-size 50 --latent 6 --out "$tmp/run" > "$tmp/train.log" 2>&1 || bad "train: $(tail -1 "$tmp/train.log")"
ck="$tmp/run/checkpoints/latest.safetensors"
[ -f "$ck" ] && ok "train wrote $(ls "$tmp/run/checkpoints" | tr '\n' ' ')" || bad "no checkpoint"

out=$("$bin" eval --checkpoint "$ck" --iw-samples 50 --limit 40 2>&1) && "$python" -c '
import json, sys; m = json.loads(sys.argv[1])
assert m["test_count"] == 40 and m["test_iw_nll"] <= m["test_nelbo"] + 1, m' "$out" && ok "eval: $out" || bad "eval: $out"

# 28x28 tiles, 2 px padding, scale 2: a grid of C columns and R rows is (30C+2)*2 x (30R+2)*2.
"$bin" sample --checkpoint "$ck" --count 16 --columns 8 --out "$tmp/s.png" >/dev/null && out=$(grid size "$tmp/s.png" 484 124) \
  && ok "sample: 8x2 grid of 28x28 tiles" || bad "sample: $out"
"$bin" reconstruct --checkpoint "$ck" --count 8 --out "$tmp/r.png" >/dev/null && out=$(grid size "$tmp/r.png" 484 124 && grid reconstruct "$tmp/r.png") \
  && ok "reconstruct: $out" || bad "reconstruct: $out"
"$bin" interpolate --checkpoint "$ck" --steps 10 --pairs 3 --out "$tmp/i.png" >/dev/null \
  && out=$(grid size "$tmp/i.png" 604 184 && grid interpolate "$tmp/i.png" 10 "$tmp/r.png") && ok "interpolate: $out" || bad "interpolate: $out"
"$bin" traverse --checkpoint "$ck" --steps 7 --out "$tmp/t.png" >/dev/null && out=$(grid size "$tmp/t.png" 424 364 && grid traverse "$tmp/t.png" 7) \
  && ok "traverse: $out" || bad "traverse: $out"
"$bin" inspect "$ck" | grep -qE "encoder.mu.weight +F32 +\[6, 400\]" && ok "inspect lists tensors" || bad "inspect: $("$bin" inspect "$ck" 2>&1 | head -3)"
"$bin" inspect --json "$ck" | "$python" -c 'import json,sys; d=json.load(sys.stdin); assert d["metadata"]["format"]=="vae-dist/1"' && ok "inspect --json" || bad "inspect --json"

# The training step allocates nothing: 20 and 100 steps make the same number of heap
# allocations of any kind (malloc, posix_memalign, ...: counted by an LD_PRELOAD shim; one
# allocation per step would add 80). --log-every past the run's steps: step rows and log lines
# (formatted text, every ~10 s or 25 an epoch by default) are reporting, not the step.
# VAE_DIST_ISA forces the kernels: timing them at start (when the cache lacks this workload, as
# after other workloads pushed it out) allocates as many times as its rounds, which vary with load.
# SWIFT_DETERMINISTIC_HASHING=1: Swift seeds every Set and Dictionary's hash at random per
# process, so their growth (argument parsing, JSON) allocated 5-25 times more or less from run
# to run, in either direction, and failed this test once in CI (9210 with 20 steps, 9203 with
# 100). With fixed seeds two runs differ by one or two; 10 leaves room for thread timing and
# still fails on one allocation every 8 steps.
if command -v cc > /dev/null && cc -O2 -shared -fPIC "$tools/count_allocations.c" -o "$tmp/count.so" -ldl 2> /dev/null; then
  counts=()
  for n in 1280 6400; do
    counts+=("$(SWIFT_DETERMINISTIC_HASHING=1 VAE_DIST_ISA=avx2 LD_PRELOAD="$tmp/count.so" "$bin" train --data synthetic:$n --epochs 1 --batch-size 64 --log-every 100000 --out "$tmp/alloc$n" 2>&1 \
      | sed -n 's/^allocations: total \([0-9]*\).*/\1/p')")
  done
  if [ -n "${counts[0]}" ] && [ -n "${counts[1]}" ] && [ $(( ${counts[1]} - ${counts[0]} )) -le 10 ] && [ $(( ${counts[0]} - ${counts[1]} )) -le 10 ]; then
    ok "no allocation in the training step: ${counts[0]} allocations (every allocation function) with 20 steps, ${counts[1]} with 100"
  else
    bad "allocations grow with steps: ${counts[*]}"
  fi
else
  bad "no C compiler to build the allocation counter"
fi

# --binarize trains on Bernoulli draws of the pixels (their statistics are a unit test): the
# option must reach the data, so the same run with and without it ends elsewhere.
"$bin" train --data synthetic:1200 --epochs 1 --batch-size 60 --latent 6 --binarize --out "$tmp/bin" > /dev/null 2>&1
"$bin" train --data synthetic:1200 --epochs 1 --batch-size 60 --latent 6 --out "$tmp/nobin" > /dev/null 2>&1
if compare "$tmp/bin/checkpoints/latest.safetensors" "$tmp/nobin/checkpoints/latest.safetensors" 0 > /dev/null 2>&1; then
  bad "--binarize changed nothing: the parameters equal those of the run without it"
elif "$bin" inspect --json "$tmp/bin/checkpoints/latest.safetensors" | grep -q '\\"binarize\\":true'; then
  ok "--binarize reaches the data: $(compare "$tmp/bin/checkpoints/latest.safetensors" "$tmp/nobin/checkpoints/latest.safetensors" | cut -d'(' -f1)from the run without it"
else
  bad "--binarize: the checkpoint's config does not record it"
fi

# A warm-up and cosine schedule, gradient clipping and a line every 10 steps (no progress bar).
"$bin" train --data synthetic:1200 --epochs 2 --batch-size 60 --latent 6 --lr-schedule cosine --warmup-steps 5 \
  --clip-grad-norm 1 --log-every 10 --out "$tmp/sched" > "$tmp/sched.log" 2>&1
if "$python" - "$tmp/sched/metrics.jsonl" "$tmp/sched.log" <<'PY'
import json, math, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
log = open(sys.argv[2]).read().splitlines()
steps = [l for l in log if l.startswith("step ")]
# 40 steps: cosine from 1e-3 after 5 warm-up steps; after step 20 (epoch 1) and 40 (the end).
expected = [1e-3 * 0.5 * (1 + math.cos(math.pi * (s - 1 - 5) / 35)) for s in (20, 40)]
got = [l["learning_rate"] for l in lines]
assert all(abs(g - e) <= 1e-6 + 1e-3 * e for g, e in zip(got, expected)), (got, expected)
assert len(steps) == 4 and steps[0].startswith("step 10 (epoch 1, 10/20)") and " lr " in steps[0], steps
print(f"learning_rate {got[0]:.3g} after epoch 1, {got[1]:.3g} at the end; {len(steps)} step lines")
PY
then ok "--lr-schedule cosine --warmup-steps 5 --clip-grad-norm 1 --log-every 10: $(grep -c '^step ' "$tmp/sched.log") step lines, the schedule in metrics.jsonl"
else bad "schedule/clip/log-every: $(tail -2 "$tmp/sched.log")"; fi

# Bad input: exactly one line on stderr, exit code 1, naming the problem.
printf 'garbage!' > "$tmp/bad.safetensors"
head -c 1000 "$ck" > "$tmp/truncated.safetensors"
check_error() {  # expected-fragment command...
  local fragment=$1; shift
  "$@" > "$tmp/o" 2> "$tmp/e"; local code=$?
  if [ "$code" -eq 1 ] && [ "$(wc -l < "$tmp/e")" -eq 1 ] && grep -q -- "$fragment" "$tmp/e" && ! grep -qi "fatal error\|backtrace" "$tmp/e"; then
    ok "exit 1: $(cat "$tmp/e")"
  else
    bad "'$*' exit $code, stderr: $(head -3 "$tmp/e")"
  fi
}
check_error "--batch-size must be at least 1" "$bin" train --data synthetic:100 --batch-size 0 --out "$tmp/x"
check_error "--epochs must be 0 or more" "$bin" train --data synthetic:100 --epochs=-1 --out "$tmp/x"
check_error "--latent must be a positive" "$bin" train --data synthetic:100 --latent 0 --out "$tmp/x"
check_error "--hidden 'a,b'" "$bin" train --data synthetic:100 --hidden a,b --out "$tmp/x"
check_error "--lr-schedule 'linear': expected constant or cosine" "$bin" train --data synthetic:100 --lr-schedule linear --out "$tmp/x"
check_error "--clip-grad-norm must be 0 (off) or a positive norm" "$bin" train --data synthetic:100 --clip-grad-norm -1 --out "$tmp/x"
check_error "--likelihood 'poisson'" "$bin" train --data synthetic:100 --likelihood poisson --out "$tmp/x"
check_error "Unknown option '--bogus'" "$bin" train --bogus
check_error "/nonexistent: not found" "$bin" train --data /nonexistent --out "$tmp/x"
check_error "nothing to resume" "$bin" train --data synthetic:100 --batch-size 10 --resume --out "$tmp/empty"
check_error "already holds checkpoints of an earlier run: pass --resume" "$bin" train --data synthetic:3000 --epochs 3 --batch-size 50 --latent 6 --out "$tmp/run"
check_error "bad.safetensors: not a valid safetensors file" "$bin" eval --checkpoint "$tmp/bad.safetensors"
check_error "truncated" "$bin" sample --checkpoint "$tmp/truncated.safetensors"
check_error "missing.safetensors: not found" "$bin" inspect "$tmp/missing.safetensors"
mkdir -p "$tmp/idx" && printf '\x00\x00\x08\x03\x00\x00\x00\x05\x00\x00\x00\x1c\x00\x00\x00\x1c' > "$tmp/idx/train-images-idx3-ubyte"
cp "$tmp/idx/train-images-idx3-ubyte" "$tmp/idx/t10k-images-idx3-ubyte"
check_error "train-images-idx3-ubyte: not a valid IDX file: truncated" "$bin" train --data "$tmp/idx" --out "$tmp/x"
"$python" - "$tmp/idx16" <<'PY'
import os, struct, sys
d = sys.argv[1]; os.makedirs(d, exist_ok=True)
for name, n in (("train", 20), ("t10k", 5)):
    open(f"{d}/{name}-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 0x803, n, 16, 16) + bytes(n * 256))
PY
check_error "expects 28x28 images but" "$bin" eval --checkpoint "$ck" --data "$tmp/idx16"
check_error "was trained as 784-400-6" "$bin" train --data "$tmp/idx16" --resume --out "$tmp/run"

echo "cli: paths are the user's"
# Launch/train.sh from another folder: relative --data and --out are that folder's. The checkpoint
# records --data as an absolute path, so eval and --resume work from anywhere; an error about the
# recorded path says where it came from.
mkdir -p "$tmp/user" && cp -r "$tmp/idx16" "$tmp/user/mydata"
(cd "$tmp/user" && NP=1 bash "$OLDPWD/Launch/train.sh" --data mydata --hidden 16 --latent 2 --batch-size 5 --epochs 1 --out myrun > "$tmp/user.log" 2>&1); code=$?
recorded=$("$bin" inspect --json "$tmp/user/myrun/checkpoints/latest.safetensors" 2>/dev/null | "$python" -c 'import json, sys; print(json.loads(json.load(sys.stdin)["metadata"]["config"])["training"]["data"])' 2>/dev/null)
[ "$code" -eq 0 ] && [ "$recorded" = "$tmp/user/mydata" ] && [ ! -e myrun ] \
  && ok "Launch/train.sh --data mydata --out myrun from another folder: trained there, the checkpoint records $recorded" \
  || bad "train.sh from another folder: exit $code, recorded '$recorded': $(tail -2 "$tmp/user.log")"
"$bin" eval --checkpoint "$tmp/user/myrun/checkpoints/latest.safetensors" > /dev/null 2>&1 && ok "eval from another folder finds the recorded data" || bad "eval from another folder failed"
mv "$tmp/user/mydata" "$tmp/user/moved"
check_error "mydata: not found (pass --data with a folder of IDX files, or --data synthetic) (--data $tmp/user/mydata is the data $tmp/user/myrun/checkpoints/latest.safetensors was trained on; pass --data to read the images from elsewhere)" \
  "$bin" eval --checkpoint "$tmp/user/myrun/checkpoints/latest.safetensors"
check_error "is the data myrun/checkpoints/latest.safetensors was trained on; pass --data to read the images from elsewhere" \
  bash -c "cd '$tmp/user' && '$bin' train --resume --out myrun --epochs 2"

summary cli
