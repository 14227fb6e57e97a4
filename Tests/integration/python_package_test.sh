#!/usr/bin/env bash
# The Python package (python/, `import vae_dist`) in a fresh virtual environment, as a user
# installs it (`pip install ./python`: numpy and safetensors, no torch), against vae-dist itself
# on checkpoints this suite trains: the numpy decoder against `vae-dist sample --tensors`, the
# numpy encoder against `vae-dist encode` (float32 on both sides, so only summation order
# differs: 1e-6 on pixels in [0, 1], 1e-5 relative on mu and logvar); Config against
# `vae-dist inspect --json`'s config (round trip, unknown keys kept, missing keys defaulted);
# read_metrics on the run's metrics.jsonl; read_checkpoint's CRC-32 check against a flipped bit
# (which `vae-dist inspect --verify` also refuses); read_run_record. The models: MLPs of both
# likelihoods and conv models (--arch conv: 28x28 gray, and 16x16 colour from a .npy with its
# --test-data). Then, where a Python with torch exists (.venv-torch, as torch_test.sh finds it),
# vae_dist.load against the numpy model.
#   bash Tests/integration/python_package_test.sh   -> python-package: N passed, M failed
set -uo pipefail
. "$(dirname "$0")/lib.sh" python-package
use_venv || abort "cannot set up .venv"  # $python: writes the test images (numpy)
export VAE_DIST_PROGRESS=0

# Test images as IDX files: vae-dist encodes the same bytes the package reads.
"$python" - "$tmp/data" <<'PY' || abort "cannot write the test images"
import os, struct, sys
import numpy as np
rng = np.random.default_rng(7)
def images(n):  # bright rectangles on a dark, noisy background
    x = rng.integers(0, 40, (n, 28, 28))
    for i in range(n):
        r, c = rng.integers(0, 20, 2)
        x[i, r:r + rng.integers(4, 9), c:c + rng.integers(4, 9)] += rng.integers(100, 216)
    return x.astype(np.uint8)
os.makedirs(sys.argv[1])
for name, n in (("train-images-idx3-ubyte", 256), ("t10k-images-idx3-ubyte", 100)):
    with open(os.path.join(sys.argv[1], name), "wb") as f:
        f.write(struct.pack(">IIII", 0x0803, n, 28, 28) + images(n).tobytes())
def colour(n):  # the same, 16x16 RGB, HWC
    x = rng.integers(0, 40, (n, 16, 16, 3))
    for i in range(n):
        r, c = rng.integers(0, 10, 2)
        x[i, r:r + rng.integers(3, 7), c:c + rng.integers(3, 7)] += rng.integers(60, 216, 3)
    return x.astype(np.uint8)
np.save(os.path.join(sys.argv[1], "colour-train.npy"), colour(256))
np.save(os.path.join(sys.argv[1], "colour-test.npy"), colour(100))
PY

