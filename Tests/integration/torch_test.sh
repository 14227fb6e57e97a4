#!/usr/bin/env bash
# PyTorch consumers (the vae_dist package's torch model, Launch/torch_eval.py): tiny models trained on
# synthetic data (MLPs of both likelihoods, binarized, an autoencoder; conv models (--arch conv)
# of both likelihoods, and a colour one on a [N, 16, 16, 3] .npy) are loaded into PyTorch, whose
# decodes and test losses must equal vae-dist's own (`vae-dist sample --tensors`, `vae-dist eval`)
# to float rounding, and whose state_dict keys are the checkpoint's model tensor names. Also torch_eval.py's command line: errors, --help, a run folder, no work on import.
# Where torch is not importable it prints one line saying so and exits 0.
#   bash Tests/integration/torch_test.sh        (TORCH_PYTHON=... picks the Python; default .venv-torch)
set -uo pipefail
. "$(dirname "$0")/lib.sh" torch

py=""
for candidate in "${TORCH_PYTHON:-}" .venv-torch/bin/python .venv/bin/python; do
  [ -n "$candidate" ] && "$candidate" -c "import torch, numpy, safetensors" 2>/dev/null && { py=$candidate; break; }
done
if [ -z "$py" ]; then
  echo "torch: skipped: no Python here imports torch, numpy and safetensors (tried ${TORCH_PYTHON:+$TORCH_PYTHON, }.venv-torch/bin/python, .venv/bin/python; see README: python3 -m venv .venv-torch)"
  exit 0
fi
use_package "$py" || abort "cannot install ./python (vae_dist) into $py's environment"

export VAE_DIST_PROGRESS=0

# Test images as IDX files (the test set gzipped): vae-dist and PyTorch read the same bytes.
"$py" - "$tmp/data" <<'PY'
import gzip, os, struct, sys
import numpy as np
rng = np.random.default_rng(3)
def images(n):  # bright rectangles on a dark, noisy background: a spread of pixel values
    x = rng.integers(0, 40, (n, 28, 28))
    for i in range(n):
        r, c = rng.integers(0, 20, 2)
        x[i, r:r + rng.integers(4, 9), c:c + rng.integers(4, 9)] += rng.integers(100, 216)
    return x.astype(np.uint8)
os.makedirs(sys.argv[1])
for name, n, op in (("train-images-idx3-ubyte", 64, open), ("t10k-images-idx3-ubyte.gz", 300, gzip.open)):
    with op(os.path.join(sys.argv[1], name), "wb") as f:
        f.write(struct.pack(">IIII", 0x0803, n, 28, 28) + images(n).tobytes())
# Colour images HWC as a .npy (train) and its test set (--test-data: evaluated whole on both sides).
rng = np.random.default_rng(4)
def colour(n):
    x = rng.integers(0, 40, (n, 16, 16, 3))
    for i in range(n):
        r, c = rng.integers(0, 10, 2)
        x[i, r:r + rng.integers(3, 7), c:c + rng.integers(3, 7)] += rng.integers(60, 216, 3)
    return x.astype(np.uint8)
np.save(os.path.join(sys.argv[1], "colour-train.npy"), colour(256))
np.save(os.path.join(sys.argv[1], "colour-test.npy"), colour(120))
PY

