#!/usr/bin/env bash
# Image folders (issue 22): --data FOLDER of PNG and JPEG files, class folders as labels, decoded
# once into a cache ($XDG_CACHE_HOME/vae-dist/images/<hash>/) that later runs and resumes reuse;
# --image-size; and every bad input refused with one line naming the file, exit code 1. The
# images are written here with Pillow in every PNG mode vae-dist reads, and as baseline and
# progressive JPEGs; the expected pixels are computed with numpy from the arrays written.
set -uo pipefail
. "$(dirname "$0")/lib.sh" image-folder
use_venv pillow:PIL || abort "cannot set up .venv with Pillow"  # $python
export VAE_DIST_PROGRESS=0
export XDG_CACHE_HOME=$tmp/cache

# classes/: 3 classes x 100 PNGs of 28x28 (created out of sorted order; "Zebra" sorts first), in
# the modes 1, L, I;16, LA, RGB, RGBA, P, and a README.txt; expected.npy / labels.npy: the pixels
# vae-dist should decode (gray replicated to RGB, alpha composited on black, 16 bits to 8).
# jpeg/: baseline and progressive JPEGs, gray and colour; sizes/: PNGs of 40x30 and 36x50.
"$python" - "$tmp" <<'EOF2'
import os, sys
import numpy as np
from PIL import Image
d = sys.argv[1]
rng = np.random.default_rng(5)
yy, xx = np.mgrid[0:28, 0:28]
modes = ["1", "L", "I;16", "LA", "RGB", "RGBA", "P"]
expected, labels = {}, {}
classes = ["mango", "apple", "Zebra"]                    # written in this order
for name in classes:
    os.makedirs(f"{d}/classes/{name}")
