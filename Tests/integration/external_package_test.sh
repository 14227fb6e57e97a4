#!/usr/bin/env bash
# Another Swift package can use a vae-dist checkpoint: Tests/ExternalPackage depends on this
# repository by path (product VAECheckpoint), loads a checkpoint and decodes latents. Its pixels
# must be the same bits as `vae-dist sample` writes for the same latents (--tensors).
set -uo pipefail
. "$(dirname "$0")/lib.sh" external-package
use_venv || abort "cannot set up .venv"  # $python: .venv with numpy and safetensors
export VAE_DIST_PROGRESS=0
# The scratch folder is ignored by git (.gitignore), and so is the package's Package.resolved.
scratch=Tests/ExternalPackage/.build

"$bin" train --data synthetic:2000 --hidden 32 --latent 2 --epochs 1 --out "$tmp/run" > "$tmp/train.log" 2>&1 \
  && ok "train: a tiny checkpoint" || bad "train: $(tail -1 "$tmp/train.log")"
ck="$tmp/run/checkpoints/latest.safetensors"
"$bin" sample --checkpoint "$ck" --count 5 --seed 7 --out "$tmp/s.png" --tensors "$tmp/s.safetensors" > "$tmp/sample.log" 2>&1 \
  && ok "sample wrote latents and images" || bad "sample: $(tail -1 "$tmp/sample.log")"

if swift build -c release --package-path Tests/ExternalPackage --scratch-path "$scratch" > "$tmp/build.log" 2>&1; then
  ok "the external package builds against product VAECheckpoint"
else
  bad "external package build: $(grep -m1 error: "$tmp/build.log" || tail -1 "$tmp/build.log")"
fi
decode="$scratch/release/decode-latent"

# The latents as decode-latent takes them ("%r" of a float32 read back as float32 is exact).
latents=$("$python" -c '
import sys
from safetensors.numpy import load_file
z = load_file(sys.argv[1])["latents"]
print(";".join(",".join(repr(float(v)) for v in row) for row in z))' "$tmp/s.safetensors")
if "$decode" "$ck" "$latents" > "$tmp/decoded.txt" 2> "$tmp/decode.log"; then
  out=$("$python" -c '
import sys, numpy as np
from safetensors.numpy import load_file
images = load_file(sys.argv[1])["images"].reshape(5, -1)
rows = [np.array([float.fromhex(t) for t in line.split()], dtype=np.float32) for line in open(sys.argv[2])]
decoded = np.stack(rows)
assert decoded.shape == images.shape, (decoded.shape, images.shape)
same = decoded.view(np.uint32) == images.view(np.uint32)
assert same.all(), f"{(~same).sum()} of {same.size} pixels differ"
print(f"{same.size} pixels of {len(rows)} images, the same bits")' "$tmp/s.safetensors" "$tmp/decoded.txt" 2>&1) \
    && ok "decode-latent = sample: $out" || bad "decode-latent differs from sample: $out"
else
  bad "decode-latent: $(tail -1 "$tmp/decode.log")"
fi

# A file that is not a checkpoint gives the same one-line error as vae-dist.
printf 'not a checkpoint' > "$tmp/bad.safetensors"
err=$("$decode" "$tmp/bad.safetensors" 0,0 2>&1)
[[ $? -eq 1 && $err == *"checkpoint $tmp/bad.safetensors: not a valid safetensors file"* ]] \
  && ok "a bad file: $err" || bad "bad file: $err"

summary external-package