# NAME:OPTIONS. Trained on --data synthetic:512 (28x28) and evaluated on $tmp/data, unless the
# options give --data (then evaluated on the checkpoint's --test-data).
conv="--arch conv --hidden 16 --latent 3 --lr 3e-3"
configs=(
  "vae:"
  "gaussian:--likelihood gaussian --hidden 64,32 --latent 5 --beta 4"
  "binarized:--binarize --hidden 48 --latent 3 --seed 9"
  "autoencoder:--autoencoder --hidden 32,16 --latent 4"
  "conv:$conv --conv-channels 4,8"
  "conv-gaussian:$conv --conv-channels 4,8 --likelihood gaussian --beta 2"
  "conv-colour:$conv --data $tmp/data/colour-train.npy --test-data $tmp/data/colour-test.npy --conv-channels 4,8,8"
)
names=()
for entry in "${configs[@]}"; do
  name=${entry%%:*}; options=${entry#*:}
  data=(--data synthetic:512) eval_data=(--data "$tmp/data")
  [[ " $options " == *" --data "* ]] && data=() eval_data=()
  # shellcheck disable=SC2086
  if ! "$bin" train "${data[@]}" --epochs 1 --batch-size 64 $options --out "$tmp/$name" > "$tmp/$name.log" 2>&1; then
    bad "$name: training failed: $(tail -1 "$tmp/$name.log")"; continue
  fi
  "$bin" sample --checkpoint "$tmp/$name/checkpoints/latest.safetensors" --count 40 --seed 5 \
    --out "$tmp/$name.png" --tensors "$tmp/$name.samples.safetensors" > /dev/null &&
  "$bin" eval --checkpoint "$tmp/$name/checkpoints/latest.safetensors" "${eval_data[@]}" > "$tmp/$name.eval.json" ||
    { bad "$name: vae-dist sample/eval failed"; continue; }
  names+=("$name")
done

# The module against vae-dist, in one Python process (importing torch takes seconds).
while IFS= read -r line; do
  case $line in ok:*) ok "${line#ok: }" ;; *) bad "${line#FAILED: }" ;; esac
done < <("$py" - "$tmp" "${names[@]}" <<'PY' 2>&1
import json, sys
import numpy as np, torch
sys.path.insert(0, "Launch")
import torch_eval
import vae_dist
from vae_dist import torch_model
from safetensors.numpy import load_file
tmp, names = sys.argv[1], sys.argv[2:]
idx_images = torch_eval.load_test_images(f"{tmp}/data").reshape(300, -1)
for name in names:
    model = vae_dist.load(f"{tmp}/{name}")            # the run folder form
    test_data = model.config.training.test_data
    images = idx_images if test_data is None else torch_eval.load_test_array(test_data)
    images = images.reshape(len(images), -1)
    n = len(images)
    checkpoint = {k for k in load_file(model.path) if not k.startswith("optimizer.")}
    keys = set(model.state_dict())
    print(f"{'ok' if keys == checkpoint else 'FAILED'}: {name} ({model.architecture}): the torch model's "
          f"{len(keys)} state_dict keys are the checkpoint's model tensor names"
          + ("" if keys == checkpoint else f" (torch only {sorted(keys - checkpoint)}, checkpoint only {sorted(checkpoint - keys)})"))
    ref = load_file(f"{tmp}/{name}.samples.safetensors")
    with torch.no_grad():
        decoded = model.decode(torch.from_numpy(ref["latents"])).numpy().reshape(ref["images"].shape)
    err = float(np.abs(decoded - ref["images"]).max())
    print(f"{'ok' if err <= 1e-5 else 'FAILED'}: {name}: PyTorch decodes {len(decoded)} latents as vae-dist does: max |difference| = {err:.2g}")
    theirs = json.load(open(f"{tmp}/{name}.eval.json"))
    args = torch_eval.parse_arguments(["--checkpoint", "x"])
    training = model.config.training
    with torch.no_grad():
        recon, kl = torch_eval.evaluate(model, images, args, training.seed, training.binarize)
    ours = {"test_nelbo": (recon + kl) / n, "test_kl": kl / n, "test_loss": (recon + model.beta * kl) / n}
    # vae-dist prints 6 significant digits: agreement to 2e-5 relative is float rounding.
    worst = max(abs(ours[k] - theirs[k]) / max(abs(theirs[k]), 1e-3) for k in ours)
    print(f"{'ok' if worst <= 2e-5 else 'FAILED'}: {name}: PyTorch test_nelbo {ours['test_nelbo']:.4f} vs vae-dist eval "
          f"{theirs['test_nelbo']} (loss, kl too; max relative difference {worst:.1e})")

# The PyTorch examples' class takes example_state_dict's renamed weights and decodes the same.
class ExampleVAE(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = torch.nn.Linear(784, 400), torch.nn.Linear(400, 20), torch.nn.Linear(400, 20)
        self.fc3, self.fc4 = torch.nn.Linear(20, 400), torch.nn.Linear(400, 784)
example = ExampleVAE()
example.load_state_dict(torch_model.example_state_dict(f"{tmp}/vae"))
z = torch.randn(8, 20)
with torch.no_grad():
    a = torch.sigmoid(example.fc4(torch.relu(example.fc3(z))))
    b = vae_dist.load(f"{tmp}/vae").decode(z)
print(f"{'ok' if torch.equal(a, b) else 'FAILED'}: example_state_dict loads into the PyTorch examples' VAE (fc1 ... fc4), same decodes")
try:
    torch_model.example_state_dict(f"{tmp}/gaussian")
    print("FAILED: example_state_dict accepted a two-layer model")
except vae_dist.CheckpointError as error:
    print(f"ok: example_state_dict refuses a two-layer model: {str(error).split(': ', 1)[1][:60]}")

# load() on something that is not a vae-dist checkpoint: CheckpointError naming the file.
from safetensors.numpy import save_file
save_file({"w": np.zeros(3, np.float32)}, f"{tmp}/other.safetensors")
open(f"{tmp}/garbage.safetensors", "wb").write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
for path in (f"{tmp}/other.safetensors", f"{tmp}/garbage.safetensors", f"{tmp}/missing"):
    try:
        vae_dist.load(path)
        print(f"FAILED: load({path}) succeeded")
    except vae_dist.CheckpointError as error:
        print(f"{'ok' if path in str(error) else 'FAILED'}: load refuses {path.rsplit('/', 1)[1]}: {str(error)[len(path) + 2:][:70]}")
PY
)

# torch_eval.py's command line: an MLP and a conv run on the IDX test set, the colour conv run on
# its --test-data .npy (the default).
for entry in "vae:--data $tmp/data" "conv:--data $tmp/data" "conv-colour:"; do
  name=${entry%%:*} options=${entry#*:}
  ckpt_eval=$(sed -n 's/.*"test_nelbo": \([0-9.e+-]*\).*/\1/p' "$tmp/$name.eval.json" 2>/dev/null)
  # shellcheck disable=SC2086
  if out=$("$py" Launch/torch_eval.py --checkpoint "$tmp/$name" $options 2>&1) &&
     theirs=$(sed -n 's/.*"test_nelbo": \([0-9.e+-]*\).*/\1/p' <<< "$out") &&
     awk -v a="$theirs" -v b="$ckpt_eval" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b != "" && d <= 2e-5 * b) }'; then
    ok "torch_eval.py --checkpoint RUN_DIR ($name${options:+ $options}): test_nelbo $theirs, vae-dist eval $ckpt_eval"
  else bad "torch_eval.py --checkpoint RUN_DIR ($name): $out (vae-dist eval: $ckpt_eval)"; fi
