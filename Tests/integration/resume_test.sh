#!/usr/bin/env bash
# --resume as a user runs it, with the real binary: a resumed run reads its checkpoint (model,
# data, options), needs only `--resume --out DIR --epochs N` on any rank count, refuses other
# model options and other data with one line naming both values, and records what it changed.
#   bash Tests/integration/resume_test.sh                 (after swift build -c release)
#   VAE_DIST_BIN=path/to/vae-dist bash Tests/integration/resume_test.sh   (another build, e.g. an older one)
# Prints "resume: N passed, M failed".
set -uo pipefail
. "$(dirname "$0")/lib.sh" resume
use_venv || abort "cannot set up .venv"  # $python: .venv with numpy and safetensors
bin=${VAE_DIST_BIN:-$bin}
export VAE_DIST_PROGRESS=0

# The value of KEY in the last line of RUN/metrics.jsonl.
last_metric() { "$python" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().split("\n")[-2])[sys.argv[2]])' "$1/metrics.jsonl" "$2" 2>/dev/null; }
# A field of the checkpoint's config, e.g. training.learningRate.
config_field() {
  "$bin" inspect --json "$1/checkpoints/latest.safetensors" 2>/dev/null | "$python" -c '
import json, sys
c = json.loads(json.load(sys.stdin)["metadata"]["config"])
for key in sys.argv[1].split("."): c = c[key]
print(json.dumps(c))' "$2" 2>/dev/null
}
# refused FRAGMENT... -- COMMAND...: exit 1 and exactly one line on stderr holding every fragment.
refused() {
  local fragments=()
  while [ "$1" != "--" ]; do fragments+=("$1"); shift; done; shift
  "$@" > "$tmp/o" 2> "$tmp/e"; local code=$? missing=""
  for f in "${fragments[@]}"; do grep -qF -- "$f" "$tmp/e" || missing+=" '$f'"; done
  if [ "$code" -eq 1 ] && [ "$(wc -l < "$tmp/e")" -eq 1 ] && [ -z "$missing" ]; then
    ok "refused: $(cat "$tmp/e")"
  else
    bad "'${*:2}' exit $code (expected 1 and one line holding${missing:- every fragment}): $(head -c 400 "$tmp/e" | head -3)"
  fi
}

echo "resume: a synthetic run resumed with only --resume --out --epochs"
small=(--data synthetic:3000 --batch-size 50)
"$bin" train "${small[@]}" --epochs 1 --out "$tmp/s" > "$tmp/s1.log" 2>&1 || bad "first run: $(tail -1 "$tmp/s1.log")"
first=$(last_metric "$tmp/s" test_nelbo)
"$bin" train --resume --out "$tmp/s" --epochs 2 > "$tmp/s2.log" 2>&1 || bad "resume: $(tail -1 "$tmp/s2.log")"
if grep -q "^vae-dist: resumed from $tmp/s/checkpoints/latest.safetensors at global step 60 " "$tmp/s2.log" \
   && grep -q "on synthetic (3000 train" "$tmp/s2.log"; then
  ok "$(grep '^vae-dist: resumed from' "$tmp/s2.log" | sed "s|$tmp/||"), on synthetic"
else
  bad "no 'resumed from ... at global step 60' on synthetic: $(grep -m2 '^vae-dist: \(training\|resumed\)' "$tmp/s2.log" | cut -c1-160)"
fi
# On the synthetic shapes test_nelbo goes on falling (about 170 -> 110 nats here); the
# same model on Fashion-MNIST (the default --data) scores about 260.
second=$(last_metric "$tmp/s" test_nelbo)
if "$python" -c 'import sys; a, b = map(float, sys.argv[1:]); sys.exit(not (b < a < 200))' "$first" "$second" 2>/dev/null; then
  ok "test_nelbo stays on the synthetic data: $first -> $second"
else
  bad "test_nelbo $first -> $second: the resumed epoch did not continue on the synthetic data"
fi

echo "resume: the checkpoint records its data"
if "$bin" inspect "$tmp/s" 2>/dev/null | grep -qE "^  trained on: synthetic: 3000 images of 28x28, FNV-1a [0-9a-f]{16}$"; then
  ok "inspect: $("$bin" inspect "$tmp/s" | grep 'trained on:' | sed 's/^ *//')"
else
  bad "inspect shows no 'trained on: synthetic: 3000 images of 28x28, FNV-1a ...' line"
fi

echo "resume: options that must agree, and other data"
refused "--latent cannot change on resume" "was trained with --latent 20, this run gives --latent 8" -- \
  "$bin" train --resume --out "$tmp/s" --epochs 3 --latent 8
refused "--data synthetic:4000: its training images differ" "3000 images of 28x28" "4000 images of 28x28" "--allow-other-data" -- \
  "$bin" train --resume --out "$tmp/s" --epochs 3 --data synthetic:4000
refused "--resume continues the run in --out and --overwrite deletes its checkpoints" -- \
  "$bin" train --resume --overwrite --out "$tmp/s" --epochs 3
