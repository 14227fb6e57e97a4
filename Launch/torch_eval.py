"""Evaluates a vae-dist checkpoint with PyTorch: the weights go into the PyTorch
examples' VAE (fc1, fc21, fc22, fc3, fc4) with the README's key mapping, and the
test-set negative ELBO is computed with PyTorch's own ops and noise. It should
match `vae-dist eval` to Monte Carlo noise (a few hundredths of a nat).

  python Launch/torch_eval.py CHECKPOINT [DATA_DIR]     (needs torch, numpy, safetensors)
"""
import gzip, os, struct, sys
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F
from safetensors.torch import load_file


class VAE(nn.Module):  # the PyTorch examples' model, unchanged
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def load_images(path):
    data = (gzip.open if path.endswith(".gz") else open)(path, "rb").read()
    n, rows, cols = struct.unpack(">III", data[4:16])
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows * cols).astype(np.float32) / 255


w = load_file(sys.argv[1])
names = {"fc1": "encoder.0", "fc21": "encoder.mu", "fc22": "encoder.logvar", "fc3": "decoder.0", "fc4": "decoder.out"}
model = VAE()
model.load_state_dict({f"{t}.{p}": w[f"{s}.{p}"] for t, s in names.items() for p in ("weight", "bias")})
folder = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
name = next(f for f in sorted(os.listdir(folder)) if f.startswith("t10k-images"))
x = torch.from_numpy(load_images(os.path.join(folder, name)))
torch.manual_seed(0)
recon = kl = 0.0
with torch.no_grad():
    for i in range(0, len(x), 1000):
        xb = x[i:i + 1000]
        xr, mu, logvar = model(xb)
        recon += F.binary_cross_entropy(xr, xb, reduction="sum").item()
        kl += (-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())).item()
print(f'{{"torch_test_recon": {recon / len(x):.4f}, "torch_test_kl": {kl / len(x):.4f}, "torch_test_nelbo": {(recon + kl) / len(x):.4f}}}')
