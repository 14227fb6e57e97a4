"""vae-dist checkpoints in PyTorch: the model class, the key mapping and load(path).

    import vae_dist                                # pip install './python[torch]'
    model = vae_dist.load("runs/latest")           # a run folder or a .safetensors file

`VAE` is vae-dist's model (Sources/VAEModel/VAE.swift, VAE+Conv.swift) written with torch.nn: its
state_dict keys are the checkpoint's tensor names (`encoder.0.weight`, `encoder.mu.bias`,
`decoder.out.weight`, `decoder.logvar`, ...; for the conv architecture also
`encoder.conv.{i}.*`, nn.Conv2d [out, in, k, k], `decoder.fc.*` and `decoder.deconv.{j}.*`,
nn.ConvTranspose2d [in, out, 4, 4]), weights [out, in] as in torch.nn.Linear, so
the checkpoint's model tensors load with no renaming; the `optimizer.*` Adam moments are
left out. `example_state_dict` renames the default 784-400-20 model's tensors for the
PyTorch examples' VAE (fc1, fc21, fc22, fc3, fc4).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import CheckpointError, checkpoint_path, model_tensors, read_checkpoint
from .config import ModelConfig

# Gaussian likelihood: the learned per-pixel log-variance is clamped (GaussianLikelihood.logvarRange).
LOGVAR_RANGE = (-6.0, 2.0)
# The PyTorch examples' VAE names for the default architecture (one hidden layer).
EXAMPLE_NAMES = {"fc1": "encoder.0", "fc21": "encoder.mu", "fc22": "encoder.logvar",
                 "fc3": "decoder.0", "fc4": "decoder.out"}



class Encoder(nn.Module):
    """Linear + ReLU per hidden width (submodules "0", "1", ...), then the mu and logvar heads.

    With `conv` (the conv architecture: a list of (in, out, kernel, padding) and the image's
    (H, W, C)), stride-2 nn.Conv2d + ReLU layers (submodule "conv": conv.0, conv.1, ...) come
    first, on the HWC input seen as NCHW; their last map is flattened as torch does (C, h, w)
    into the dense layers, so `widths[0]` is c_last * h * w."""

    def __init__(self, widths, latent, conv=None, image=None):
        super().__init__()
        if conv:
            self.conv = nn.ModuleList(nn.Conv2d(a, b, k, stride=2, padding=p) for a, b, k, p in conv)
            self.image = image
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            self.add_module(str(i), nn.Linear(a, b))
        self.mu = nn.Linear(widths[-1], latent)
        self.logvar = nn.Linear(widths[-1], latent)
        self.depth = len(widths) - 1

    def forward(self, x):  # x [batch, D] -> mu, logvar [batch, latent]
        h = x
        if hasattr(self, "conv"):
            height, width, channels = self.image
            h = h.reshape(len(h), height, width, channels).permute(0, 3, 1, 2)  # HWC -> NCHW
            for layer in self.conv:
                h = F.relu(layer(h))
            h = h.flatten(1)                                                      # (C, h, w) order
        for i in range(self.depth):
            h = F.relu(getattr(self, str(i))(h))
        return self.mu(h), self.logvar(h)


class Decoder(nn.Module):
    """Linear + ReLU per hidden width (mirrored), then `out` giving logits (bernoulli) or means (gaussian).

    With `conv` (as for Encoder), the dense layers end in `fc` (+ ReLU) to the encoder's last map
    [c_last, h, w] (NCHW), followed by nn.ConvTranspose2d(kernel 4, stride 2, padding 1) layers
    ("deconv": deconv.0, ...) mirroring the encoder's channels, ReLU after all but the last, whose
    (N, C, H, W) output is returned flattened HWC, as the MLP's `out`."""

    def __init__(self, widths, gaussian, conv=None, image=None):
        super().__init__()
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:-1])):
            self.add_module(str(i), nn.Linear(a, b))
        if conv:
            height, width, _ = image
            side = 2 ** len(conv)
            self.map = (conv[-1][1], height // side, width // side)
            self.fc = nn.Linear(widths[-2], self.map[0] * self.map[1] * self.map[2])
            self.deconv = nn.ModuleList(nn.ConvTranspose2d(b, a, 4, stride=2, padding=1) for a, b, _, _ in reversed(conv))
            self.image = image
        else:
            self.out = nn.Linear(widths[-2], widths[-1])
        self.depth = len(widths) - 2
        # Learned per-pixel log-variance, starting at 0 as in vae-dist.
        self.logvar = nn.Parameter(torch.zeros(widths[-1])) if gaussian else None

    def forward(self, z):  # z [batch, latent] -> [batch, D]
        h = z
        for i in range(self.depth):
            h = F.relu(getattr(self, str(i))(h))
        if not hasattr(self, "deconv"):
            return self.out(h)
        h = F.relu(self.fc(h)).reshape(len(h), *self.map)
        for j, layer in enumerate(self.deconv):
            h = layer(h)
            if j < len(self.deconv) - 1:
                h = F.relu(h)
        return h.permute(0, 2, 3, 1).reshape(len(h), -1)                          # NCHW -> HWC


class VAE(nn.Module):
    """vae-dist's VAE: encoder to (mu, logvar), z = mu + exp(logvar / 2) * eps, decoder.

    Arguments as the fields of the checkpoint's `ModelConfig`; `VAE.from_config(config.model)` rebuilds it.
    An image is flattened as vae-dist holds it: H x W x C interleaved (HWC, as numpy and PIL
    hold images; checkpoints without `channels` are gray, C = 1). From a torch [N, C, H, W]
    batch: `x.permute(0, 2, 3, 1).reshape(len(x), -1)`; back: `.reshape(-1, H, W, C)`.
    architecture="conv" (conv_channels) is disentanglement_lib's convolutional VAE (see Encoder,
    Decoder): its input and output are the same flattened HWC vectors, so encode, decode,
    forward and loss_terms are used as for the MLP.
    """

    def __init__(self, image_height=28, image_width=28, hidden=(400,), latent=20, likelihood="bernoulli",
                 beta=1.0, autoencoder=False, channels=1, architecture="mlp", conv_channels=(32, 32, 64, 64)):
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be bernoulli or gaussian (got {likelihood!r})")
        if architecture not in ("mlp", "conv"):
            raise ValueError(f"architecture must be mlp or conv (got {architecture!r})")
        # (H, W) for gray, (H, W, C) for colour: the shape of one image as numpy holds it.
        self.image_shape = (image_height, image_width) if channels == 1 else (image_height, image_width, channels)
        self.latent = latent
        self.likelihood = likelihood
        self.beta = float(beta)
        self.autoencoder = bool(autoencoder)
        self.architecture = architecture
        d = image_height * image_width * channels
        if architecture == "mlp":
            self.encoder = Encoder([d, *hidden], latent)
            self.decoder = Decoder([latent, *reversed(hidden), d], likelihood == "gaussian")
            return
        conv = ModelConfig(image_height=image_height, image_width=image_width, channels=channels,
                           architecture="conv", conv_channels=list(conv_channels)).conv_layers
        side = 2 ** len(conv)
        if not conv or image_height % side or image_width % side:
            raise ValueError(f"the conv architecture with {len(conv)} stride-2 layers needs image sides divisible "
                             f"by {side} (got {image_height}x{image_width})")
        image = (image_height, image_width, channels)
        features = conv[-1][1] * (image_height // side) * (image_width // side)
        self.encoder = Encoder([features, *hidden], latent, conv, image)
        self.decoder = Decoder([latent, *reversed(hidden), d], likelihood == "gaussian", conv, image)

    @classmethod
    def from_config(cls, model: ModelConfig):
        """The model a `ModelConfig` describes (options newer than this class, in `model.extra`, are ignored)."""
        return cls(image_height=model.image_height, image_width=model.image_width, hidden=tuple(model.hidden),
                   latent=model.latent, likelihood=model.likelihood, beta=model.beta, autoencoder=model.autoencoder,
                   channels=model.channels, architecture=model.architecture, conv_channels=tuple(model.conv_channels))

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


def torch_tensors(tensors):
    """{name: numpy array} -> {name: torch.Tensor} (copies: safetensors' arrays may be read-only)."""
    return {name: torch.from_numpy(t.copy()) for name, t in tensors.items()}


def load(path, verify=True):
    """The checkpoint's model as a `VAE` in eval mode, with `.config` (a `vae_dist.Config`: the
    model and training options from the metadata), `.metadata` and `.path` set. `path`: a file or
    a run folder. The tensors are checked against their CRC-32 checksums (see read_checkpoint)."""
    tensors, metadata, config = read_checkpoint(path, verify=verify)
    path = checkpoint_path(path)
    try:
        model = VAE.from_config(config.model)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: metadata config does not describe a vae-dist model ({error})") from None
    # The key mapping checkpoint -> VAE.state_dict(): model tensors keep their names; the
    # optimizer's Adam moments (`optimizer.<name>.exp_avg[_sq]`) are not part of the model.
    state = torch_tensors(model_tensors(tensors))
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
    tensors, _, _ = read_checkpoint(path)
    names = [f"{s}.{p}" for s in EXAMPLE_NAMES.values() for p in ("weight", "bias")]
    if "encoder.conv.0.weight" in tensors:
        raise CheckpointError(f"{checkpoint_path(path)}: a conv model (--arch conv); the PyTorch examples' VAE is "
                              "an MLP: load this checkpoint with vae_dist.load instead")
    if "encoder.1.weight" in tensors or any(n not in tensors for n in names):
        raise CheckpointError(f"{checkpoint_path(path)}: the PyTorch examples' VAE has exactly one hidden "
                              "layer on each side; load this checkpoint with vae_dist.load instead")
    return {f"{t}.{p}": torch.from_numpy(tensors[f"{s}.{p}"].copy()) for t, s in EXAMPLE_NAMES.items() for p in ("weight", "bias")}