done

expect_error() {  # expect_error WHAT PATTERN ARGS...: exit 1, one line matching PATTERN, no traceback
  local what=$1 pattern=$2; shift 2
  local out code=0
  out=$("$py" Launch/torch_eval.py "$@" 2>&1) || code=$?
  if [ "$code" -eq 1 ] && [ "$(wc -l <<< "$out")" -eq 1 ] && grep -q -- "$pattern" <<< "$out" && ! grep -q Traceback <<< "$out"; then
    ok "torch_eval.py $what: exit 1: $out"
  else bad "torch_eval.py $what: exit $code: $out"; fi
}
expect_error "with no arguments" "required: --checkpoint"
expect_error "on a missing file" "$tmp/nothing.safetensors: no such checkpoint" --checkpoint "$tmp/nothing.safetensors"
expect_error "on a synthetic-data run without --data" "pass --data DIR" --checkpoint "$tmp/vae"
expect_error "on a missing data folder" "$tmp/nodata: no such folder" --checkpoint "$tmp/vae" --data "$tmp/nodata"
if out=$("$py" Launch/torch_eval.py --help 2>&1) && grep -q -- "--checkpoint FILE|RUN_DIR" <<< "$out"; then
  ok "torch_eval.py --help: exit 0, documents --checkpoint FILE|RUN_DIR"
else bad "torch_eval.py --help: $out"; fi
if out=$(PYTHONPATH=Launch "$py" -c "import sys; sys.argv = ['x']; import torch_eval" 2>&1) && [ -z "$out" ]; then
  ok "import torch_eval runs nothing"
else bad "import torch_eval printed or failed: $out"; fi

summary torch
