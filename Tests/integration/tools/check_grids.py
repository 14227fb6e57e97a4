"""Checks the image grids that vae-dist writes by their content, not only their size.

The grids are 28x28 tiles, 2 pixels of padding, upscaled 2x (Sources/VAEOutputs/PNG.swift);
this reads the PNG with zlib alone (no imaging library) and cuts it into tiles.

  check_grids.py size PNG WIDTH HEIGHT                 silent when it has that size
  check_grids.py reconstruct PNG COLUMNS              inputs above reconstructions
  check_grids.py interpolate PNG STEPS RECONSTRUCT_PNG  rows start and end at the reconstructions
  check_grids.py traverse PNG STEPS                   every row passes through z = 0, rows vary

Prints one line saying what it found; exits 1 when the content is wrong.
"""
import struct
import sys
import zlib

import numpy as np

TILE, PAD, SCALE = 28, 2, 2


def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert (depth, color) == (8, 0), f"{path}: expected 8-bit grayscale"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, width + 1)
    assert (raw[:, 0] == 0).all(), f"{path}: expected filter type 0 on every row"
    return raw[:, 1:].astype(np.float64) / 255


def tiles(image):
    """[rows, columns, 28, 28] in [0, 1]."""
    cell = (TILE + PAD) * SCALE
    rows, columns = (image.shape[0] - PAD * SCALE) // cell, (image.shape[1] - PAD * SCALE) // cell
    out = np.zeros((rows, columns, TILE, TILE))
    for r in range(rows):
        for c in range(columns):
            y, x = PAD * SCALE + r * cell, PAD * SCALE + c * cell
            out[r, c] = image[y:y + TILE * SCALE:SCALE, x:x + TILE * SCALE:SCALE]
    return out


def fail(message):
    print(message)
    sys.exit(1)


def difference(a, b):
    return float(np.abs(a - b).max())


def main():
    kind, path = sys.argv[1], sys.argv[2]
    image = read_png(path)
    if kind == "size":
        width, height = int(sys.argv[3]), int(sys.argv[4])
        if image.shape != (height, width):
            fail(f"{path}: {image.shape[1]}x{image.shape[0]}, expected {width}x{height}")
    elif kind == "reconstruct":
        grid = tiles(image)
        inputs, outputs = grid[0::2].reshape(-1, TILE * TILE), grid[1::2].reshape(-1, TILE * TILE)
        n = len(inputs)
        error = ((outputs[:, None, :] - inputs[None, :, :]) ** 2).mean(axis=2)  # [reconstruction, input]
        own = float(np.diag(error).mean())
        others = float(error[~np.eye(n, dtype=bool)].mean())
        matched = int((error.argmin(axis=1) == np.arange(n)).sum())
        brightness = float(outputs.mean() / max(inputs.mean(), 1e-9))
        if not (own < 0.5 * others and matched >= n // 2 and 0.3 < brightness < 3):
            fail(f"reconstructions do not resemble their inputs: squared error {own:.4f} to their own input, "
                 f"{others:.4f} to the others, {matched}/{n} closest to their own, brightness ratio {brightness:.2f}")
        print(f"each reconstruction is closer to its input ({own:.4f}) than to the others ({others:.4f}); "
              f"{matched}/{n} nearest their own")
    elif kind == "interpolate":
        steps = int(sys.argv[3])
        grid, recon = tiles(image), tiles(read_png(sys.argv[4]))
        assert grid.shape[1] == steps
        reconstructions = recon[1::2].reshape(-1, TILE, TILE)  # test images 0, 1, 2, ... decoded
        for row in range(grid.shape[0]):
            a, b = reconstructions[2 * row], reconstructions[2 * row + 1]
            start, end = difference(grid[row, 0], a), difference(grid[row, -1], b)
            span = difference(grid[row, 0], grid[row, -1])
            middle = min(difference(grid[row, steps // 2], grid[row, 0]), difference(grid[row, steps // 2], grid[row, -1]))
            if start > 1.5 / 255 or end > 1.5 / 255 or span < 0.05 or middle < 0.01:
                fail(f"row {row}: ends differ from the reconstructions of test images {2 * row}, {2 * row + 1} "
                     f"by {start:.3f} and {end:.3f}; the ends differ by {span:.3f}, the middle from the ends by {middle:.3f}")
        print(f"{grid.shape[0]} rows start and end at the decoded test images and change in between")
    elif kind == "traverse":
        steps = int(sys.argv[3])
        assert steps % 2 == 1, "an odd number of steps has z = 0 in the middle"
        grid = tiles(image)
        assert grid.shape[1] == steps
        centre = grid[:, steps // 2]
        spread = difference(centre, centre[0][None])
        varying = [row for row in range(grid.shape[0]) if difference(grid[row, 0], grid[row, -1]) > 0.05]
        if spread > 1.5 / 255 or not varying:
            fail(f"rows at z = 0 differ by {spread:.3f}; rows that vary along their dimension: {varying}")
        print(f"all {grid.shape[0]} rows pass through the same z = 0 decode; rows {varying} vary along their dimension")
    else:
        fail(f"unknown check {kind}")


if __name__ == "__main__":
    main()
