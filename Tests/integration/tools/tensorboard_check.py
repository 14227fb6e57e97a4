"""Reads a vae-dist run folder with the tensorboard package and compares it with metrics.jsonl.

Usage: tensorboard_check.py RUN_DIR EVENT_FILES
Prints one "OK <what>" or "BAD <what>" line per check (Tests/integration/tensorboard_test.sh counts them).
EVENT_FILES is how many events.out.tfevents.* files the folder must hold.

       tensorboard_check.py --records FILE
Prints "OK" or "BAD" and how many whole records FILE holds, BAD when it ends in a torn
record or one that fails its CRC check.
"""
import glob
import io
import json
import math
import os
import sys

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.tensorflow_stub import errors
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New


def report(good, what):
    print(("OK " if good else "BAD ") + what)


def tag(key):
    """The README's rule: train_* -> train/*, test_* -> test/*, anything else -> run/*."""
    for group in ("train", "test"):
        if key.startswith(group + "_"):
            return group + "/" + key[len(group) + 1:]
    return "run/" + key


def flatten(line):
    """A list or object value is one scalar per element: kl_per_dimension/0, mig_per_factor/shape."""
    out = {}
    for key, value in line.items():
        if isinstance(value, list):
            out.update({f"{key}/{i}": v for i, v in enumerate(value)})
        elif isinstance(value, dict):
            out.update({f"{key}/{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def same_float32(expected, actual):
    if expected is None:  # metrics.jsonl writes non-finite numbers as null
        return math.isnan(actual)
    return float(np.float32(expected)) == actual


def main(run, expected_files):
    lines = [flatten(json.loads(line)) for line in open(os.path.join(run, "metrics.jsonl")) if line.strip()]
    files = sorted(glob.glob(os.path.join(run, "events.out.tfevents.*")))
    report(len(files) == expected_files and len(lines) > 0,
           f"{len(files)} event file(s) (want {expected_files}), {len(lines)} metrics lines")

    # Raw records: the loader checks both masked CRCs of every record and stops at the first
    # bad one, so a framing or CRC bug shows up as missing events.
    records, versions = 0, 0
    for path in files:
        events = list(event_file_loader.EventFileLoader(path).Load())
        records += len(events)
        versions += bool(events) and events[0].file_version == "brain.Event:2"
    report(versions == len(files), f"{versions} of {len(files)} event files start with file_version brain.Event:2")
    summaries = sum(1 for path in files for e in event_file_loader.EventFileLoader(path).Load() if e.HasField("summary"))
    report(summaries >= len(lines), f"{records} records read back with valid CRCs, {summaries} summaries")

    accumulator = EventAccumulator(run, size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    # Step rows' scalars (step/*) are checked by `--steps`.
    tags["scalars"] = [t for t in tags["scalars"] if not t.startswith("step/")]
    keys = list(lines[0].keys())
    wanted = {tag(k) for k in keys}
    report(set(tags["scalars"]) == wanted,
           f"scalar tags are the {len(keys)} metrics.jsonl keys"
           + ("" if set(tags["scalars"]) == wanted else f": missing {sorted(wanted - set(tags['scalars']))}, extra {sorted(set(tags['scalars']) - wanted)}"))

    steps = [line["step"] for line in lines]
    wrong, compared = [], 0
    for key in keys:
        if tag(key) not in tags["scalars"]:
            continue
        points = accumulator.Scalars(tag(key))
        if [p.step for p in points] != steps:
            wrong.append(f"{tag(key)} at steps {[p.step for p in points]}, want {steps}")
            continue
        for line, point in zip(lines, points):
            compared += 1
            if not same_float32(line[key], point.value):
                wrong.append(f"{tag(key)} step {point.step}: {point.value} != {line[key]}")
    report(not wrong and compared == len(keys) * len(lines),
           f"{compared} scalars equal their metrics.jsonl values (float32) at steps {steps}"
           + ("" if not wrong else ": " + "; ".join(wrong[:4])))

    bad, decoded_count = [], 0
    for image_tag, folder in (("samples", "samples"), ("reconstructions", "reconstructions")):
        if image_tag not in tags["images"]:
            bad.append(f"no image tag {image_tag}")
            continue
        images = accumulator.Images(image_tag)
        if [i.step for i in images] != steps:
            bad.append(f"{image_tag} at steps {[i.step for i in images]}, want {steps}")
            continue
        for line, image in zip(lines, images):
            decoded = Image.open(io.BytesIO(image.encoded_image_string))
            decoded.load()
            decoded_count += 1
            on_disk = open(os.path.join(run, folder, "epoch-%04d.png" % line["epoch"]), "rb").read()
            if decoded.format != "PNG" or decoded.size != (image.width, image.height) or decoded.mode != "L":
                bad.append(f"{image_tag} epoch {line['epoch']}: {decoded.format} {decoded.mode} {decoded.size}, "
                           f"proto says {image.width}x{image.height}")
            elif image.encoded_image_string != on_disk:
                bad.append(f"{image_tag} epoch {line['epoch']}: differs from {folder}/epoch-%04d.png" % line["epoch"])
    sizes = {t: f"{accumulator.Images(t)[0].width}x{accumulator.Images(t)[0].height}" for t in tags["images"]}
    report(not bad and decoded_count == 2 * len(lines), f"{decoded_count} images {sizes}: grayscale PNGs of the stated size, the same bytes as the epoch's files"
           + ("" if not bad else ": " + "; ".join(bad[:4])))


def step_rows(run, least):
    """steps.jsonl holds at least `least` rows of "kind": "step" (global steps rising), and
    TensorBoard's step/* scalars hold each row's values at its global step."""
    rows = [json.loads(line) for line in open(os.path.join(run, "steps.jsonl")) if line.strip()]
    keys = ["loss", "recon", "kl", "lr", "samples_per_second"]
    shaped = all(r.get("kind") == "step" and all(k in r for k in keys + ["epoch", "step"]) for r in rows)
    rising = all(a["step"] < b["step"] for a, b in zip(rows, rows[1:]))
    report(len(rows) >= least and shaped and rising,
           f"{len(rows)} step rows (want >= {least}), kind/epoch/step/{'/'.join(keys)} in each, global steps rising")
    accumulator = EventAccumulator(run, size_guidance={"scalars": 0})
    accumulator.Reload()
    wrong, compared = [], 0
    for key in keys:
        points = {p.step: p.value for p in accumulator.Scalars("step/" + key)} if "step/" + key in accumulator.Tags()["scalars"] else {}
        for r in rows:
            compared += 1
            if r["step"] not in points or not same_float32(r[key], points[r["step"]]):
                wrong.append(f"step/{key} at {r['step']}: {points.get(r['step'])} != {r[key]}")
    report(rows and not wrong and compared == len(keys) * len(rows),
           f"{compared} step/* scalars equal their steps.jsonl values at the rows' global steps"
           + ("" if not wrong else ": " + "; ".join(wrong[:4])))


def records(path):
    reader, count = PyRecordReader_New(path), 0
    try:
        while True:
            reader.GetNext()
            count += 1
    except errors.OutOfRangeError:
        report(True, f"{count} whole records")
    except errors.DataLossError as error:
        report(False, f"{count} whole records, then {error}")


if __name__ == "__main__":
    if sys.argv[1] == "--records":
        records(sys.argv[2])
    elif sys.argv[1] == "--steps":
        step_rows(sys.argv[2], int(sys.argv[3]))
    else:
        main(sys.argv[1], int(sys.argv[2]))
