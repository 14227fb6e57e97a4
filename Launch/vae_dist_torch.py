"""vae-dist checkpoints in PyTorch: the model class, the key mapping and load(path).

    import sys; sys.path.insert(0, "Launch")       # from the repository folder
    from vae_dist_torch import load
    model = load("runs/latest")                    # a run folder or a .safetensors file

`VAE` is vae-dist's model (Sources/VAEModel/VAE.swift) written with torch.nn: its
state_dict keys are the checkpoint's tensor names (`encoder.0.weight`, `encoder.mu.bias`,
`decoder.out.weight`, `decoder.logvar`, ...), weights [out, in] as in torch.nn.Linear, so
the checkpoint's model tensors load with no renaming; the `optimizer.*` Adam moments are
left out. `example_state_dict` renames the default 784-400-20 model's tensors for the
PyTorch examples' VAE (fc1, fc21, fc22, fc3, fc4).
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT = "vae-dist/1"
# Gaussian likelihood: the learned per-pixel log-variance is clamped (GaussianLikelihood.logvarRange).
LOGVAR_RANGE = (-6.0, 2.0)
# The PyTorch examples' VAE names for the default architecture (one hidden layer).
EXAMPLE_NAMES = {"fc1": "encoder.0", "fc21": "encoder.mu", "fc22": "encoder.logvar",
                 "fc3": "decoder.0", "fc4": "decoder.out"}


MODEL_OPTIONS = ("imageHeight", "imageWidth", "channels", "hidden", "latent", "likelihood", "beta", "autoencoder")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the cause."""


class Encoder(nn.Module):
    """Linear + ReLU per hidden width (submodules "0", "1", ...), then the mu and logvar heads."""

    def __init__(self, widths, latent):
        super().__init__()
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            self.add_module(str(i), nn.Linear(a, b))
        self.mu = nn.Linear(widths[-1], latent)
        self.logvar = nn.Linear(widths[-1], latent)
        self.depth = len(widths) - 1

    def forward(self, x):  # x [batch, D] -> mu, logvar [batch, latent]
        h = x
        for i in range(self.depth):
            h = F.relu(getattr(self, str(i))(h))
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """Linear + ReLU per hidden width (mirrored), then `out` giving logits (bernoulli) or means (gaussian)."""

    def __init__(self, widths, gaussian):
        super().__init__()
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:-1])):
            self.add_module(str(i), nn.Linear(a, b))
        self.out = nn.Linear(widths[-2], widths[-1])
        self.depth = len(widths) - 2
        # Learned per-pixel log-variance, starting at 0 as in vae-dist.
        self.logvar = nn.Parameter(torch.zeros(widths[-1])) if gaussian else None

    def forward(self, z):  # z [batch, latent] -> [batch, D]
        h = z
        for i in range(self.depth):
            h = F.relu(getattr(self, str(i))(h))
        return self.out(h)


