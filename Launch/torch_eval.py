"""Evaluates a vae-dist checkpoint with PyTorch: the model is the vae_dist package's VAE
(`vae_dist.load`, python/vae_dist/torch_model.py) with the checkpoint's weights, the test-set
losses are computed with PyTorch's ops, and the line printed has the fields of `vae-dist eval`.

By default the noise is vae-dist's own (the same eps per test example, and the same
--binarize draws), so test_nelbo agrees with `vae-dist eval` to float rounding;
--torch-noise draws eps with torch.randn instead (agreement to Monte Carlo noise).

  .venv-torch/bin/python Launch/torch_eval.py --checkpoint FILE|RUN_DIR [--data DIR|FILE.npy] [--limit N]

Any architecture vae_dist.load builds (mlp, conv) and image shape (gray or colour, HWC). The
test images: a folder's IDX t10k-images, or a uint8 .npy [N, H, W] or [N, H, W, C] taken
whole as the test set (as `vae-dist train --test-data FILE.npy` does; the default when the
checkpoint was trained so).

(with the package installed in that environment: .venv-torch/bin/pip install -e ./python)
"""
import argparse
import gzip
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


class DataError(Exception):
    """Missing or malformed IDX test images; the message names the file."""


def load_test_images(folder):
    """t10k-images-idx3-ubyte[.gz] of `folder` as uint8 [count, rows, columns]."""
    if not os.path.isdir(folder):
        raise DataError(f"--data {folder}: no such folder (it should hold t10k-images-idx3-ubyte[.gz])")
    names = sorted(n for n in os.listdir(folder) if n.startswith("t10k-images"))
    if not names:
        raise DataError(f"--data {folder}: no t10k-images-idx3-ubyte[.gz] in it")
    path = os.path.join(folder, names[0])
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error})") from None
    if len(data) < 16 or struct.unpack(">I", data[:4])[0] != 0x0803:
        raise DataError(f"{path}: not an IDX file of unsigned-byte images (magic 0x00000803)")
    n, rows, columns = struct.unpack(">III", data[4:16])
    if len(data) != 16 + n * rows * columns:
        raise DataError(f"{path}: {len(data) - 16} bytes of pixels, expected {n} x {rows} x {columns}")
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows, columns)


def load_test_array(path):
    """A .npy of test images as uint8 [count, H, W] or [count, H, W, C] (all of it: a test set)."""
    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot be read as a .npy array ({error})") from None
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise DataError(f"{path}: a uint8 array [N, H, W] or [N, H, W, C] is needed (got {images.dtype} "
                        f"{list(images.shape)})")
    return images[..., 0] if images.ndim == 4 and images.shape[3] == 1 else images


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="torch_eval.py", description="Evaluate a vae-dist checkpoint on the test set with PyTorch; "
        "prints one JSON line with the fields of `vae-dist eval`.")
    parser.add_argument("--checkpoint", required=True, metavar="FILE|RUN_DIR",
                        help="a .safetensors checkpoint, or a run folder (its checkpoints/latest.safetensors)")
    parser.add_argument("--data", metavar="DIR|FILE.npy",
                        help="folder with t10k-images-idx3-ubyte[.gz], or a uint8 .npy of test images [N, H, W(, C)] "
                        "(default: the checkpoint's --test-data, else the data it was trained on)")
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N test images")
    parser.add_argument("--batch-size", type=int, default=500, help="test images per forward pass (default 500)")
    parser.add_argument("--torch-noise", action="store_true",
                        help="draw eps with torch.randn (seeded by --seed) instead of vae-dist's noise")
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed for --torch-noise (default 0)")
    # Bad options: one line and exit code 1, like vae-dist.
    parser.error = lambda message: sys.exit(f"torch_eval.py: error: {message} (see --help)")
    return parser.parse_args(argv)


def evaluate(model, images, args, seed, binarize):
    """Sums of recon and kl over `images` (uint8 [n, D]), batch by batch."""
    import torch
    import vae_dist_random as rng
    recon = kl = 0.0
    for first in range(0, len(images), args.batch_size):
        x = images[first:first + args.batch_size].astype(np.float32) / np.float32(255)
        if binarize:
            x = rng.binarize_test_images(seed, first, x)
        eps = None
        if not args.torch_noise:
            eps = torch.from_numpy(rng.evaluation_noise(seed, first, len(x), model.latent))
        r, k = model.loss_terms(torch.from_numpy(x), eps)
        recon += r.double().sum().item()
        kl += k.double().sum().item()
    return recon, kl


def main(argv=None):
    args = parse_arguments(argv)
    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        sys.exit("torch_eval.py: error: --batch-size and --limit must be at least 1")
    sys.path.insert(0, HERE)
    try:
        import torch
        import vae_dist
    except ImportError as error:
        sys.exit(f"torch_eval.py: error: {error.name or error} is not importable by {sys.executable}; "
                 "python3 -m venv .venv-torch && .venv-torch/bin/pip install torch -e ./python, "
                 "then run this with .venv-torch/bin/python")
    try:
        model = vae_dist.load(args.checkpoint)
        training = model.config.training
        data = args.data or training.test_data or training.data
        if data.startswith("synthetic"):
            raise DataError(f"{model.path} was trained on --data {data}, which vae-dist generates in Swift; "
                            "pass --data DIR with IDX images of the same size")
        if data.endswith(".npy") and not args.data and not training.test_data:
            raise DataError(f"{model.path} was trained on {data} with a held-out test split; pass --data with "
                            "the test images (a folder of IDX files or a .npy taken whole)")
        images = load_test_array(data) if data.endswith(".npy") else load_test_images(data)
    except (vae_dist.CheckpointError, DataError) as error:
        sys.exit(f"torch_eval.py: error: {error}")
    if images.shape[1:] != model.image_shape:
        shape = "x".join(map(str, model.image_shape))
        sys.exit(f"torch_eval.py: error: {model.path} expects {shape} images but {data} has "
                 f"{'x'.join(map(str, images.shape[1:]))}")
    images = images[:args.limit].reshape(len(images[:args.limit]), -1)
    torch.manual_seed(args.seed)
    with torch.no_grad():
        recon, kl = evaluate(model, images, args, int(training.seed), bool(training.binarize))
    n = len(images)
    print(json.dumps({"epoch": int(model.metadata.get("epoch", 0)), "test_count": n,
                      "test_loss": round((recon + model.beta * kl) / n, 4), "test_recon": round(recon / n, 4),
                      "test_kl": round(kl / n, 4), "test_nelbo": round((recon + kl) / n, 4),
                      "noise": "torch" if args.torch_noise else "vae-dist"}))


if __name__ == "__main__":
    main()
