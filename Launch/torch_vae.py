"""The PyTorch reference for Launch/compare.sh: the PyTorch examples' VAE (784-400-20,
sigmoid output, binary cross-entropy summed over pixels plus the closed-form KL, Adam 1e-3),
trained on the same IDX data with the same global batch as `vae-dist train`, on T threads.
Prints one line per epoch with its training samples/s (test evaluation not timed).

  .venv-torch/bin/python Launch/torch_vae.py --data DIR --epochs N [--threads T] [--batch 128]
      [--seed S] [--compile] [--fused]
  (--compile: torch.compile of forward + loss + backward; --fused: fused Adam; together
   PyTorch's strongest CPU configuration)

--arch conv: disentanglement_lib's convolutional VAE instead, as `vae-dist train --arch conv`
builds it: Conv2d 32, 32, 64, 64 (kernels 4, 4, 2, 2, stride 2) + ReLU, dense 256, the heads;
dense 256, dense to 64 x 4 x 4, ConvTranspose2d 64, 32, 32, 1 (kernel 4, stride 2), logits
with binary cross-entropy, written as a PyTorch user would (NCHW, nn.Sequential). --data
sprites:N makes N dSprites-shaped images (64x64, binary: a square or an ellipse of random
size and place; 90% train, 10% test) in numpy: throughput does not depend on the pixels, and
PyTorch cannot read vae-dist's built-in `dsprites` set.

  .venv-torch/bin/python Launch/torch_vae.py --arch conv --data sprites:2000 --batch 64 --latent 10
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


def make_sprites(count, seed, side=64):
    """count binary [side * side] float32 images: one filled square or ellipse each."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    images = np.zeros((count, side * side), np.float32)
    for i in range(count):
        r = rng.uniform(4, side / 5)
        cy, cx = rng.uniform(r, side - r, 2)
        if rng.random() < 0.5:
            mask = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
        else:
            mask = ((yy - cy) / r) ** 2 + ((xx - cx) / (0.6 * r)) ** 2 <= 1
        images[i] = mask.reshape(-1)
    return images


class ConvVAE(nn.Module):  # disentanglement_lib's conv VAE, as vae-dist's --arch conv (1 channel, 64x64)
    def __init__(self, z=10, side=64, channels=(32, 32, 64, 64), hidden=256):
        super().__init__()
        layers, c = [], 1
        for i, out in enumerate(channels):
            k = 4 if i < 2 else 2
            layers += [nn.Conv2d(c, out, k, stride=2, padding=1 if k == 4 else 0), nn.ReLU()]
            c = out
        s = side >> len(channels)
        self.map = (c, s, s)
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * s * s, hidden), nn.ReLU())
        self.mu, self.logvar = nn.Linear(hidden, z), nn.Linear(hidden, z)
        self.fc = nn.Sequential(nn.Linear(z, hidden), nn.ReLU(), nn.Linear(hidden, c * s * s), nn.ReLU())
        outs = [*reversed(channels[:-1]), 1]
        deconv = []
        for j, out in enumerate(outs):
            deconv.append(nn.ConvTranspose2d(c, out, 4, stride=2, padding=1))
            if j < len(outs) - 1:
                deconv.append(nn.ReLU())
            c = out
        self.deconv = nn.Sequential(*deconv)
        self.side = side

    def forward(self, x):  # x [batch, side * side] -> logits [batch, side * side], mu, logvar
        h = self.encoder(x.view(len(x), 1, self.side, self.side))
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.deconv(self.fc(z).view(len(z), *self.map)).view(len(z), -1), mu, logvar


def conv_loss_fn(logits, x, mu, logvar):
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


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


def mlp_loss_fn(xr, x, mu, logvar):
    bce = F.binary_cross_entropy(xr, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def main():
    p = argparse.ArgumentParser(description="PyTorch reference VAE for Launch/compare.sh")
    p.add_argument("--data", required=True, help="IDX folder, or sprites:N (--arch conv)")
    p.add_argument("--arch", choices=("mlp", "conv"), default="mlp")
    p.add_argument("--latent", type=int, default=None, help="latent size (default: 20 mlp, 10 conv)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--fused", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    if a.data.startswith("sprites:"):
        n = int(a.data.split(":", 1)[1])
        images = make_sprites(n, a.seed)
        test = max(1, round(n * 0.1))
        xtr, xte = torch.from_numpy(images[test:]), torch.from_numpy(images[:test])
    else:
        xtr = torch.from_numpy(load_images(a.data, "train"))
        xte = torch.from_numpy(load_images(a.data, "t10k"))
    if a.arch == "conv":
        if xtr.shape[1] != 64 * 64:
            sys.exit(f"torch_vae.py: error: --arch conv is the 64x64 model; the data has {xtr.shape[1]} pixels per image")
        model = ConvVAE(z=a.latent or 10)
        loss_fn = conv_loss_fn
    else:
        model = VAE(d=xtr.shape[1], z=a.latent or 20)
        loss_fn = mlp_loss_fn
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
