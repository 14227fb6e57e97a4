#!/usr/bin/env bash
# Side-by-side training throughput: vae-dist against the PyTorch reference VAE
# (Launch/torch_vae.py): the same architecture 784-400-20, the same loss, Adam 1e-3, global
# batch 128, the same data, the same number of cores (RANKS ranks against RANKS threads).
# Two rounds (seeds 1 and 2), alternating the two sides; each round's figure is the median
# samples/s over epochs 2..EPOCHS (epoch 1 warms up), and the result the median of the rounds.
#
#   bash Launch/compare.sh [BIN] [DATA] [RANKS] [EPOCHS]
#   BIN defaults to .build/release/vae-dist, DATA to /usr/share/datasets/fashion-mnist,
#   RANKS to 1, EPOCHS to 3 (at least 2).
#   PYTHON: a Python with torch and numpy (default .venv-torch/bin/python; see the README).
#   TORCH_ARGS="--compile --fused": PyTorch's strongest CPU configuration instead of eager.
#
#   ARCH=conv bash Launch/compare.sh [BIN] [IMAGES] [THREADS] [EPOCHS]
#   The conv model instead (disentanglement_lib's, as `vae-dist train --arch conv`: 64x64x1
#   input, convolutions 32,32,64,64, dense 256, latent 10, bernoulli), batch 64, Adam 1e-3:
#   vae-dist on `--data dsprites:IMAGES` (one rank, --threads T) against PyTorch eager
#   (Launch/torch_vae.py --arch conv, torch.set_num_threads(T)) on IMAGES dSprites-shaped
#   images, for each T in THREADS (default "1 2"); IMAGES defaults to 2000, EPOCHS to 3. Per T,
#   ROUNDS rounds (default 2) as above, and the ratio vae-dist/PyTorch of their medians.
set -euo pipefail
cd "$(dirname "$0")/.."
. Launch/common.sh
arch=${ARCH:-mlp}
bin=${1:-.build/release/vae-dist}
if [ "$arch" = conv ]; then
  images=${2:-2000}
  thread_counts=${3:-1 2}
else
  data=${2:-/usr/share/datasets/fashion-mnist}
  ranks=${3:-1}
fi
epochs=${4:-3}
py=${PYTHON:-.venv-torch/bin/python}
[ -x "$bin" ] || { echo "compare: no binary at $bin (bash Launch/setup.sh first)"; exit 1; }
case $arch in
  mlp) [ -d "$data" ] || { echo "compare: no data folder $data"; exit 1; } ;;
  conv) [[ "$images" =~ ^[0-9]+$ ]] && [ "$images" -ge 640 ] || { echo "compare: IMAGES must be a number of images, at least 640 (got $images)"; exit 1; } ;;
  *) echo "compare: ARCH must be mlp or conv (got $arch)"; exit 1 ;;
esac
[ "$epochs" -ge 2 ] || { echo "compare: EPOCHS must be at least 2 (epoch 1 is warm-up; got $epochs)"; exit 1; }
"$py" -c "import torch, numpy" 2>/dev/null ||
  { echo "compare: $py cannot import torch and numpy (python3 -m venv .venv-torch && .venv-torch/bin/pip install torch numpy safetensors)"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export VAE_DIST_PROGRESS=0
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print 0} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
torch_version=$("$py" -c 'import torch; print(torch.__version__)')

if [ "$arch" = conv ]; then
  for threads in $thread_counts; do
    ours=() theirs=()
    for round in $(seq 1 "${ROUNDS:-2}"); do
      rm -rf "$tmp/run"
      "$bin" train --data "dsprites:$images" --arch conv --latent 10 --epochs "$epochs" --batch-size 64 --lr 1e-3 \
        --seed "$round" --threads "$threads" --out "$tmp/run" > "$tmp/ours.log" 2>&1 ||
        { echo "compare: vae-dist failed: $(tail -1 "$tmp/ours.log")"; exit 1; }
      ours+=("$(tail -n +2 "$tmp/run/metrics.jsonl" | sed -n 's/.*"samples_per_second": *\([0-9.e+]*\).*/\1/p' | median)")
      # shellcheck disable=SC2086
      "$py" Launch/torch_vae.py --arch conv --data "sprites:$images" --latent 10 --epochs "$epochs" --batch 64 \
        --threads "$threads" --seed "$round" ${TORCH_ARGS:-} > "$tmp/theirs.log" 2>&1 ||
        { echo "compare: PyTorch failed: $(tail -1 "$tmp/theirs.log")"; exit 1; }
      theirs+=("$(tail -n +2 "$tmp/theirs.log" | sed -n 's/.*samples_per_s \([0-9.]*\).*/\1/p' | median)")
    done
    o=$(printf '%s\n' "${ours[@]}" | median); t=$(printf '%s\n' "${theirs[@]}" | median)
    printf 'conv 64x64, batch 64, %s thread(s): vae-dist %s samples/s; PyTorch %s%s %s samples/s; ' \
      "$threads" "$o" "$torch_version" "${TORCH_ARGS:+ $TORCH_ARGS}" "$t"
    awk -v o="$o" -v t="$t" 'BEGIN { if (t > 0) printf "ratio vae-dist/PyTorch: %.2f\n", o / t; else print "ratio: n/a" }'
  done
  exit 0
fi

# One thread per rank, should the binary thread by default: RANKS cores on each side.
one_thread=()
[[ "$("$bin" train --help 2>/dev/null)" == *--threads* ]] && one_thread=(--threads 1)
ours=() theirs=()
for round in 1 2; do
  rm -rf "$tmp/run"
  train=("$bin" train --data "$data" --epochs "$epochs" --batch-size 128 --hidden 400 --latent 20 --lr 1e-3
         --seed "$round" --out "$tmp/run" "${one_thread[@]}")
  if [ "$ranks" -gt 1 ]; then run_mpi "$ranks" "${train[@]}" > "$tmp/ours.log" 2>&1
  else "${train[@]}" > "$tmp/ours.log" 2>&1; fi ||
    { echo "compare: vae-dist failed: $(tail -1 "$tmp/ours.log")"; exit 1; }
  ours+=("$(tail -n +2 "$tmp/run/metrics.jsonl" | sed -n 's/.*"samples_per_second": *\([0-9.e+]*\).*/\1/p' | median)")
  # shellcheck disable=SC2086
  "$py" Launch/torch_vae.py --data "$data" --epochs "$epochs" --batch 128 --threads "$ranks" --seed "$round" \
    ${TORCH_ARGS:-} > "$tmp/theirs.log" 2>&1 || { echo "compare: PyTorch failed: $(tail -1 "$tmp/theirs.log")"; exit 1; }
  theirs+=("$(tail -n +2 "$tmp/theirs.log" | sed -n 's/.*samples_per_s \([0-9.]*\).*/\1/p' | median)")
done
o=$(printf '%s\n' "${ours[@]}" | median); t=$(printf '%s\n' "${theirs[@]}" | median)
echo "vae-dist ($ranks ranks): $o samples/s; PyTorch $torch_version ($ranks threads${TORCH_ARGS:+ $TORCH_ARGS}): $t samples/s"
awk -v o="$o" -v t="$t" 'BEGIN { if (t > 0) printf "ratio vae-dist/PyTorch: %.2f\n", o / t; else print "ratio: n/a" }'
