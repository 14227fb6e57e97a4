"""vae-dist's checkpoints and run folders in Python.

    import vae_dist
    tensors, metadata, config = vae_dist.read_checkpoint("runs/latest")  # numpy arrays, CRC-32 verified
    model = vae_dist.load_numpy("runs/latest")       # numpy encoder/decoder: model.decode(z), model.encode(x)
    model = vae_dist.load("runs/latest")             # the same model as a torch.nn.Module (needs torch)
    metrics = vae_dist.read_metrics("runs/latest")   # metrics.epochs, metrics.steps: lists of dicts
    record = vae_dist.read_run_record("runs/latest") # OUT/run.json as a dict, or None

numpy and safetensors are all it needs; torch only for `load` and `vae_dist.torch_model`
(pip install './python[torch]'). docs/python.md has the details.
"""
import sys

from .checkpoint import (CheckpointError, UnverifiedCheckpointWarning, checkpoint_path, checksum_failures,
                         read_checkpoint, tensor_crc32)
from .config import Config, ModelConfig, TrainingConfig
from .numpy_model import NumpyVAE, load_numpy
from .runs import Metrics, read_metrics, read_run_record

__version__ = "0.1.0"

__all__ = ["CheckpointError", "Config", "Metrics", "ModelConfig", "NumpyVAE", "TrainingConfig",
           "UnverifiedCheckpointWarning", "checkpoint_path", "checksum_failures", "load", "load_numpy",
           "read_checkpoint", "read_metrics", "read_run_record", "tensor_crc32"]


def load(path, verify=True):
    """The checkpoint's model as a torch.nn.Module (vae_dist.torch_model.VAE) in eval mode, with
    `.config` (a Config), `.metadata` and `.path`. `path`: a .safetensors file or a run folder.
    Needs torch: without it, an ImportError says how to install it (or use load_numpy)."""
    try:
        import torch  # noqa: F401  (only to give a clear message when it is missing)
    except ImportError as error:
        raise ImportError(f"vae_dist.load needs PyTorch, which {sys.executable} cannot import ({error}); "
                          "pip install torch (or, from the vae-dist repository, pip install './python[torch]'), "
                          "or use vae_dist.load_numpy for a numpy encoder and decoder") from error
    from .torch_model import load as load_torch
    return load_torch(path, verify=verify)
