"""Prints the largest absolute difference between the model tensors of two
vae-dist checkpoints (safetensors + numpy only), and fails above a tolerance.

  python3 Tests/integration/tools/compare_checkpoints.py A.safetensors B.safetensors [TOLERANCE]
"""
import sys
import numpy as np
from safetensors.numpy import load_file

a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
tolerance = float(sys.argv[3]) if len(sys.argv) > 3 else float("inf")
model = sorted(k for k in a if not k.startswith("optimizer."))
assert model and set(model) == {k for k in b if not k.startswith("optimizer.")}, "different tensor names"
worst = max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in model)
print(f"max |dparam| = {worst:.3g} over {len(model)} tensors ({sys.argv[1]} vs {sys.argv[2]})")
sys.exit(0 if worst <= tolerance else 1)
