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

The conv architecture (config "architecture": "conv", Sources/VAEModel/VAE+Conv.swift) is
computed the same way, convolutions as im2col + one matrix product: the encoder's stride-2
convolutions (weights [out, in, k, k] as torch.nn.Conv2d) with ReLU on the HWC images, the last
map flattened in torch's (C, h, w) order into the dense layers; the decoder's dense layers and
`decoder.fc` (ReLU) to that map, then the transposed convolutions (kernel 4, stride 2, padding 1,
weights [in, out, 4, 4] as torch.nn.ConvTranspose2d; ReLU but after the last), whose output is
the HWC logits or means.
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
        if m.architecture not in ("mlp", "conv"):
            raise CheckpointError(f"config architecture {m.architecture!r} is neither mlp nor conv")
        # conv: (weight name prefix, kernel, padding) per convolution, input side first.
        self._convs = [(f"encoder.conv.{i}", k, p) for i, (_, _, k, p) in enumerate(m.conv_layers)]
        self._deconvs = [f"decoder.deconv.{j}" for j in range(len(self._convs))]
        self._encoder = [f"encoder.{i}" for i in range(hidden)]
        self._decoder = [f"decoder.{i}" for i in range(hidden)] + (["decoder.fc"] if self._convs else [])
        last = [] if self._convs else ["decoder.out"]
        needed = [f"{layer}.{p}" for layer in [c[0] for c in self._convs] + self._encoder + self._decoder
                  + self._deconvs + ["encoder.mu", "encoder.logvar"] + last for p in ("weight", "bias")]
        missing = [n for n in needed if n not in self.tensors]
        if missing:
            raise CheckpointError(f"tensors do not match the config's model (missing {missing})")

    def _linear(self, name, x):  # x [batch, in] -> [batch, out]
        return x @ self.tensors[f"{name}.weight"].T + self.tensors[f"{name}.bias"]

    def _hidden(self, layers, x):  # Linear + ReLU per hidden layer
        for name in layers:
            x = np.maximum(self._linear(name, x), np.float32(0))
        return x

    def _conv(self, name, x, kernel, padding):
        """torch.nn.Conv2d(stride 2) + ReLU on NHWC maps x [batch, h, w, in] -> [batch, h', w', out]:
        the patches (im2col, each in (in, ky, kx) order as the weight [out, in, k, k]) times the weight."""
        weight = self.tensors[f"{name}.weight"]
        n, h, w, c = x.shape
        ho, wo = (h + 2 * padding - kernel) // 2 + 1, (w + 2 * padding - kernel) // 2 + 1
        xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
        taps = [xp[:, ky:ky + 2 * ho:2, kx:kx + 2 * wo:2, :] for ky in range(kernel) for kx in range(kernel)]
        cols = np.stack(taps, axis=-1).reshape(n * ho * wo, c * kernel * kernel)  # [positions, (in, ky, kx)]
        out = cols @ weight.reshape(len(weight), -1).T + self.tensors[f"{name}.bias"]
        return np.maximum(out, np.float32(0)).reshape(n, ho, wo, len(weight))

    def _deconv(self, name, x, relu):
        """torch.nn.ConvTranspose2d(kernel 4, stride 2, padding 1) on NHWC maps x [batch, h, w, in]
        -> [batch, 2h, 2w, out]: x times the weight [in, out, 4, 4], each input pixel's 4 x 4 block
        added into the output (col2im), the 1-pixel border cropped."""
        weight = self.tensors[f"{name}.weight"]
        n, h, w, c = x.shape
        out_channels = weight.shape[1]
        cols = (x.reshape(-1, c) @ weight.reshape(c, -1)).reshape(n, h, w, out_channels, 4, 4)
        full = np.zeros((n, 2 * h + 2, 2 * w + 2, out_channels), np.float32)
        for ky in range(4):
            for kx in range(4):
                full[:, ky:ky + 2 * h:2, kx:kx + 2 * w:2, :] += cols[..., ky, kx]
        out = full[:, 1:-1, 1:-1, :] + self.tensors[f"{name}.bias"]
        return np.maximum(out, np.float32(0)) if relu else out

    def encode(self, x):
        """x [batch, H, W] or [batch, D], pixels in [0, 1] -> (mu, logvar), each [batch, latent]."""
        x = np.asarray(x, np.float32)
        h = x.reshape(len(x), -1)
        if self._convs:
            m = self.model
            h = h.reshape(len(x), m.image_height, m.image_width, m.channels)
            for name, kernel, padding in self._convs:
                h = self._conv(name, h, kernel, padding)
            h = h.transpose(0, 3, 1, 2).reshape(len(x), -1)   # flattened as torch does: (C, h, w)
        h = self._hidden(self._encoder, h)
        return self._linear("encoder.mu", h), self._linear("encoder.logvar", h)

    def decode_output(self, z):
        """z [batch, latent] -> the decoder's output [batch, D]: logits (bernoulli) or Gaussian means."""
        z = np.asarray(z, np.float32)
        h = self._hidden(self._decoder, z.reshape(len(z), -1))
        if not self._convs:
            return self._linear("decoder.out", h)
        m, side = self.model, 2 ** len(self._convs)
        h = h.reshape(len(z), m.conv_channels[-1], m.image_height // side, m.image_width // side).transpose(0, 2, 3, 1)
        for j, name in enumerate(self._deconvs):
            h = self._deconv(name, h, relu=j < len(self._deconvs) - 1)
        return h.reshape(len(z), -1)                          # HWC, as the MLP's decoder.out

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
