#!/usr/bin/env bash
# Your own data (issue 22): --data FILE.npy, FILE.npz, FILE.safetensors; the held-out test split;
# colour end to end; a 2 GB .npy in bounded memory; and every bad input refused with one line
# naming the file, exit code 1. The files are made here with numpy (and the PNGs checked with
# Pillow). OWN_DATA_LARGE=0 skips the 2 GB run (about 2 minutes on 2 cores).
set -uo pipefail
. "$(dirname "$0")/lib.sh" own-data
if [ ! -x /usr/bin/time ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq time >/dev/null
fi
use_venv pillow:PIL || abort "cannot set up .venv with Pillow"  # $python
export VAE_DIST_PROGRESS=0

# The same 1,000 + 200 gray 28x28 images (and labels) as an IDX folder, .npy files, an .npz
# (stored and compressed) and a .safetensors file; colour images as uint8 NHWC and float32 NCHW.
"$python" - "$tmp" <<'EOF'
import os, struct, sys
import numpy as np
from safetensors.numpy import save_file
d = sys.argv[1]
rng = np.random.default_rng(7)
y, x = np.mgrid[0:28, 0:28]
def shapes(n):
    cy, cx, r = rng.integers(8, 20, n), rng.integers(8, 20, n), rng.integers(3, 8, n)
    images = (((y - cy[:, None, None]) ** 2 + (x - cx[:, None, None]) ** 2) < r[:, None, None] ** 2) * 255
    return images.astype(np.uint8), (r % 10).astype(np.uint8)
xt, yt = shapes(1000)
xs, ys = shapes(200)
os.makedirs(f"{d}/idx")
for name, a in (("train-images-idx3-ubyte", xt), ("t10k-images-idx3-ubyte", xs),
                ("train-labels-idx1-ubyte", yt), ("t10k-labels-idx1-ubyte", ys)):
    with open(f"{d}/idx/{name}", "wb") as f:
        f.write(struct.pack(">BBBB" + "I" * a.ndim, 0, 0, 8, a.ndim, *a.shape) + a.tobytes())
np.save(f"{d}/train.npy", xt); np.save(f"{d}/test.npy", xs)
np.savez(f"{d}/keras.npz", x_train=xt, y_train=yt, x_test=xs, y_test=ys)
np.savez_compressed(f"{d}/compressed.npz", x_train=xt, y_train=yt.astype(np.int64), x_test=xs, y_test=ys)
save_file({"images": xt, "labels": yt, "test_images": xs, "test_labels": ys}, f"{d}/data.safetensors")
# Colour: a disc of one colour per image, 16x16, NHWC uint8 and the same as NCHW float32 / 255.
c = np.zeros((1200, 16, 16, 3), np.uint8)
yy, xx = np.mgrid[0:16, 0:16]
for i in range(1200):
    cy, cx = rng.integers(4, 12, 2)
    c[i, (yy - cy) ** 2 + (xx - cx) ** 2 < 12, i % 3] = 255
np.save(f"{d}/colour.npy", c)
np.save(f"{d}/colour_nchw.npy", (c.transpose(0, 3, 1, 2) / 255).astype(np.float32))
# Bad inputs.
b = f"{d}/bad"; os.makedirs(b)
np.save(f"{b}/bigendian.npy", (xt / 255).astype(">f4"))
np.save(f"{b}/fortran.npy", np.asfortranarray(xt))
np.save(f"{b}/object.npy", np.array([[1], "x"], dtype=object), allow_pickle=True)
np.save(f"{b}/int16.npy", xt.astype(np.int16))
np.save(f"{b}/rank2.npy", xt.reshape(1000, 784))
np.save(f"{b}/zero.npy", xt[:0])
np.save(f"{b}/outside.npy", np.where(np.arange(1000 * 784).reshape(1000, 28, 28) == 5 * 784 + 28 * 3 + 4, 1.5, xt / 255).astype(np.float32))
np.save(f"{b}/ambiguous.npy", np.zeros((10, 3, 8, 3), np.uint8))
np.save(f"{b}/small.npy", xt[:, :14, :14].copy())
with open(f"{b}/truncated.npy", "wb") as f: f.write(open(f"{d}/train.npy", "rb").read()[:-100])
np.savez(f"{b}/nokeras.npz", a=xt, b=xs)
np.savez(f"{b}/labels.npz", x_train=xt, y_train=yt[:10])
save_file({"pixels": xt}, f"{b}/noimages.safetensors")
EOF
[ -f "$tmp/train.npy" ] || { bad "numpy could not write the data"; summary own-data; exit 1; }

opts=(--epochs 2 --hidden 64 --latent 4 --batch-size 100 --seed 3)
same() {  # same NAME A B: the model tensors of two checkpoints are bit-identical
  if compare "$2" "$3" 0 > "$tmp/cmp.log" 2>&1; then ok "$1: $(cut -d'(' -f1 "$tmp/cmp.log")"
  else bad "$1: $(cat "$tmp/cmp.log")"; fi
}

# Each format trains, evaluates and samples; MNIST-format data gives checkpoints bit-identical
# to the same images as IDX files.
"$bin" train --data "$tmp/idx" "${opts[@]}" --out "$tmp/r-idx" > "$tmp/idx.log" 2>&1 || bad "train on IDX: $(tail -1 "$tmp/idx.log")"
for case in "npy:$tmp/train.npy --test-data $tmp/test.npy" "npz:$tmp/keras.npz" "npz-compressed:$tmp/compressed.npz" \
            "safetensors:$tmp/data.safetensors"; do
  name=${case%%:*}; read -r -a data <<< "${case#*:}"
  if "$bin" train --data "${data[@]}" "${opts[@]}" --out "$tmp/r-$name" > "$tmp/$name.log" 2>&1; then
    same "$name trains bit-identically to IDX" "$tmp/r-idx/checkpoints/latest.safetensors" "$tmp/r-$name/checkpoints/latest.safetensors"
  else bad "train on $name: $(tail -1 "$tmp/$name.log")"; continue; fi
  ck=$tmp/r-$name/checkpoints/latest.safetensors
  if "$bin" eval --checkpoint "$ck" > "$tmp/$name.eval" 2>&1 && grep -q '"test_count": 200' "$tmp/$name.eval"; then ok "$name: eval on its 200 test images"
  else bad "$name: eval: $(tail -1 "$tmp/$name.eval")"; fi
  if "$bin" sample --checkpoint "$ck" --out "$tmp/$name.png" > /dev/null 2>&1 && [ -s "$tmp/$name.png" ]; then ok "$name: sample"
  else bad "$name: sample"; fi
done

# A file without a test split: --test-fraction holds out a subset chosen from --seed, the same
# on 2 ranks; resume continues it.
"$bin" train --data "$tmp/train.npy" "${opts[@]}" --epochs 1 --test-fraction 0.2 --out "$tmp/r-split" > "$tmp/split.log" 2>&1
if grep -q "800 train / 200 test images" "$tmp/split.log"; then ok "--test-fraction 0.2 holds out 200 of 1000"
else bad "--test-fraction: $(grep -m1 'training' "$tmp/split.log")"; fi
"$bin" train --resume --out "$tmp/r-split" --epochs 2 > "$tmp/resume.log" 2>&1 && grep -q "resumed from" "$tmp/resume.log" \
  && ok "resume of a held-out run" || bad "resume: $(tail -1 "$tmp/resume.log")"
run_mpi 2 "$bin" train --data "$tmp/train.npy" "${opts[@]}" --test-fraction 0.2 --deterministic --out "$tmp/r-split2" > "$tmp/split2.log" 2>&1
"$bin" train --data "$tmp/train.npy" "${opts[@]}" --test-fraction 0.2 --deterministic --out "$tmp/r-split1" > "$tmp/split1.log" 2>&1
n1=$(grep -o '"test_nelbo": *[^,]*' "$tmp/r-split1/metrics.jsonl" 2>/dev/null | tail -1)
n2=$(grep -o '"test_nelbo": *[^,]*' "$tmp/r-split2/metrics.jsonl" 2>/dev/null | tail -1)
if [ -n "$n1" ] && [ "$n1" = "$n2" ]; then ok "1 and 2 ranks hold out the same test images (--deterministic: $n1 on both)"
else bad "held-out split on 2 ranks: '$n1' vs '$n2': $(tail -1 "$tmp/split2.log")"; fi

# Colour: NHWC uint8 and NCHW float32 are the same images; every picture is RGB.
for name in colour colour_nchw; do
  "$bin" train --data "$tmp/$name.npy" "${opts[@]}" --out "$tmp/r-$name" > "$tmp/$name.log" 2>&1 || bad "train $name: $(tail -1 "$tmp/$name.log")"
done
same "colour: uint8 NHWC and float32 NCHW train identically" "$tmp/r-colour/checkpoints/latest.safetensors" "$tmp/r-colour_nchw/checkpoints/latest.safetensors"
ck=$tmp/r-colour/checkpoints/latest.safetensors
"$bin" sample --checkpoint "$ck" --out "$tmp/c-sample.png" --tensors "$tmp/c-sample.safetensors" > /dev/null 2>&1 || bad "colour sample"
for command in reconstruct interpolate traverse manifold; do
  "$bin" $command --checkpoint "$ck" --out "$tmp/c-$command.png" > /dev/null 2>&1 || bad "colour $command"
done
"$bin" eval --checkpoint "$ck" > "$tmp/c-eval" 2>&1 && ok "colour eval" || bad "colour eval: $(tail -1 "$tmp/c-eval")"
"$bin" encode --checkpoint "$ck" --out "$tmp/c-encode.safetensors" > /dev/null 2>&1 && ok "colour encode" || bad "colour encode"
if "$python" - "$tmp" > "$tmp/modes.log" 2>&1 <<'EOF'
import glob, sys
from PIL import Image
d = sys.argv[1]
files = glob.glob(f"{d}/c-*.png") + glob.glob(f"{d}/r-colour/samples/*.png") + glob.glob(f"{d}/r-colour/reconstructions/*.png")
modes = {f: Image.open(f).mode for f in files}
print(f"{len(files)} PNGs, modes {sorted(set(modes.values()))}")
sys.exit(0 if len(files) >= 9 and set(modes.values()) == {"RGB"} else 1)
EOF
then ok "colour run: $(cat "$tmp/modes.log")"; else bad "colour PNGs: $(cat "$tmp/modes.log")"; fi
if "$python" - "$ck" "$tmp/c-sample.safetensors" > "$tmp/decode.log" 2>&1 <<'EOF'
import sys
import numpy as np
import vae_dist
from safetensors.numpy import load_file
ref = load_file(sys.argv[2])                    # latents and images from `vae-dist sample --tensors`
images = vae_dist.load_numpy(sys.argv[1]).decode(ref["latents"]).reshape(ref["images"].shape)
err = float(np.abs(images - ref["images"]).max())
print(f"vae_dist's numpy decoder vs vae-dist on {len(images)} colour latents {ref['images'].shape}: max |difference| = {err:.2g}")
sys.exit(0 if err <= 1e-5 else 1)
EOF
then ok "colour: $(cat "$tmp/decode.log")"; else bad "the numpy decoder on colour: $(cat "$tmp/decode.log")"; fi

# Bad input: one line naming the file and what to do, exit code 1, no checkpoint written.
refused() {  # refused NAME PATTERN ARGS...: exit code 1, one line on stderr matching PATTERN
  local name=$1 pattern=$2; shift 2
  rm -rf "$tmp/r-bad"
  "$bin" train "${opts[@]}" --epochs 1 --out "$tmp/r-bad" "$@" > "$tmp/bad.out" 2> "$tmp/bad.err"; local code=$?
  local lines; lines=$(wc -l < "$tmp/bad.err")
  if [ "$code" -eq 1 ] && [ "$lines" -eq 1 ] && grep -q -- "$pattern" "$tmp/bad.err" && [ ! -e "$tmp/r-bad/checkpoints" ]; then
    ok "$name: $(cat "$tmp/bad.err")"
  else bad "$name: exit $code, $lines lines: $(head -c 400 "$tmp/bad.err")"; fi
}
b=$tmp/bad
refused "big-endian" "$b/bigendian.npy: is a big-endian array.*newbyteorder" --data "$b/bigendian.npy"
refused "Fortran order" "$b/fortran.npy: is a Fortran-order.*ascontiguousarray" --data "$b/fortran.npy"
refused "object array" "$b/object.npy: is an array of Python objects.*never unpickles" --data "$b/object.npy"
refused "unsupported dtype" "$b/int16.npy: holds images of int16" --data "$b/int16.npy"
refused "rank 2" "$b/rank2.npy: holds an array of rank 2" --data "$b/rank2.npy"
refused "zero images" "$b/zero.npy: holds no images" --data "$b/zero.npy"
refused "floats outside [0, 1]" "$b/outside.npy: value 1.5 at index \[5, 3, 4\] is outside \[0, 1\]" --data "$b/outside.npy"
"$bin" train --data "$b/outside.npy" "${opts[@]}" --epochs 1 --likelihood gaussian --out "$tmp/r-gauss" > "$tmp/gauss.log" 2>&1 \
  && ok "the same floats train with --likelihood gaussian" || bad "gaussian on floats outside [0, 1]: $(tail -1 "$tmp/gauss.log")"
refused "ambiguous layout" "$b/ambiguous.npy: .*pass --layout nhwc or --layout nchw" --data "$b/ambiguous.npy"
refused "truncated" "$b/truncated.npy: .*truncated" --data "$b/truncated.npy"
refused "test images of another size" "$b/small.npy: test images are 14x14 but training images are 28x28" --data "$tmp/train.npy" --test-data "$b/small.npy"
refused "npz without x_train" "$b/nokeras.npz: holds the arrays a.npy, b.npy but no x_train" --data "$b/nokeras.npz"
refused "labels of another count" "$b/labels.npz: y_train has shape \[10\] but there are 1000 images" --data "$b/labels.npz"
refused "safetensors without images" "$b/noimages.safetensors: has no tensor named 'images'" --data "$b/noimages.safetensors"
refused "missing file" "$b/none.npy: not found" --data "$b/none.npy"
refused "--layout" "--layout 'hwc': expected nhwc or nchw" --data "$tmp/train.npy" --layout hwc
refused "--test-fraction" "--test-fraction must be between 0 and 1" --data "$tmp/train.npy" --test-fraction 1
refused "--test-data with an IDX folder" "--test-data $tmp/test.npy gives the test set of an array file or image folder; --data $tmp/idx has its own test split" \
  --data "$tmp/idx" --test-data "$tmp/test.npy"

# Larger than memory: a 2.16 GB uint8 .npy (2,760,000 images of 28x28) trains one epoch with a
# small model in bounded memory on 1 and 2 ranks.
if [ "${OWN_DATA_LARGE:-1}" != 0 ]; then
  "$python" - "$tmp/big.npy" <<'EOF'
import sys, numpy as np
m = np.lib.format.open_memmap(sys.argv[1], mode="w+", dtype=np.uint8, shape=(2_760_000, 28, 28))
block = (np.arange(60_000 * 784, dtype=np.uint32) * 2654435761 >> 24).astype(np.uint8).reshape(60_000, 28, 28)
for k in range(46): m[k * 60_000:(k + 1) * 60_000] = block
m.flush()
EOF
  big=(--data "$tmp/big.npy" --epochs 1 --hidden 32 --latent 4 --batch-size 256)
  /usr/bin/time -v -o "$tmp/time1" "$bin" train "${big[@]}" --out "$tmp/r-big1" > "$tmp/big1.log" 2>&1
  peak=$(awk -F': ' '/Maximum resident set size/ { print int($2 / 1024) }' "$tmp/time1")
  if grep -q "^epoch 1/1" "$tmp/big1.log" && [ "${peak:-9999}" -lt 1024 ]; then ok "2.16 GB .npy, 1 rank: one epoch, peak resident ${peak} MB"
  else bad "2.16 GB .npy, 1 rank: peak ${peak:-?} MB: $(tail -1 "$tmp/big1.log")"; fi
  mpi_setup 2
  mpirun -n 2 "${MPIRUN_FLAGS[@]}" sh -c '/usr/bin/time -v -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' "$tmp/time2" "$bin" train "${big[@]}" --out "$tmp/r-big2" > "$tmp/big2.log" 2>&1
  peaks=$(for f in "$tmp"/time2.*; do awk -F': ' '/Maximum resident set size/ { print int($2 / 1024) }' "$f"; done | tr '\n' ' ')
  worst=$(echo $peaks | tr ' ' '\n' | sort -n | tail -1)
  if grep -q "^epoch 1/1" "$tmp/big2.log" && [ "$(echo $peaks | wc -w)" -eq 2 ] && [ "${worst:-9999}" -lt 1024 ]; then ok "2.16 GB .npy, 2 ranks: one epoch, peak resident per rank ${peaks}MB"
  else bad "2.16 GB .npy, 2 ranks: peaks ${peaks:-?}: $(tail -1 "$tmp/big2.log")"; fi
fi

summary own-data