class VAE(nn.Module):
    """vae-dist's VAE: MLP encoder to (mu, logvar), z = mu + exp(logvar / 2) * eps, MLP decoder.

    Arguments as in the checkpoint's config["model"]; `VAE(**config["model"])` rebuilds it.
    An image is flattened as vae-dist holds it: H x W x C interleaved (HWC, as numpy and PIL
    hold images; checkpoints without `channels` are gray, C = 1). From a torch [N, C, H, W]
    batch: `x.permute(0, 2, 3, 1).reshape(len(x), -1)`; back: `.reshape(-1, H, W, C)`.
    """

    def __init__(self, imageHeight=28, imageWidth=28, hidden=(400,), latent=20, likelihood="bernoulli",
                 beta=1.0, autoencoder=False, channels=1):
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be bernoulli or gaussian (got {likelihood!r})")
        # (H, W) for gray, (H, W, C) for colour: the shape of one image as numpy holds it.
        self.image_shape = (imageHeight, imageWidth) if channels == 1 else (imageHeight, imageWidth, channels)
        self.latent = latent
        self.likelihood = likelihood
        self.beta = float(beta)
        self.autoencoder = bool(autoencoder)
        d = imageHeight * imageWidth * channels
        self.encoder = Encoder([d, *hidden], latent)
        self.decoder = Decoder([latent, *reversed(hidden), d], likelihood == "gaussian")

    def encode(self, x):
        """x [batch, D] in [0, 1] -> mu, logvar [batch, latent]."""
        return self.encoder(x)

    def decode(self, z):
        """z [batch, latent] -> the decoder's mean image [batch, D] in [0, 1] (as `vae-dist sample` draws it)."""
        out = self.decoder(z)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out.clamp(0, 1)

    def forward(self, x, eps=None):
        """-> (decoder output [batch, D]: logits or Gaussian means, mu, logvar). eps [batch, latent]
        is the noise; None draws torch.randn. An autoencoder decodes z = mu."""
        mu, logvar = self.encoder(x)
        if self.autoencoder:
            z = mu
        else:
            z = mu + torch.exp(0.5 * logvar) * (torch.randn_like(mu) if eps is None else eps)
        return self.decoder(z), mu, logvar

    def loss_terms(self, x, eps=None):
        """Per-example recon = -log p(x|z) and KL(q(z|x) || N(0, I)), nats [batch] each, as vae-dist
        computes them; the loss is recon + beta * kl, the negative ELBO recon + kl."""
        out, mu, logvar = self(x, eps)
        if self.likelihood == "bernoulli":
            recon = F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(1)
        else:
            lv = self.decoder.logvar.clamp(*LOGVAR_RANGE)
            recon = (0.5 * (math.log(2 * math.pi) + lv + (x - out) ** 2 * torch.exp(-lv))).sum(1)
        if self.autoencoder:
            kl = torch.zeros_like(recon)
        else:
            kl = 0.5 * (mu ** 2 + logvar.exp() - logvar - 1).sum(1)
        return recon, kl


def checkpoint_path(path):
    """A .safetensors file, or a run folder (its checkpoints/latest.safetensors)."""
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoints", "latest.safetensors")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint (give a .safetensors file or a run folder "
                              "holding checkpoints/latest.safetensors)")
    return path


def read_checkpoint(path):
    """-> (tensors {name: torch.Tensor}, metadata {str: str}) of a vae-dist checkpoint."""
    from safetensors import safe_open
    path = checkpoint_path(path)
    try:
        with safe_open(path, "pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as error:  # safetensors raises several types for a malformed file
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a vae-dist checkpoint (metadata format is "
                              f"{metadata.get('format')!r}, expected {FORMAT!r})")
    return tensors, metadata


def model_state_dict(tensors):
    """The key mapping checkpoint -> VAE.state_dict(): model tensors keep their names;
    the optimizer's Adam moments (`optimizer.<name>.exp_avg[_sq]`) are not part of the model."""
    return {name: t for name, t in tensors.items() if not name.startswith("optimizer.")}


def load(path):
    """The checkpoint's model as a `VAE` in eval mode, with `.config` (the model and training
    options from the metadata), `.metadata` and `.path` set. `path`: a file or a run folder."""
    tensors, metadata = read_checkpoint(path)
    path = checkpoint_path(path)
    try:
        config = json.loads(metadata["config"])
        # The options this class models; any others (newer vae-dist options) stay in model.config.
        model = VAE(**{k: v for k, v in config["model"].items() if k in MODEL_OPTIONS})
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: metadata config does not describe a vae-dist model ({error})") from None
    state = model_state_dict(tensors)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: tensors do not match the config's model (missing {missing}, unexpected {extra})")
    for name, t in state.items():
        if t.shape != expected[name].shape:
            raise CheckpointError(f"{path}: {name} has shape {list(t.shape)}, the config's model needs "
                                  f"{list(expected[name].shape)}")
    model.load_state_dict(state)
    model.config, model.metadata, model.path = config, metadata, path
    return model.eval()


def example_state_dict(path):
    """The default model's weights under the PyTorch examples' VAE names (fc1.weight, ...)."""
    tensors, _ = read_checkpoint(path)
    names = [f"{s}.{p}" for s in EXAMPLE_NAMES.values() for p in ("weight", "bias")]
    if "encoder.1.weight" in tensors or any(n not in tensors for n in names):
        raise CheckpointError(f"{checkpoint_path(path)}: the PyTorch examples' VAE has exactly one hidden "
                              "layer on each side; load this checkpoint with vae_dist_torch.load instead")
    return {f"{t}.{p}": tensors[f"{s}.{p}"] for t, s in EXAMPLE_NAMES.items() for p in ("weight", "bias")}
