"""Decode latents with a vae-dist checkpoint using only numpy and safetensors:
the program the README shows. Run as a test, it checks its images against the
ones vae-dist decoded for the same latents.

  python3 Launch/decode_numpy.py CHECKPOINT SAMPLES.safetensors
"""
import sys
import numpy as np
from safetensors.numpy import load_file

w = load_file(sys.argv[1])                      # every tensor, as numpy arrays


def decode(z):
    h, i = z, 0
    while f"decoder.{i}.weight" in w:           # hidden layers: Linear + ReLU
        h = np.maximum(h @ w[f"decoder.{i}.weight"].T + w[f"decoder.{i}.bias"], 0)
        i += 1
    logits = h @ w["decoder.out.weight"].T + w["decoder.out.bias"]
    return 1 / (1 + np.exp(-logits))            # Bernoulli means = pixel intensities


ref = load_file(sys.argv[2])                    # latents and images from `vae-dist sample --tensors`
images = decode(ref["latents"].astype(np.float64)).reshape(ref["images"].shape)
err = float(np.abs(images - ref["images"]).max())
print(f"numpy decoder vs vae-dist on {len(images)} latents: max |difference| = {err:.2g}")
sys.exit(0 if err <= 1e-5 else 1)