# The models: the default bernoulli one (two epochs: two metrics rows), a deeper gaussian one,
# and conv ones: gray gaussian, colour bernoulli (on the .npy, its test set the other .npy).
conv="--epochs 1 --arch conv --hidden 16 --latent 3 --lr 3e-3"
for entry in "vae:--epochs 2" "gaussian:--epochs 1 --likelihood gaussian --hidden 64,32 --latent 5" \
             "conv:$conv --conv-channels 4,8 --likelihood gaussian" \
             "conv-colour:$conv --conv-channels 4,8,8 --data $tmp/data/colour-train.npy --test-data $tmp/data/colour-test.npy"; do
  name=${entry%%:*} options=${entry#*:}
  data=(--data "$tmp/data")
  [[ " $options " == *" --data "* ]] && data=()
  # shellcheck disable=SC2086
  "$bin" train "${data[@]}" --batch-size 64 $options --out "$tmp/$name" > "$tmp/$name.log" 2>&1 \
    || abort "training $name failed: $(tail -1 "$tmp/$name.log")"
  "$bin" sample --checkpoint "$tmp/$name" --count 40 --seed 5 --out "$tmp/$name.png" --tensors "$tmp/$name.samples.safetensors" > /dev/null \
    && "$bin" encode --checkpoint "$tmp/$name" --out "$tmp/$name.encoded.safetensors" > /dev/null \
    && "$bin" inspect --json "$tmp/$name" > "$tmp/$name.inspect.json" \
    || abort "vae-dist sample/encode/inspect of $name failed"
done

# A fresh venv with the package installed from a copy of python/ (the build leaves nothing in the checkout).
mkdir "$tmp/src" && cp -R python/pyproject.toml python/vae_dist "$tmp/src/" && rm -rf "$tmp/src/vae_dist/__pycache__"
if ! python3 -m venv "$tmp/venv" > "$tmp/venv.log" 2>&1; then
  bad "python3 -m venv failed: $(tail -1 "$tmp/venv.log")"
elif ! "$tmp/venv/bin/pip" install -q --disable-pip-version-check "$tmp/src" < /dev/null > "$tmp/pip.log" 2>&1; then
  bad "pip install ./python into a fresh venv failed: $(tail -1 "$tmp/pip.log")"
else
  ok "pip install ./python into a fresh venv: $("$tmp/venv/bin/python" -m pip list 2>/dev/null | grep -iE '^(vae-dist|numpy|safetensors) ' | tr -s ' ' | paste -sd, -)"
  while IFS= read -r line; do
    case $line in ok:*) ok "${line#ok: }" ;; *) bad "${line#FAILED: }" ;; esac
  done < <(cd "$tmp" && "$tmp/venv/bin/python" - "$tmp" "$bin" <<'PY' 2>&1
import json, os, shutil, struct, subprocess, sys, warnings
import numpy as np
import vae_dist
from safetensors.numpy import load_file, save_file

tmp, bin = sys.argv[1:3]
def check(condition, message):
    print(f"{'ok' if condition else 'FAILED'}: {message}")

check(vae_dist.__file__.startswith(f"{tmp}/venv/"), f"import vae_dist loads the installed copy ({os.path.relpath(vae_dist.__file__, tmp)})")
try:
    import torch  # noqa: F401
    check(False, "the fresh venv has torch: the install pulled it in without the [torch] extra")
except ImportError:
    try:
        vae_dist.load(f"{tmp}/vae")
        check(False, "vae_dist.load without torch returned")
    except ImportError as error:
        check("load_numpy" in str(error) and "pip install" in str(error),
              f"vae_dist.load without torch: ImportError: {str(error)[:90]}...")

# The numpy decoder and encoder against vae-dist's own.
idx_images = np.fromfile(f"{tmp}/data/t10k-images-idx3-ubyte", np.uint8, offset=16).reshape(100, 28, 28)
for name in ("vae", "gaussian", "conv", "conv-colour"):
    model = vae_dist.load_numpy(f"{tmp}/{name}")
    test_images = idx_images if name != "conv-colour" else np.load(f"{tmp}/data/colour-test.npy")
    ref = load_file(f"{tmp}/{name}.samples.safetensors")
    images = model.decode(ref["latents"])
    err = float(np.abs(images - ref["images"]).max())
    check(images.shape == ref["images"].shape and images.dtype == np.float32 and err <= 1e-6,
          f"{name} ({model.model.architecture}{' ' + str(model.model.conv_channels) if model.model.conv_layers else ''}, "
          f"{model.model.likelihood}, hidden {model.model.hidden}): numpy decode of {len(images)} latents "
          f"{images.shape} vs vae-dist sample --tensors: max |difference| {err:.2g} (tolerance 1e-6)")
    enc = load_file(f"{tmp}/{name}.encoded.safetensors")
    mu, logvar = model.encode(test_images.astype(np.float32) / np.float32(255))
    worst = max(float((np.abs(a - b) / (1 + np.abs(b))).max()) for a, b in ((mu, enc["mu"]), (logvar, enc["logvar"])))
    check(mu.shape == enc["mu"].shape and worst <= 1e-5,
          f"{name}: numpy encode of {len(test_images)} test images vs vae-dist encode: mu, logvar {mu.shape}, "
          f"max |difference| / (1 + |value|) {worst:.2g} (tolerance 1e-5)")

# Config against `vae-dist inspect --json`'s config.
inspected = json.loads(json.load(open(f"{tmp}/gaussian.inspect.json"))["metadata"]["config"])
config = vae_dist.Config.from_dict(inspected)
check(config.to_dict() == inspected and config.model.extra == {} and config.training.extra == {},
      f"Config round-trips inspect --json's config ({len(inspected['model'])} model and "
      f"{len(inspected['training'])} training keys, none left over in extra)")
check((config.model.hidden, config.model.latent, config.model.likelihood, config.training.batch_size,
       config.training.learning_rate, config.training.bucket_mb) == ([64, 32], 5, "gaussian", 64, 0.001, 1),
      f"Config fields: hidden {config.model.hidden}, latent {config.model.latent}, batch_size "
      f"{config.training.batch_size}, learning_rate {config.training.learning_rate}, bucket_mb {config.training.bucket_mb}")
future = json.loads(json.dumps(inspected))
future["model"]["convolutional"] = True
future["training"]["emaDecay"] = 0.999
future["dataPipeline"] = {"workers": 2}
del future["training"]["accumulate"], future["training"]["klWarmup"]
newer = vae_dist.Config.from_dict(future)
check(newer.model.extra == {"convolutional": True} and newer.training.extra == {"emaDecay": 0.999}
      and newer.extra == {"dataPipeline": {"workers": 2}} and newer.training.accumulate == 1
      and newer.training.kl_warmup == 0 and newer.to_dict()["training"]["emaDecay"] == 0.999,
      "Config keeps unknown keys in extra (and writes them back) and defaults missing ones (accumulate 1, kl_warmup 0)")
_, _, from_file = vae_dist.read_checkpoint(f"{tmp}/gaussian")
check(from_file == config, "read_checkpoint's Config equals the one from inspect --json")
conv_inspected = json.loads(json.load(open(f"{tmp}/conv-colour.inspect.json"))["metadata"]["config"])
conv_config = vae_dist.Config.from_dict(conv_inspected)
check(conv_config.to_dict() == conv_inspected and conv_config.model.extra == {}
      and (conv_config.model.architecture, conv_config.model.conv_channels, conv_config.model.channels) == ("conv", [4, 8, 8], 3)
      and conv_config.model.conv_layers == [(3, 4, 4, 1), (4, 8, 4, 1), (8, 8, 2, 0)]
      and "architecture" not in inspected["model"] and config.model.architecture == "mlp" and config.model.conv_layers == [],
      f"Config of a conv run round-trips (architecture {conv_config.model.architecture}, convChannels "
      f"{conv_config.model.conv_channels}, layers (in, out, kernel, padding) {conv_config.model.conv_layers}); an MLP's has no conv keys")

# read_metrics on the real run, and step rows apart from epoch rows.
metrics = vae_dist.read_metrics(f"{tmp}/vae")
last = json.loads(open(f"{tmp}/vae/metrics.jsonl").read().splitlines()[-1])
# The run's steps.jsonl (vae-dist's step rows, global steps rising) is read beside metrics.jsonl.
step_rows = [json.loads(l) for l in open(f"{tmp}/vae/steps.jsonl")]
check([r["epoch"] for r in metrics.epochs] == [1, 2] and metrics.epochs[-1] == last
      and metrics.steps == step_rows and len(step_rows) > 0 and all(r["kind"] == "step" for r in step_rows),
      f"read_metrics(run): epochs {[r['epoch'] for r in metrics.epochs]}, last test_nelbo "
      f"{metrics.epochs[-1]['test_nelbo']}, {len(metrics.steps)} step rows")
os.makedirs(f"{tmp}/stepped")
with open(f"{tmp}/stepped/metrics.jsonl", "w") as f:
    rows = open(f"{tmp}/vae/metrics.jsonl").read().splitlines()
    f.write("\n".join([json.dumps({"kind": "step", "step": 4, "loss": 300.0}), rows[0],
                       json.dumps({"kind": "step", "step": 8, "loss": 290.0}), rows[1]]) + "\n")
stepped = vae_dist.read_metrics(f"{tmp}/stepped/metrics.jsonl")
check([r.get("step") for r in stepped.steps] == [4, 8] and [r.get("epoch") for r in stepped.epochs] == [1, 2],
      "read_metrics separates kind=step rows from epoch rows")

# read_checkpoint: every CRC-32 matches; a flipped bit is found (and vae-dist agrees); no checksums warns.
path = f"{tmp}/vae/checkpoints/latest.safetensors"
tensors, metadata, _ = vae_dist.read_checkpoint(path)
sums = json.loads(metadata["checksums"])
check(sorted(sums) == sorted(tensors) and vae_dist.checksum_failures(tensors, metadata) == [],
      f"read_checkpoint verifies all {len(sums)} CRC-32 checksums of {os.path.basename(path)}")
raw = bytearray(open(path, "rb").read())
header_length = struct.unpack("<Q", raw[:8])[0]
begin = json.loads(raw[8:8 + header_length])["decoder.out.weight"]["data_offsets"][0]
raw[8 + header_length + begin + 1001] ^= 0x04
open(f"{tmp}/flipped.safetensors", "wb").write(raw)
try:
    vae_dist.read_checkpoint(f"{tmp}/flipped.safetensors")
    check(False, "read_checkpoint accepted a checkpoint with a flipped bit")
except vae_dist.CheckpointError as error:
    verify = subprocess.run([bin, "inspect", "--verify", f"{tmp}/flipped.safetensors"], capture_output=True, text=True)
    check("decoder.out.weight fails its CRC-32 check" in str(error) and verify.returncode == 1
          and "decoder.out.weight" in verify.stdout + verify.stderr,
          f"a flipped bit in decoder.out.weight: CheckpointError ({str(error).split(': ', 1)[1][:70]}...), "
          f"and inspect --verify exits {verify.returncode}")
for key in ("checksums", "checksum_algorithm"):
    del metadata[key]
save_file(tensors, f"{tmp}/unchecked.safetensors", metadata=metadata)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    vae_dist.read_checkpoint(f"{tmp}/unchecked.safetensors")
check([w.category for w in caught] == [vae_dist.UnverifiedCheckpointWarning],
      f"a checkpoint without checksums loads with a warning: {caught[0].message if caught else 'none'}")
for bad in (f"{tmp}/missing", f"{tmp}/vae.png"):
    try:
        vae_dist.read_checkpoint(bad)
        check(False, f"read_checkpoint({bad}) returned")
    except vae_dist.CheckpointError as error:
        check(str(error).startswith(bad), f"read_checkpoint refuses {os.path.basename(bad)}: {str(error)[len(bad) + 2:][:60]}")

# read_run_record: the run's run.json as a dict (vae-dist writes one where it keeps a run record), else None.
expected = json.load(open(f"{tmp}/vae/run.json")) if os.path.exists(f"{tmp}/vae/run.json") else None
check(vae_dist.read_run_record(f"{tmp}/vae") == expected, f"read_run_record(run) of a real run: "
      f"{'its run.json' if expected else 'None (no run.json)'}")
record = {"version": "1.0", "commit": "abc123", "command_line": ["vae-dist", "train"], "ranks": 2,
          "threads": 1, "hosts": ["a", "b"], "isa": "avx2", "start": "2025-01-01T00:00:00Z", "end": None}
shutil.copytree(f"{tmp}/vae", f"{tmp}/recorded")
json.dump(record, open(f"{tmp}/recorded/run.json", "w"))
check(vae_dist.read_run_record(f"{tmp}/recorded") == record and vae_dist.read_run_record(f"{tmp}/data") is None,
      "read_run_record reads OUT/run.json as a dict, None for a folder without one")
PY
)
fi

