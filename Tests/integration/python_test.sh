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
# Decoding with no vae-dist code at all (the package, python/vae_dist, has its own suite:
# python_package_test.sh): the few lines docs/checkpoint-format.md describes.
if out=$("$python" - "$ckpt" "$tmp/s.safetensors" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
w = load_file(sys.argv[1])                      # every tensor, as numpy arrays
h, i = load_file(sys.argv[2]), 0                # latents and images from `vae-dist sample --tensors`
z, ref = h["latents"].astype(np.float64), h["images"]
while f"decoder.{i}.weight" in w:               # hidden layers: Linear + ReLU
    z = np.maximum(z @ w[f"decoder.{i}.weight"].T + w[f"decoder.{i}.bias"], 0)
    i += 1
images = 1 / (1 + np.exp(-(z @ w["decoder.out.weight"].T + w["decoder.out.bias"])))  # Bernoulli means
err = float(np.abs(images.reshape(ref.shape) - ref).max())
print(f"numpy alone (no vae-dist code) decodes {len(ref)} latents as vae-dist does: max |difference| = {err:.2g}")
sys.exit(0 if err <= 1e-5 else 1)
PY
); then ok "$out"; else bad "$out"; fi
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