for i in range(300):
    name = classes[i % 3]
    cy, cx, r = rng.integers(8, 20, 3)
    disc = ((yy - cy) ** 2 + (xx - cx) ** 2) < (r % 6 + 3) ** 2
    rgb = (disc[..., None] * rng.integers(40, 256, 3) + (~disc)[..., None] * rng.integers(0, 40, 3)).astype(np.uint8)
    gray = rgb[..., 0]
    mode = modes[i % len(modes)]
    path = f"{d}/classes/{name}/{i:03d}_{mode.replace(';', '')}.png"
    if mode == "1":
        Image.fromarray(disc).save(path); ref = np.repeat((disc * 255).astype(np.uint8)[..., None], 3, 2)
    elif mode == "L":
        Image.fromarray(gray, "L").save(path); ref = np.repeat(gray[..., None], 3, 2)
    elif mode == "I;16":
        Image.fromarray(gray.astype(np.uint16) * 257).save(path); ref = np.repeat(gray[..., None], 3, 2)
    elif mode == "LA":
        a = rng.integers(0, 256, (28, 28)).astype(np.uint8)
        Image.fromarray(np.dstack([gray, a]), "LA").save(path)
        ref = np.repeat(((gray.astype(np.int64) * a + 127) // 255).astype(np.uint8)[..., None], 3, 2)
    elif mode == "RGB":
        Image.fromarray(rgb, "RGB").save(path); ref = rgb
    elif mode == "RGBA":
        a = rng.integers(0, 256, (28, 28)).astype(np.uint8)
        Image.fromarray(np.dstack([rgb, a]), "RGBA").save(path)
        ref = ((rgb.astype(np.int64) * a[..., None] + 127) // 255).astype(np.uint8)
    else:
        palette = rng.integers(0, 256, (16, 3)).astype(np.uint8)
        index = (disc * 5 + (xx % 3)).astype(np.uint8)
        im = Image.fromarray(index, "P"); im.putpalette(palette.flatten().tolist()); im.save(path)
        ref = palette[index]
    rel = path[len(f"{d}/classes/"):]
    expected[rel], labels[rel] = ref, sorted(classes).index(name)
open(f"{d}/classes/README.txt", "w").write("three classes of discs\n")
order = sorted(expected, key=lambda s: s.encode())
np.save(f"{d}/expected.npy", np.stack([expected[k] for k in order]))
np.save(f"{d}/labels.npy", np.array([labels[k] for k in order], np.uint8))
open(f"{d}/modes.txt", "w").write(" ".join(sorted(set(Image.open(f"{d}/classes/" + k).mode for k in order))))
# JPEGs: gray and colour, baseline and progressive (a mixed folder: all read as RGB).
os.makedirs(f"{d}/jpeg")
for i in range(40):
    rgb = np.clip(rng.normal(128, 60, (24, 24, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(rgb) if i % 2 else Image.fromarray(rgb[..., 1], "L")
    im.save(f"{d}/jpeg/{i:02d}.jpg", quality=90, progressive=bool(i % 4 >= 2))
# Sizes to resize: 40x30 and 36x50 colour PNGs.
os.makedirs(f"{d}/sizes")
for i in range(20):
    h, w = (40, 30) if i % 2 else (36, 50)
    Image.fromarray(rng.integers(0, 256, (h, w, 3)).astype(np.uint8)).save(f"{d}/sizes/{i:02d}.png")
# Bad folders.
b = f"{d}/bad"
os.makedirs(f"{b}/size"); os.makedirs(f"{b}/corrupt"); os.makedirs(f"{b}/truncated"); os.makedirs(f"{b}/truncjpeg")
os.makedirs(f"{b}/none"); os.makedirs(f"{b}/emptyclass/cat"); os.makedirs(f"{b}/emptyclass/dog")
for f in ("size", "corrupt", "truncated", "truncjpeg"):
    for i in range(3): Image.fromarray(np.full((28, 28), 9 * i, np.uint8)).save(f"{b}/{f}/{i}.png")
Image.fromarray(np.zeros((28, 30), np.uint8)).save(f"{b}/size/3.png")
png = open(f"{b}/size/0.png", "rb").read()
open(f"{b}/corrupt/3.png", "wb").write(png[:40] + bytes(range(256)) * 2)
open(f"{b}/truncated/3.png", "wb").write(png[:len(png) // 2])
Image.fromarray(rng.integers(0, 256, (28, 28)).astype(np.uint8)).save(f"{b}/truncjpeg/3.jpg", quality=95)
j = open(f"{b}/truncjpeg/3.jpg", "rb").read(); open(f"{b}/truncjpeg/3.jpg", "wb").write(j[:len(j) * 4 // 5])
open(f"{b}/none/README.txt", "w").write("no images yet\n")
Image.fromarray(np.zeros((28, 28), np.uint8)).save(f"{b}/emptyclass/cat/0.png")
open(f"{b}/emptyclass/dog/notes.txt", "w").write("\n")
EOF2
[ -f "$tmp/expected.npy" ] || { bad "Pillow could not write the images"; summary image-folder; exit 1; }
[ "$(cat "$tmp/modes.txt")" = "1 I;16 L LA P RGB RGBA" ] && ok "Pillow wrote PNGs in the modes $(cat "$tmp/modes.txt")" \
  || bad "PNG modes written: $(cat "$tmp/modes.txt")"

opts=(--epochs 2 --hidden 64 --latent 4 --batch-size 50 --seed 3)
cache_of() { grep -o "into the cache [^ ]*\|from the cache [^ ]*" "$1" | tail -1 | awk '{print $NF}'; }

# A class folder trains, evaluates and samples; its cache holds the expected pixels and labels.
"$bin" train --data "$tmp/classes" "${opts[@]}" --out "$tmp/r-png" > "$tmp/png.log" 2>&1 || bad "train on a PNG folder: $(tail -1 "$tmp/png.log")"
if grep -q "decoded 300 images of $tmp/classes (28x28x3) in .* s on .* threads into the cache $XDG_CACHE_HOME/vae-dist/images/" "$tmp/png.log"; then
  ok "decoded: $(grep -o 'decoded.*threads' "$tmp/png.log")"
else bad "no decode line: $(grep vae-dist: "$tmp/png.log" | head -3)"; fi
grep -q "skipped 1 non-image file in $tmp/classes (e.g. README.txt)" "$tmp/png.log" && ok "README.txt skipped and counted" \
  || bad "skipped note: $(grep -i skipped "$tmp/png.log")"
cache=$(cache_of "$tmp/png.log")
if "$python" - "$tmp" "$cache" > "$tmp/pixels.log" 2>&1 <<'EOF2'
import sys, numpy as np
d, cache = sys.argv[1:]
got, want = np.load(f"{cache}/images.npy"), np.load(f"{d}/expected.npy")
labels, want_labels = np.load(f"{cache}/labels.npy"), np.load(f"{d}/labels.npy")
same = got.shape == want.shape and (got == want).all()
print(f"cache {got.dtype} {list(got.shape)} equals the numpy reference of 7 PNG modes: {same}; labels {np.bincount(labels).tolist()} follow sorted class names: {(labels == want_labels).all()}; {open(cache + '/classes.txt').read().split()}")
sys.exit(0 if same and (labels == want_labels).all() and labels[0] == 0 else 1)
EOF2
then ok "$(cat "$tmp/pixels.log")"; else bad "cache pixels: $(cat "$tmp/pixels.log")"; fi
ck=$tmp/r-png/checkpoints/latest.safetensors
"$bin" eval --checkpoint "$ck" > "$tmp/png.eval" 2>&1 && grep -q '"test_count": 30' "$tmp/png.eval" && ok "eval on its 30 held-out images" \
  || bad "eval: $(tail -1 "$tmp/png.eval")"
"$bin" sample --checkpoint "$ck" --out "$tmp/png-sample.png" > /dev/null 2>&1 && [ -s "$tmp/png-sample.png" ] && ok "sample" || bad "sample"

# PNG is lossless: the same images as a .npy train a bit-identical checkpoint.
"$bin" train --data "$tmp/expected.npy" "${opts[@]}" --out "$tmp/r-npy" > "$tmp/npy.log" 2>&1 || bad "train on the .npy: $(tail -1 "$tmp/npy.log")"
if compare "$tmp/r-png" "$tmp/r-npy" 0 > "$tmp/cmp.log" 2>&1; then ok "PNG folder and .npy train bit-identically: $(cut -d'(' -f1 "$tmp/cmp.log")"
else bad "PNG folder vs .npy: $(cat "$tmp/cmp.log")"; fi

# The cache is reused (resume, a second run) and rebuilt when the folder changes.
"$bin" train --resume --out "$tmp/r-png" --epochs 3 > "$tmp/resume.log" 2>&1
if grep -q "resumed from" "$tmp/resume.log" && grep -q "read the 300 images of $tmp/classes from the cache $cache (no decoding)" "$tmp/resume.log" \
   && ! grep -q "decoded" "$tmp/resume.log"; then ok "resume reads the cache: $(grep -o 'read the .*' "$tmp/resume.log")"
else bad "resume: $(grep vae-dist: "$tmp/resume.log" | head -3)"; fi
cp "$(ls "$tmp/classes/apple/"*.png | head -1)" "$tmp/classes/apple/999_copy.png"
"$bin" train --data "$tmp/classes" "${opts[@]}" --epochs 1 --out "$tmp/r-changed" > "$tmp/changed.log" 2>&1
new=$(cache_of "$tmp/changed.log")
if grep -q "decoded 301 images" "$tmp/changed.log" && [ -n "$new" ] && [ "$new" != "$cache" ]; then ok "a changed folder is decoded again into ${new##*/}"
else bad "changed folder: $(grep vae-dist: "$tmp/changed.log" | head -3)"; fi
rm "$tmp/classes/apple/999_copy.png"
leftover=$(find "$XDG_CACHE_HOME" -name '*.tmp-*' | wc -l)
[ "$leftover" -eq 0 ] && ok "no temporary cache folders left" || bad "$leftover temporary cache folders left"

# A decode killed before it completes leaves no cache entry, only its temporary folder, which the
# next decode removes (VAE_DIST_FAULT=stall-decode pauses before the entry is completed).
kc=$tmp/cache-kill/vae-dist/images
XDG_CACHE_HOME=$tmp/cache-kill VAE_DIST_FAULT=stall-decode:60 "$bin" train --data "$tmp/classes" "${opts[@]}" --out "$tmp/r-kill" > "$tmp/kill.log" 2>&1 &
pid=$!
for _ in $(seq 300); do compgen -G "$kc/*.tmp-*/images.npy" > /dev/null && break; sleep 0.1; done
sleep 1; kill -9 "$pid"; wait "$pid" 2>/dev/null
complete=$(ls "$kc" 2>/dev/null | grep -vc '\.tmp-'); temporary=$(ls "$kc" 2>/dev/null | grep -c '\.tmp-')
XDG_CACHE_HOME=$tmp/cache-kill "$bin" train --data "$tmp/classes" "${opts[@]}" --epochs 1 --out "$tmp/r-kill2" > "$tmp/kill2.log" 2>&1
if [ "$complete" -eq 0 ] && [ "$temporary" -eq 1 ] && grep -q "decoded 300 images" "$tmp/kill2.log" && ! ls "$kc" | grep -q '\.tmp-'; then
  ok "a killed decode left no cache entry (1 temporary folder), the next run decoded and removed it"
else bad "killed decode: $complete entries, $temporary temporary; then: $(grep vae-dist: "$tmp/kill2.log" | tail -2) $(ls "$kc")"; fi

# Two ranks decode at once into an empty cache: one complete entry, and the same held-out split
# as one rank (--deterministic: the same test NELBO).
XDG_CACHE_HOME=$tmp/cache-mpi run_mpi 2 "$bin" train --data "$tmp/classes" "${opts[@]}" --batch-size 60 --deterministic --out "$tmp/r-mpi2" > "$tmp/mpi2.log" 2>&1
"$bin" train --data "$tmp/classes" "${opts[@]}" --batch-size 60 --deterministic --out "$tmp/r-mpi1" > "$tmp/mpi1.log" 2>&1
n1=$(grep -o '"test_nelbo": *[^,]*' "$tmp/r-mpi1/metrics.jsonl" 2>/dev/null | tail -1)
n2=$(grep -o '"test_nelbo": *[^,]*' "$tmp/r-mpi2/metrics.jsonl" 2>/dev/null | tail -1)
entries=$(ls "$tmp/cache-mpi/vae-dist/images" 2>/dev/null | tr '\n' ' ')
if [ -n "$n1" ] && [ "$n1" = "$n2" ] && [ "$(echo $entries | wc -w)" -eq 1 ] && [[ "$entries" != *tmp* ]]; then
  ok "2 ranks decoding at once: one cache entry ($entries), the same run as 1 rank ($n1)"
else bad "2 ranks: '$n1' vs '$n2', cache: $entries: $(tail -1 "$tmp/mpi2.log")"; fi

# --test-data may be an image folder: all its images are the test set.
"$bin" train --data "$tmp/expected.npy" --test-data "$tmp/classes" "${opts[@]}" --epochs 1 --out "$tmp/r-testdata" > "$tmp/testdata.log" 2>&1
grep -q "300 train / 300 test images" "$tmp/testdata.log" && ok "--test-data FOLDER: 300 train / 300 test images" \
  || bad "--test-data FOLDER: $(grep -m1 'training\|error' "$tmp/testdata.log")"

# JPEG, baseline and progressive, gray and colour: vae-dist's pixels against Pillow's (both
# libjpeg-turbo, so equal or within a rounding).
"$bin" train --data "$tmp/jpeg" "${opts[@]}" --batch-size 10 --epochs 1 --out "$tmp/r-jpeg" > "$tmp/jpeg.log" 2>&1 || bad "train on JPEGs: $(tail -1 "$tmp/jpeg.log")"
if "$python" - "$tmp" "$(cache_of "$tmp/jpeg.log")" > "$tmp/jpeg.cmp" 2>&1 <<'EOF2'
import sys, glob, numpy as np
from PIL import Image
d, cache = sys.argv[1:]
files = sorted(glob.glob(f"{d}/jpeg/*.jpg"))
want = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
got = np.load(f"{cache}/images.npy")
kinds = sorted(set(("progressive" if Image.open(f).info.get("progressive") else "baseline") + " " + Image.open(f).mode for f in files))
err = int(np.abs(got.astype(int) - want).max()) if got.shape == want.shape else 999
print(f"{len(files)} JPEGs ({', '.join(kinds)}) {list(got.shape)}: max |vae-dist - Pillow| = {err}")
sys.exit(0 if err <= 1 else 1)
EOF2
then ok "$(cat "$tmp/jpeg.cmp")"; else bad "JPEG pixels: $(cat "$tmp/jpeg.cmp")"; fi

# --image-size resizes images of several sizes: one image against numpy's centre crop + area average.
"$bin" train --data "$tmp/sizes" "${opts[@]}" --batch-size 10 --epochs 1 --image-size 20x24 --out "$tmp/r-sizes" > "$tmp/sizes.log" 2>&1 \
  || bad "--image-size: $(tail -1 "$tmp/sizes.log")"
if "$python" - "$tmp" "$(cache_of "$tmp/sizes.log")" > "$tmp/resize.log" 2>&1 <<'EOF2'
import sys, numpy as np
from PIL import Image
d, cache = sys.argv[1:]
got = np.load(f"{cache}/images.npy")
def weights(n, m):   # [n, m] overlaps of n output cells with m source pixels, in units of 1/n
    return np.array([[max(0, min((o + 1) * m, (s + 1) * n) - max(o * m, s * n)) for s in range(m)] for o in range(n)], np.int64)
def reference(src, H, W):
    h, w, _ = src.shape
    if w * H > h * W: ch, cw = h, min(w, (2 * h * W + H) // (2 * H))
    elif w * H < h * W: ch, cw = min(h, (2 * w * H + W) // (2 * W)), w
    else: ch, cw = h, w
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    crop = src[y0:y0 + ch, x0:x0 + cw].astype(np.int64)
    total = ch * cw
    s = np.einsum("yr,rsc,xs->yxc", weights(H, ch), crop, weights(W, cw))
    return ((2 * s + total) // (2 * total)).astype(np.uint8)
checks = []
for i in (0, 1):     # 36x50 (columns cut) and 40x30 (rows cut)
    src = np.asarray(Image.open(f"{d}/sizes/{i:02d}.png"))
    checks.append((src.shape[:2], bool((got[i] == reference(src, 20, 24)).all())))
print(f"cache {list(got.shape)}; images {', '.join(f'{a}x{b}' for (a, b), _ in checks)} -> 20x24 equal numpy's centre crop + area average: {[c for _, c in checks]}")
sys.exit(0 if got.shape == (20, 20, 24, 3) and all(c for _, c in checks) else 1)
EOF2
then ok "$(cat "$tmp/resize.log")"; else bad "--image-size pixels: $(cat "$tmp/resize.log")"; fi
"$bin" train --resume --out "$tmp/r-sizes" --epochs 2 --image-size 28x28 > "$tmp/sizes2.log" 2>&1
grep -q -- "--image-size" "$tmp/sizes2.log" && [ ! -e "$tmp/r-sizes/checkpoints/epoch-2.safetensors" ] \
  && ok "--image-size must agree on resume: $(grep -m1 -- '--image-size' "$tmp/sizes2.log")" || bad "resume with another --image-size: $(tail -1 "$tmp/sizes2.log")"

# Bad input: one line naming the file and what to do, exit code 1, no checkpoint written.
refused() {  # refused NAME PATTERN ARGS...
  local name=$1 pattern=$2; shift 2
  rm -rf "$tmp/r-bad"
  "$bin" train "${opts[@]}" --epochs 1 --out "$tmp/r-bad" "$@" > "$tmp/bad.out" 2> "$tmp/bad.err"; local code=$?
  local lines; lines=$(wc -l < "$tmp/bad.err")
  if [ "$code" -eq 1 ] && [ "$lines" -eq 1 ] && grep -q -- "$pattern" "$tmp/bad.err" && [ ! -e "$tmp/r-bad/checkpoints" ]; then
    ok "$name: $(cat "$tmp/bad.err")"
  else bad "$name: exit $code, $lines lines: $(head -c 400 "$tmp/bad.err")"; fi
}
b=$tmp/bad
refused "an image of another size" "$b/size/3.png: is 28x30 but 0.png is 28x28: give images of one size, or pass --image-size HxW" --data "$b/size"
refused "a corrupt PNG" "$b/corrupt/3.png: cannot be decoded as PNG (libpng: .*replace or remove it" --data "$b/corrupt"
refused "a truncated PNG" "$b/truncated/3.png: cannot be decoded as PNG (libpng: .*replace or remove it" --data "$b/truncated"
refused "a truncated JPEG" "$b/truncjpeg/3.jpg: cannot be decoded as JPEG (libjpeg: Premature end of JPEG file).*replace or remove it" --data "$b/truncjpeg"
refused "zero images" "$b/none: holds no PNG or JPEG images" --data "$b/none"
refused "a class folder with no images" "$b/emptyclass/dog: is a class folder with no PNG or JPEG images: add images to it or remove it" --data "$b/emptyclass"
refused "--image-size on an array file" "--image-size 20x20 resizes the images of a folder of PNG and JPEG files; --data $tmp/expected.npy is an array file" \
  --data "$tmp/expected.npy" --image-size 20x20
refused "--image-size syntax" "--image-size '20by20': expected HxW" --data "$tmp/classes" --image-size 20by20
leftover=$(find "$XDG_CACHE_HOME" -name '*.tmp-*' | wc -l)
[ "$leftover" -eq 0 ] && ok "refused decodes leave no temporary cache folders" || bad "$leftover temporary cache folders left after refusals"

summary image-folder