# vae_dist.load in a Python with torch (torch_test.sh's .venv-torch), against the numpy model.
torch_python=""
for candidate in "${TORCH_PYTHON:-}" .venv-torch/bin/python; do
  [ -n "$candidate" ] && "$candidate" -c "import torch, numpy, safetensors" 2>/dev/null && { torch_python=$candidate; break; }
done
if [ -z "$torch_python" ]; then
  echo "python-package: skipped: torch not installed (no ${TORCH_PYTHON:+$TORCH_PYTHON or }.venv-torch/bin/python imports torch; see docs/python.md)"
elif ! use_package "$torch_python"; then
  bad "cannot install ./python into $torch_python's environment"
else
  while IFS= read -r line; do
    case $line in ok:*) ok "${line#ok: }" ;; *) bad "${line#FAILED: }" ;; esac
  done < <("$torch_python" - "$tmp" <<'PY' 2>&1
import sys
import numpy as np, torch
import vae_dist
from safetensors.numpy import load_file
tmp = sys.argv[1]
idx_images = np.fromfile(f"{tmp}/data/t10k-images-idx3-ubyte", np.uint8, offset=16).reshape(100, 784).astype(np.float32) / 255
for name in ("vae", "gaussian", "conv", "conv-colour"):
    model, twin = vae_dist.load(f"{tmp}/{name}"), vae_dist.load_numpy(f"{tmp}/{name}")
    images = idx_images if name != "conv-colour" else np.load(f"{tmp}/data/colour-test.npy").reshape(100, -1).astype(np.float32) / 255
    ref = load_file(f"{tmp}/{name}.samples.safetensors")
    with torch.no_grad():
        decoded = model.decode(torch.from_numpy(ref["latents"])).numpy().reshape(ref["images"].shape)
        mu, logvar = (t.numpy() for t in model.encode(torch.from_numpy(images)))
    a, b = twin.encode(images)
    err = max(float(np.abs(decoded - ref["images"]).max()), float(np.abs(decoded - twin.decode(ref["latents"])).max()))
    worst = max(float((np.abs(mu - a) / (1 + np.abs(a))).max()), float((np.abs(logvar - b) / (1 + np.abs(b))).max()))
    ok = isinstance(model, torch.nn.Module) and isinstance(model.config, vae_dist.Config) and err <= 1e-6 and worst <= 1e-5
    print(f"{'ok' if ok else 'FAILED'}: {name} ({model.architecture}): vae_dist.load gives a torch.nn.Module with a Config; its decodes match "
          f"vae-dist and load_numpy (max |difference| {err:.2g}), its encodes load_numpy's ({worst:.2g})")
PY
)
fi

summary python-package
