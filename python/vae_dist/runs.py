"""Reading a run folder (`vae-dist train --out DIR`): metrics.jsonl and the run record run.json."""
import json
import os
from typing import Any, Dict, List, NamedTuple


class Metrics(NamedTuple):
    """A run's metrics rows, in file order: `epochs` one per epoch (`epoch`, `step`, `train_loss`,
    `test_nelbo`, ...), `steps` the rows whose `kind` is "step" (empty where none were logged)."""
    epochs: List[Dict[str, Any]]
    steps: List[Dict[str, Any]]


def _jsonl(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                # A run killed mid-write may leave its last line cut short; anything else is damage.
                if not line.endswith("\n"):
                    break
                raise ValueError(f"{path}:{number}: not a JSON object: {line.strip()[:60]}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: not a JSON object: {line.strip()[:60]}")
            rows.append(row)
    return rows


def read_metrics(run):
    """-> Metrics(epochs, steps) of a run folder (its metrics.jsonl) or a metrics .jsonl file.

    Step rows carry `"kind": "step"`, in metrics.jsonl itself or in a steps.jsonl beside it;
    every other row is an epoch row. Raises FileNotFoundError when there is no metrics.jsonl."""
    run = os.fspath(run)
    path = os.path.join(run, "metrics.jsonl") if os.path.isdir(run) else run
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no metrics (give a run folder holding metrics.jsonl, or the file)")
    rows = _jsonl(path)
    steps_file = os.path.join(os.path.dirname(path), "steps.jsonl")
    if os.path.isfile(steps_file):
        rows += _jsonl(steps_file)
    return Metrics(epochs=[r for r in rows if r.get("kind", "epoch") != "step"],
                   steps=[r for r in rows if r.get("kind") == "step"])


def read_run_record(run):
    """The run record (version, commit, command line, options, ranks, threads, hosts, ISA, start
    and end times) as a dict, or None when there is none: `run` is a run folder (its run.json),
    a run.json file, or a checkpoint (its metadata key `run`)."""
    run = os.fspath(run)
    if run.endswith(".safetensors"):
        from safetensors import safe_open
        with safe_open(run, "np") as f:
            text = (f.metadata() or {}).get("run")
        return None if text is None else json.loads(text)
    path = os.path.join(run, "run.json") if os.path.isdir(run) else run
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    if not isinstance(record, dict):
        raise ValueError(f"{path}: a run record is a JSON object, this is a {type(record).__name__}")
    return record
