"""A checkpoint's `config` metadata as dataclasses with snake_case fields.

The checkpoint stores {"model": {...}, "training": {...}} with vae-dist's camelCase names
(Sources/VAEModel/ModelConfig.swift, Sources/VAECheckpoint/TrainingOptions.swift). Here each
key becomes a field (`batchSize` -> `batch_size`, `bucketMB` -> `bucket_mb`) with vae-dist's
default, so an older checkpoint without a newer key reads as vae-dist reads it; a key this
version does not know (a newer vae-dist's option) is kept, unchanged, in the section's `extra`
dict (and unknown top-level sections in `Config.extra`). `to_dict()` gives the JSON form back:
`Config.from_dict(d).to_dict() == d` for any config vae-dist writes.
"""
import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


def _json_key(f):
    """The JSON key of a dataclass field: its metadata "key", else the camelCase of its name."""
    return f.metadata.get("key") or re.sub(r"_([a-z])", lambda m: m.group(1).upper(), f.name)


def _from_json(cls, d):
    if not isinstance(d, dict):
        raise ValueError(f"config section must be a JSON object, got {type(d).__name__}")
    fields = [f for f in dataclasses.fields(cls) if f.name != "extra"]
    keys = {_json_key(f): f.name for f in fields}
    known = {keys[k]: v for k, v in d.items() if k in keys}
    return cls(**known, extra={k: v for k, v in d.items() if k not in keys})


def _to_json(section):
    out = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if f.name == "extra" or (value is None and f.default is None):
            continue  # vae-dist leaves out an option that is off (nil), such as tcBeta
        out[_json_key(f)] = list(value) if isinstance(value, tuple) else value
    out.update(section.extra)
    return out


DEFAULT_CONV_CHANNELS = (32, 32, 64, 64)


@dataclass
class ModelConfig:
    """What the VAE is (ModelConfig.swift): image size, architecture and widths, latent size,
    likelihood, beta. `architecture` is "mlp" (dense layers of `hidden`) or "conv" (stride-2
    convolutions of `conv_channels`, then the dense layers of `hidden`); vae-dist writes
    "architecture" and "convChannels" for conv models only (absent: mlp)."""
    image_height: int = 28
    image_width: int = 28
    hidden: List[int] = field(default_factory=lambda: [400])   # encoder widths, input side first
    latent: int = 20
    likelihood: str = "bernoulli"                              # or "gaussian"
    beta: float = 1.0
    autoencoder: bool = False
    channels: int = 1                                          # 3: colour, pixels interleaved (HWC)
    architecture: str = "mlp"                                  # or "conv"
    conv_channels: List[int] = field(default_factory=lambda: list(DEFAULT_CONV_CHANNELS))
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def input_dimension(self):
        return self.image_height * self.image_width * self.channels

    @property
    def conv_layers(self):
        """conv: the encoder's convolutions as (in_channels, out_channels, kernel, padding), input
        side first (stride 2; kernel 4 padding 1 for the first two, kernel 2 padding 0 after, as
        ModelConfig.convLayers); [] for the MLP."""
        if self.architecture != "conv":
            return []
        layers, c = [], self.channels
        for i, out in enumerate(self.conv_channels):
            kernel = 4 if i < 2 else 2
            layers.append((c, out, kernel, 1 if kernel == 4 else 0))
            c = out
        return layers

    @classmethod
    def from_dict(cls, d):
        return _from_json(cls, d)

    def to_dict(self):
        out = _to_json(self)
        if self.architecture == "mlp":  # as vae-dist writes an MLP's config: without the conv keys
            out.pop("architecture", None)
            out.pop("convChannels", None)
        return out


@dataclass
class TrainingConfig:
    """How the model was trained (TrainingOptions.swift), with vae-dist's defaults."""
    data: str = "/usr/share/datasets/fashion-mnist"
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 1
    binarize: bool = False
    output: str = "runs/latest"
    checkpoint_every: int = 1
    keep_checkpoints: int = 3
    max_bad_steps: int = 10
    check_every: int = 100
    deterministic: bool = False
    shard_optimizer: bool = False
    bucket_mb: float = field(default=1.0, metadata={"key": "bucketMB"})
    grad_compression: str = "none"                             # "none", "bf16" or "fp16" (--grad-compression)
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    clip_grad_norm: float = 0.0
    log_every: int = 0
    threads: int = 0
    kl_warmup: int = 0
    capacity: float = 0.0
    capacity_steps: int = 0
    gamma: float = 1000.0
    free_bits: float = 0.0
    tc_beta: Optional[float] = None
    timeout: float = 300.0
    accumulate: int = 1
    test_data: Optional[str] = None                            # a separate test set (--test-data)
    test_fraction: float = 0.1                                 # held out where the data has no test split
    layout: Optional[str] = None                               # "nhwc" or "nchw" for an ambiguous array
    image_size: Optional[str] = None                           # "HxW" an image folder is resized to (--image-size)
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d):
        return _from_json(cls, d)

    def to_dict(self):
        return _to_json(self)


@dataclass
class Config:
    """A checkpoint's config: `Config.from_json(metadata["config"])`."""
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise ValueError(f"config must be a JSON object, got {type(d).__name__}")
        return cls(model=ModelConfig.from_dict(d.get("model", {})),
                   training=TrainingConfig.from_dict(d.get("training", {})),
                   extra={k: v for k, v in d.items() if k not in ("model", "training")})

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))

    def to_dict(self):
        return {"model": self.model.to_dict(), "training": self.training.to_dict(), **self.extra}
