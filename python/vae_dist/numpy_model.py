"""vae-dist's model in numpy alone (no torch): encode images, decode latents.

    from vae_dist import load_numpy
    model = load_numpy("runs/latest")                  # a run folder or a .safetensors file
    mu, logvar = model.encode(x)                       # x [batch, H, W] or [batch, D], pixels in [0, 1]
    images = model.decode(z)                           # z [batch, latent] -> [batch, H, W] in [0, 1]

The math of Sources/VAEModel/VAE.swift in float32: each MLP layer is x @ W.T + b (weights
[out, in] as in torch.nn.Linear) with ReLU between, the encoder ending in the mu and logvar
heads, the decoder in `decoder.out`; the mean image is sigmoid(logits) for the bernoulli
likelihood and the output clamped to [0, 1] for the gaussian (VAE.meanImages). Only the order
of the float32 sums differs from vae-dist's SIMD kernels, so results agree to rounding.
"""
import numpy as np

from .checkpoint import CheckpointError, model_tensors, read_checkpoint


class NumpyVAE:
    """A checkpoint's encoder and decoder as numpy float32 matrices."""

    def __init__(self, tensors, config):
        """tensors: the checkpoint's {name: array} (Adam moments are ignored); config: a `Config`."""
        self.config = config
        self.model = config.model
        self.tensors = {k: np.asarray(v, np.float32) for k, v in model_tensors(tensors).items()}
        m = self.model
        # (H, W) for gray, (H, W, C) for colour: one image as numpy holds it (HWC).
        self.image_shape = (m.image_height, m.image_width) if m.channels == 1 else (m.image_height, m.image_width, m.channels)
        self.latent = self.model.latent
        hidden = len(self.model.hidden)
        self._encoder = [f"encoder.{i}" for i in range(hidden)]
        self._decoder = [f"decoder.{i}" for i in range(hidden)]
        needed = [f"{layer}.{p}" for layer in self._encoder + self._decoder + ["encoder.mu", "encoder.logvar", "decoder.out"]
                  for p in ("weight", "bias")]
        missing = [n for n in needed if n not in self.tensors]
        if missing:
            raise CheckpointError(f"tensors do not match the config's model (missing {missing})")

    def _linear(self, name, x):  # x [batch, in] -> [batch, out]
        return x @ self.tensors[f"{name}.weight"].T + self.tensors[f"{name}.bias"]

    def _hidden(self, layers, x):  # Linear + ReLU per hidden layer
        for name in layers:
            x = np.maximum(self._linear(name, x), np.float32(0))
        return x

    def encode(self, x):
        """x [batch, H, W] or [batch, D], pixels in [0, 1] -> (mu, logvar), each [batch, latent]."""
        x = np.asarray(x, np.float32)
        h = self._hidden(self._encoder, x.reshape(len(x), -1))
        return self._linear("encoder.mu", h), self._linear("encoder.logvar", h)

    def decode_output(self, z):
        """z [batch, latent] -> the decoder's output [batch, D]: logits (bernoulli) or Gaussian means."""
        z = np.asarray(z, np.float32)
        return self._linear("decoder.out", self._hidden(self._decoder, z.reshape(len(z), -1)))

    def decode(self, z):
        """z [batch, latent] -> mean images [batch, H, W] in [0, 1], as `vae-dist sample` draws them."""
        out = self.decode_output(z)
        if self.model.likelihood == "bernoulli":
            with np.errstate(over="ignore"):      # exp(-v) = inf for v < -88 gives 0, as in Swift
                images = np.float32(1) / (np.float32(1) + np.exp(-out))
        else:
            images = np.clip(out, 0, 1)
        return images.reshape(len(images), *self.image_shape)

    def reconstruct(self, x):
        """x [batch, H, W] or [batch, D] -> decode(mu): the mean reconstruction [batch, H, W]."""
        return self.decode(self.encode(x)[0])


def load_numpy(path, verify=True):
    """The checkpoint's model as a NumpyVAE (`path`: a .safetensors file or a run folder)."""
    tensors, _, config = read_checkpoint(path, verify=verify)
    try:
        return NumpyVAE(tensors, config)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