# --data given again, the same as the checkpoint's: accepted.
if "$bin" train --resume --out "$tmp/s" --epochs 2 --data synthetic:3000 > "$tmp/same.log" 2>&1 && grep -q "nothing to do" "$tmp/same.log"; then
  ok "--data given again (the checkpoint's) is accepted"
else
  bad "--data synthetic:3000 again: $(tail -1 "$tmp/same.log")"
fi
cp -r "$tmp/s" "$tmp/other"
if "$bin" train --resume --out "$tmp/other" --epochs 3 --data synthetic:4000 --allow-other-data > "$tmp/other.log" 2>&1 \
   && grep -q "resuming on other data (--allow-other-data)" "$tmp/other.log" \
   && "$bin" inspect "$tmp/other" | grep -q "trained on: synthetic: 4000 images"; then
  ok "--allow-other-data: epoch 3 trained on synthetic:4000, recorded in the checkpoint"
else
  bad "--allow-other-data: $(tail -1 "$tmp/other.log")"
fi

# Files edited in place: the same folder, count and shape, one pixel changed.
"$python" - "$tmp/idx" <<'PY'
import os, random, struct, sys
d = sys.argv[1]; os.makedirs(d, exist_ok=True); r = random.Random(5)
for name, n in (("train", 500), ("t10k", 50)):
    open(f"{d}/{name}-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 0x803, n, 28, 28) + bytes(r.randrange(256) for _ in range(n * 784)))
PY
"$bin" train --data "$tmp/idx" --batch-size 50 --latent 4 --epochs 1 --out "$tmp/i" > "$tmp/i.log" 2>&1 || bad "IDX run: $(tail -1 "$tmp/i.log")"
"$python" -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(-1, 2); b = f.read(1); f.seek(-1, 2); f.write(bytes([b[0] ^ 1]))' "$tmp/idx/train-images-idx3-ubyte"
refused "--data $tmp/idx: its training images differ" "idx: 500 images of 28x28" -- "$bin" train --resume --out "$tmp/i" --epochs 2

echo "resume: options resume may change"
if "$bin" train --resume --out "$tmp/s" --epochs 3 --lr 0.0005 > "$tmp/lr.log" 2>&1 \
   && grep -q "^vae-dist: changed on resume: --epochs 2 -> 3, --lr 0.001 -> 0.0005$" "$tmp/lr.log" \
   && [ "$(config_field "$tmp/s" training.learningRate)" = "0.0005" ]; then
  ok "--lr 0.0005 accepted, logged and recorded in the checkpoint's config"
else
  bad "--lr on resume: $(grep -m1 'changed on resume\|error' "$tmp/lr.log"), recorded lr $(config_field "$tmp/s" training.learningRate)"
fi

echo "resume: an autoencoder resumed without --autoencoder, on 2 ranks"
"$bin" train --data synthetic:1000 --batch-size 50 --latent 4 --autoencoder --epochs 1 --out "$tmp/ae" > "$tmp/ae1.log" 2>&1 \
  || bad "autoencoder run: $(tail -1 "$tmp/ae1.log")"
if run_mpi 2 "$bin" train --resume --out "$tmp/ae" --epochs 2 > "$tmp/ae2.log" 2>&1 \
   && grep -q "^vae-dist: training 784-400-4 autoencoder (bernoulli) .* 2 ranks" "$tmp/ae2.log" \
   && grep -q "^vae-dist: resumed from .* at global step 20 " "$tmp/ae2.log" \
   && [ "$(config_field "$tmp/ae" model.autoencoder)" = "true" ] && [ "$(last_metric "$tmp/ae" epoch)" = "2" ]; then
  ok "autoencoder continued on 2 ranks: $(grep -m1 '^vae-dist: training' "$tmp/ae2.log" | cut -d'(' -f1)"
else
  bad "autoencoder resume: $(grep -m1 'error' "$tmp/ae2.log" | cut -c1-200)"
fi

echo "resume: a checkpoint of an older version (no data record) still resumes"
cp -r "$tmp/s" "$tmp/old"
"$python" - "$tmp/old/checkpoints/latest.safetensors" <<'PY'
import json, os, struct, sys
path = os.path.realpath(sys.argv[1])
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
header["__metadata__"].pop("data", None)
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
os.remove(sys.argv[1])  # latest may be a link to the epoch file: write a file of its own
open(sys.argv[1], "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
PY
if "$bin" train --resume --out "$tmp/old" --epochs 4 > "$tmp/old.log" 2>&1 && grep -q "records no data fingerprint" "$tmp/old.log" \
   && "$bin" inspect "$tmp/old" | grep -q "trained on: synthetic: 3000 images"; then
  ok "resumed; the note says so and the new checkpoint records the data"
else
  bad "older checkpoint: $(grep -m1 'error\|fingerprint' "$tmp/old.log" | cut -c1-200)"
fi

summary resume
