"""The PyTorch reference for Launch/compare.sh: the PyTorch examples' VAE (784-400-20,
sigmoid output, binary cross-entropy summed over pixels plus the closed-form KL, Adam 1e-3),
trained on the same IDX data with the same global batch as `vae-dist train`, on T threads.
Prints one line per epoch with its training samples/s (test evaluation not timed).

  .venv-torch/bin/python Launch/torch_vae.py --data DIR --epochs N [--threads T] [--batch 128]
      [--seed S] [--compile] [--fused]
  (--compile: torch.compile of forward + loss + backward; --fused: fused Adam; together
   PyTorch's strongest CPU configuration)
"""
import argparse
import gzip
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_images(folder, prefix):
    """prefix-images-idx3-ubyte[.gz] of folder as float32 [n, rows * columns] in [0, 1]."""
    names = sorted(n for n in os.listdir(folder) if n.startswith(prefix + "-images"))
    if not names:
        sys.exit(f"torch_vae.py: error: no {prefix}-images-idx3-ubyte[.gz] in {folder}")
    path = os.path.join(folder, names[0])
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    n, rows, columns = struct.unpack(">III", data[4:16])
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows * columns).astype(np.float32) / 255


class VAE(nn.Module):  # the PyTorch examples' model
    def __init__(self, d=784, h=400, z=20):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(d, h), nn.Linear(h, z), nn.Linear(h, z)
        self.fc3, self.fc4 = nn.Linear(z, h), nn.Linear(h, d)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def loss_fn(xr, x, mu, logvar):
    bce = F.binary_cross_entropy(xr, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def main():
    p = argparse.ArgumentParser(description="PyTorch reference VAE for Launch/compare.sh")
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--fused", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr = torch.from_numpy(load_images(a.data, "train"))
    xte = torch.from_numpy(load_images(a.data, "t10k"))
    model = VAE(d=xtr.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=a.fused or None)

    def step_fn(x):
        xr, mu, lv = model(x)
        loss = loss_fn(xr, x, mu, lv)
        (loss / a.batch).backward()   # mean over the global batch, as vae-dist seeds its chain rule
        return loss

    if a.compile:
        step_fn = torch.compile(step_fn)
    g = torch.Generator().manual_seed(a.seed)
    for epoch in range(1, a.epochs + 1):
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        steps = len(xtr) // a.batch   # the last partial batch is dropped, as in vae-dist
        t0 = time.perf_counter()
        total = 0.0
        for s in range(steps):
            x = xtr[perm[s * a.batch:(s + 1) * a.batch]]
            opt.zero_grad()
            loss = step_fn(x)
            opt.step()
            total += loss.item()
        dt = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            tl = 0.0
            for i in range(0, len(xte), 1000):
                x = xte[i:i + 1000]
                xr, mu, lv = model(x)
                tl += loss_fn(xr, x, mu, lv).item()
        print(f"epoch {epoch} train_loss {total / (steps * a.batch):.3f} test_loss {tl / len(xte):.3f} "
              f"epoch_s {dt:.2f} samples_per_s {steps * a.batch / dt:.0f}", flush=True)


if __name__ == "__main__":
    main()
