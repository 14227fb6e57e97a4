"""Reading vae-dist checkpoints with numpy and safetensors (docs/checkpoint-format.md).

    tensors, metadata, config = read_checkpoint("runs/latest")   # or a .safetensors file

Every tensor is checked against the CRC-32 the checkpoint records in its `checksums`
metadata (zlib.crc32 of the tensor's little-endian bytes, 8 lowercase hex digits), as
vae-dist itself checks on load; a file written before checksums loads unverified.
"""
import json
import os
import warnings
import zlib

import numpy as np

from .config import Config

FORMAT = "vae-dist/1"
CHECKSUM_ALGORITHM = "crc32"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the cause."""


class UnverifiedCheckpointWarning(UserWarning):
    """The checkpoint has no checksums (written by an older vae-dist): its tensors are not verified."""


def checkpoint_path(path):
    """A .safetensors file, or a run folder (its checkpoints/latest.safetensors)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoints", "latest.safetensors")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint (give a .safetensors file or a run folder "
                              "holding checkpoints/latest.safetensors)")
    return path


def tensor_crc32(array):
    """The checkpoint's checksum of one tensor: CRC-32 of its little-endian bytes, 8 hex digits."""
    little = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
    return format(zlib.crc32(little.tobytes()), "08x")


def checksum_failures(tensors, metadata):
    """One line per failure (as `vae-dist inspect --verify` reports them), or None when the
    metadata has no checksums to verify; [] when every tensor matches."""
    if "checksums" not in metadata and "checksum_algorithm" not in metadata:
        return None
    algorithm = metadata.get("checksum_algorithm")
    if algorithm != CHECKSUM_ALGORITHM:
        return [f"metadata checksum_algorithm is {algorithm!r}, expected {CHECKSUM_ALGORITHM!r}"]
    try:
        sums = json.loads(metadata.get("checksums", ""))
        if not isinstance(sums, dict):
            raise ValueError
    except ValueError:
        return ["metadata checksums is not a JSON object of tensor name -> 8 hex digits"]
    failures = [f"metadata checksums names tensor {name}, which the file does not hold"
                for name in sorted(set(sums) - set(tensors))]
    for name, array in tensors.items():
        stored = sums.get(name)
        if stored is None:
            failures.append(f"tensor {name} has no checksum")
        elif tensor_crc32(array) != stored:
            failures.append(f"tensor {name} fails its CRC-32 check (stored {stored}, computed "
                            f"{tensor_crc32(array)}): the file is corrupt")
    return failures


def read_checkpoint(path, verify=True):
    """-> (tensors {name: numpy array}, metadata {str: str}, Config) of a vae-dist checkpoint.

    `path`: a .safetensors file or a run folder. The tensors include the Adam moments
    (`optimizer.<name>.exp_avg[_sq]`). With `verify` (the default) every tensor must match its
    CRC-32 checksum: a mismatch raises CheckpointError naming the tensor; a file without
    checksums loads with an UnverifiedCheckpointWarning."""
    from safetensors import safe_open
    path = checkpoint_path(path)
    try:
        with safe_open(path, "np") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as error:  # safetensors raises several types for a malformed file
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a vae-dist checkpoint (metadata format is "
                              f"{metadata.get('format')!r}, expected {FORMAT!r})")
    if verify:
        failures = checksum_failures(tensors, metadata)
        if failures is None:
            warnings.warn(f"{path} has no checksums (written by an older vae-dist); its tensors are not verified",
                          UnverifiedCheckpointWarning, stacklevel=2)
        elif failures:
            raise CheckpointError(f"{path}: {failures[0]}" + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""))
    try:
        config = Config.from_json(metadata["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: metadata config does not describe a vae-dist model ({error!r})") from None
    return tensors, metadata, config


def model_tensors(tensors):
    """The model's tensors: every tensor but the optimizer's Adam moments (`optimizer.*`)."""
    return {name: t for name, t in tensors.items() if not name.startswith("optimizer.")}
