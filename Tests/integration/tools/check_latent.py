"""Checks vae-dist's latent maps (RGB PNG with tEXt captions) by content, with zlib and numpy.

  check_latent.py map PNG AXES LABELS   AXES: 'latent dimensions' or 'principal components';
                                       LABELS: the number of label colors expected (0: unlabeled,
                                       one color). Checks the size, the caption, that every label
                                       color is in the plot and its legend swatch, and nothing else.
  check_latent.py same PNG PNG          the two pictures are equal up to a few pixels (1 vs N ranks)

The layout (Sources/VAEOutputs/LatentSpace.swift): margin 16, a 480 px plot, a 16 px legend
column of swatches every 24 px; tab10 colors. Prints one line; exits 1 when the content is wrong.
"""
import struct
import sys
import zlib

import numpy as np

MARGIN, PLOT, SWATCH, STEP = 16, 480, 16, 24
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    pos, idat, text, width, height = 8, b"", {}, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert zlib.crc32(data[pos + 4:pos + 8 + length]) == struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0], \
            f"{path}: bad CRC in {kind}"
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert (depth, color) == (8, 2), f"{path}: expected 8-bit RGB, found depth {depth} color type {color}"
        elif kind == b"IDAT":
            idat += body
        elif kind == b"tEXt":
            key, value = body.split(b"\0", 1)
            text[key.decode("latin-1")] = value.decode("latin-1")
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, width * 3 + 1)
    assert (raw[:, 0] == 0).all(), f"{path}: expected filter type 0 on every row"
    return raw[:, 1:].reshape(height, width, 3), text


def colors(region):
    return {tuple(int(c) for c in p) for p in region.reshape(-1, 3)}


def check_map(path, axes, labels):
    image, text = read_png(path)
    height, width, _ = image.shape
    assert width == 3 * MARGIN + PLOT + SWATCH and height == max(2 * MARGIN + PLOT, 2 * MARGIN + labels * STEP), \
        f"size {width}x{height}"
    assert text.get("vae-dist:axes") == axes, f"axes {text.get('vae-dist:axes')!r}, expected {axes!r}"
    caption = text.get("Description", "")
    assert caption.startswith("vae-dist latent map:") and "1 and 2 sigma" in caption, caption
    plot = colors(image[MARGIN:MARGIN + PLOT, MARGIN:MARGIN + PLOT])
    expected = PALETTE[:labels] if labels else PALETTE[:1]
    missing = [c for c in expected if c not in plot]
    assert not missing, f"label colors missing from the plot: {missing}"
    extra = plot - set(expected) - {(255, 255, 255), (210, 210, 210), (0, 0, 0)}
    assert not extra, f"unexpected colors in the plot: {sorted(extra)[:5]}"
    for k in range(labels):
        y = MARGIN + k * STEP + SWATCH // 2
        swatch = tuple(int(c) for c in image[y, 2 * MARGIN + PLOT + SWATCH // 2])
        assert swatch == PALETTE[k], f"legend swatch {k} is {swatch}, expected {PALETTE[k]}"
    if labels == 0:
        assert "no labels: one color" in caption, caption
        assert colors(image[:, 2 * MARGIN + PLOT:]) == {(255, 255, 255)}, "a legend without labels"
    print(f"{width}x{height}, axes: {axes}, {labels or 1} label color(s) in the plot"
          + (f" and the legend in label order" if labels else "") + f", extent {text.get('vae-dist:extent')}")


def check_same(a, b):
    x, _ = read_png(a)
    y, _ = read_png(b)
    assert x.shape == y.shape, f"sizes differ: {x.shape} vs {y.shape}"
    differing = int((x != y).any(axis=2).sum())
    assert differing <= 20, f"{differing} pixels differ"
    print(f"{differing} of {x.shape[0] * x.shape[1]} pixels differ")


if __name__ == "__main__":
    try:
        if sys.argv[1] == "map":
            check_map(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        elif sys.argv[1] == "same":
            check_same(sys.argv[2], sys.argv[3])
        else:
            raise AssertionError(f"unknown check {sys.argv[1]}")
    except AssertionError as error:
        print(f"{sys.argv[1]}: {error}")
        sys.exit(1)
