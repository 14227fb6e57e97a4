#!/usr/bin/env bash
# Checkpoints are usable without vae-dist: Python's safetensors + numpy load a fresh
# checkpoint and decode latents to the same images vae-dist decodes (to 1e-5).
set -uo pipefail
cd "$(dirname "$0")/.."
. Launch/common.sh
use_venv || { echo "python: 0 passed, 1 failed"; exit 1; }  # $python: .venv with numpy and safetensors
bin=.build/release/vae-dist
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
VAE_DIST_PROGRESS=0 "$bin" train --data synthetic:1024 --epochs 1 --batch-size 64 --out "$tmp/run" > "$tmp/train.log" 2>&1 \
  || { echo "python: training failed: $(tail -1 "$tmp/train.log")"; echo "python: 0 passed, 1 failed"; exit 1; }
ckpt="$tmp/run/checkpoints/latest.safetensors"
"$bin" sample --checkpoint "$ckpt" --count 32 --seed 5 --out "$tmp/s.png" --tensors "$tmp/s.safetensors" > /dev/null
if out=$("$python" Launch/decode_numpy.py "$ckpt" "$tmp/s.safetensors"); then echo "  ok: $out"; passed=$((passed + 1))
else echo "  FAILED: $out"; failed=$((failed + 1)); fi
if out=$("$python" - "$ckpt" <<'PY'
import json, sys
from safetensors import safe_open
with safe_open(sys.argv[1], "np") as f:
    meta = f.metadata()
    assert meta["format"] == "vae-dist/1", meta
    config = json.loads(meta["config"])
    assert config["model"]["latent"] == 20 and config["model"]["hidden"] == [400]
    assert f.get_tensor("encoder.0.weight").shape == (400, 784)
    assert f.get_tensor("optimizer.encoder.0.weight.exp_avg").shape == (400, 784)
    print(f"metadata epoch {meta['epoch']} step {meta['step']}, {len(list(f.keys()))} tensors, torch-style [out, in] weights")
PY
); then echo "  ok: $out"; passed=$((passed + 1)); else echo "  FAILED: metadata/shape check: $out"; failed=$((failed + 1)); fi
echo "python: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
