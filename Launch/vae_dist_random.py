"""vae-dist's random numbers in numpy, bit for bit: Philox4x32-10 keyed by the seed,
counter (index low 32 bits, block, epoch, stream | index high bits << 8), uniforms in
(0, 1) from 24 bits, normals by Box-Muller (four per block). With them a Python
consumer draws the same noise `vae-dist eval` uses, so its test NELBO agrees with
vae-dist's to float rounding instead of to Monte Carlo noise.
(The Swift side: Sources/VAEKernels/Random.swift, Sources/VAEData/Batches.swift.)
"""
import numpy as np

# RandomStream raw values in Random.swift.
STREAM_BINARIZATION = 4
STREAM_EVALUATION = 5
# The epoch key of a test image's binarization draw (fixed, not per epoch): Evaluation.swift.
TEST_EPOCH_KEY = 0xFFFFFFFF

_MASK = np.uint64(0xFFFFFFFF)
# Swift's Float.pi is pi rounded toward zero (0x1.921fb4p+1), one ulp below np.float32(np.pi).
_TWO_PI = np.float32(2 * float.fromhex("0x1.921fb4p+1"))


def philox_blocks(seed, stream, epoch, index, block):
    """The 10-round Philox bijection; index and block broadcast. Returns 4 uint64 arrays of 32-bit words."""
    index = np.asarray(index, dtype=np.uint64)
    block = np.asarray(block, dtype=np.uint64)
    index, block = np.broadcast_arrays(index, block)
    c0 = index & _MASK
    c1 = block & _MASK
    c2 = np.full(index.shape, np.uint64(epoch) & _MASK)
    c3 = (np.uint64(stream) | ((index >> np.uint64(32)) << np.uint64(8))) & _MASK
    k0, k1 = np.uint64(seed & 0xFFFFFFFF), np.uint64((seed >> 32) & 0xFFFFFFFF)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c0       # 32 x 32 bits: exact in uint64
        p1 = np.uint64(0xCD9E8D57) * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & _MASK,
                          (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & _MASK)
        k0, k1 = (k0 + np.uint64(0x9E3779B9)) & _MASK, (k1 + np.uint64(0xBB67AE85)) & _MASK
    return c0, c1, c2, c3


def uniform_open(bits):
    """(bits >> 8 + 0.5) / 2^24 in float32, rounded as Swift's Float arithmetic rounds it."""
    return ((bits >> np.uint64(8)).astype(np.float32) + np.float32(0.5)) * np.float32(1.0 / 16777216.0)


def normals(seed, stream, epoch, indices, count):
    """[len(indices), count] float32 N(0, 1): vae-dist's fillNormal for each index."""
    indices = np.asarray(indices, dtype=np.uint64)
    blocks = (count + 3) // 4
    words = philox_blocks(seed, stream, epoch, indices[:, None], np.arange(blocks, dtype=np.uint64)[None, :])
    u = [uniform_open(w) for w in words]
    # Float arithmetic as in Swift; log, cos and sin in double then rounded, which matches
    # glibc's logf/cosf/sinf (numpy's float32 versions differ from them by an ulp at times).
    f32 = lambda f, x: f(x.astype(np.float64)).astype(np.float32)
    r0 = np.sqrt(np.float32(-2) * f32(np.log, u[0]))
    r1 = np.sqrt(np.float32(-2) * f32(np.log, u[2]))
    t0, t1 = _TWO_PI * u[1], _TWO_PI * u[3]
    values = np.stack([r0 * f32(np.cos, t0), r0 * f32(np.sin, t0), r1 * f32(np.cos, t1), r1 * f32(np.sin, t1)], axis=-1)
    return values.reshape(len(indices), blocks * 4)[:, :count].astype(np.float32)


def evaluation_noise(seed, first, count, latent):
    """eps [count, latent] of test examples first ..< first + count, as `vae-dist eval` draws it."""
    return normals(seed, STREAM_EVALUATION, 0, np.arange(first, first + count), latent)


def binarize_test_images(seed, first, images):
    """Bernoulli(pixel) draws of test images [n, D] (values in [0, 1]), as vae-dist's --binarize does."""
    n, d = images.shape
    blocks = (d + 3) // 4
    indices = np.arange(first, first + n, dtype=np.uint64)[:, None]
    words = philox_blocks(seed, STREAM_BINARIZATION, TEST_EPOCH_KEY, indices, np.arange(blocks, dtype=np.uint64)[None, :])
    u = np.stack([uniform_open(w) for w in words], axis=-1).reshape(n, blocks * 4)[:, :d]
    return (u < images).astype(np.float32)
