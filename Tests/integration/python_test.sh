#!/usr/bin/env bash
# Checkpoints are usable without vae-dist: Python's safetensors + numpy load a fresh
# checkpoint and decode latents to the same images vae-dist decodes (to 1e-5).
set -uo pipefail
. "$(dirname "$0")/lib.sh" python
use_venv || abort "cannot set up .venv"  # $python: .venv with numpy and safetensors
VAE_DIST_PROGRESS=0 "$bin" train --data synthetic:1024 --epochs 1 --batch-size 64 --out "$tmp/run" > "$tmp/train.log" 2>&1 \
  || abort "training failed: $(tail -1 "$tmp/train.log")"
ckpt="$tmp/run/checkpoints/latest.safetensors"
"$bin" sample --checkpoint "$ckpt" --count 32 --seed 5 --out "$tmp/s.png" --tensors "$tmp/s.safetensors" > /dev/null
if out=$("$python" Launch/decode_numpy.py "$ckpt" "$tmp/s.safetensors"); then ok "$out"; else bad "$out"; fi
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
); then ok "$out"; else bad "metadata/shape check: $out"; fi
summary python
