import Foundation

// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011, as in
// cuRAND, JAX and PyTorch's CUDA generator). Every random number is a pure
// function of (seed, stream, epoch, index, block), so an example's noise does not
// depend on which rank draws it, in which order, or whether the run was resumed.

/// What a random number is for: each purpose gets its own independent stream.
public enum RandomStream: UInt32, Sendable {
    case initialization = 1   // parameter init; index = tensor index
    case permutation = 2      // the epoch's shuffle of the training set
    case reparameterization = 3  // eps of a training example; index = example index
    case binarization = 4     // --binarize pixel draws
    case evaluation = 5       // eps of a test example (fixed across epochs)
    case prior = 6            // z ~ N(0, I) for sample grids
    case synthetic = 7        // the synthetic dataset's factors
    case importance = 8       // importance-weighted evaluation
}

public struct Philox4x32: Sendable {
    public let key: SIMD2<UInt32>

    public init(seed: UInt64) {
        key = SIMD2(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
    }

    /// The 10-round Philox bijection of a 128-bit counter under the key.
    @inline(__always)
    public func block(_ counter: SIMD4<UInt32>) -> SIMD4<UInt32> {
        var c = counter
        var k = key
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c[0])
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c[2])
            c = SIMD4(UInt32(truncatingIfNeeded: p1 >> 32) ^ c[1] ^ k[0], UInt32(truncatingIfNeeded: p1),
                      UInt32(truncatingIfNeeded: p0 >> 32) ^ c[3] ^ k[1], UInt32(truncatingIfNeeded: p0))
            k &+= SIMD2(0x9E37_79B9, 0xBB67_AE85)
        }
        return c
    }

    /// Counter layout: (index low 32 bits, block, epoch, stream | index high bits << 8).
    @inline(__always)
    public func block(stream: RandomStream, epoch: Int, index: Int, block: Int) -> SIMD4<UInt32> {
        let i = UInt64(truncatingIfNeeded: index)
        return self.block(SIMD4(UInt32(truncatingIfNeeded: i), UInt32(truncatingIfNeeded: block),
                                UInt32(truncatingIfNeeded: epoch),
                                stream.rawValue | (UInt32(truncatingIfNeeded: i >> 32) << 8)))
    }
}

/// A uniform float in the open interval (0, 1) from 24 random bits.
@inline(__always)
public func uniformOpen(_ bits: UInt32) -> Float {
    (Float(bits >> 8) + 0.5) * (1.0 / 16_777_216.0)
}

/// Fills out[0 ..< count] with N(0, 1) draws for (stream, epoch, index), by
/// Box-Muller on Philox blocks: each block of four 32-bit words gives four normals.
public func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int, generator: Philox4x32,
                       stream: RandomStream, epoch: Int, index: Int) {
    var written = 0
    var blockIndex = 0
    while written < count {
        let bits = generator.block(stream: stream, epoch: epoch, index: index, block: blockIndex)
        let r0 = (-2 * log(uniformOpen(bits[0]))).squareRoot(), t0 = 2 * Float.pi * uniformOpen(bits[1])
        let r1 = (-2 * log(uniformOpen(bits[2]))).squareRoot(), t1 = 2 * Float.pi * uniformOpen(bits[3])
        let values = (r0 * cos(t0), r0 * sin(t0), r1 * cos(t1), r1 * sin(t1))
        if written < count { out[written] = values.0; written += 1 }
        if written < count { out[written] = values.1; written += 1 }
        if written < count { out[written] = values.2; written += 1 }
        if written < count { out[written] = values.3; written += 1 }
        blockIndex += 1
    }
}

/// Fills out[0 ..< count] with U(0, 1) draws for (stream, epoch, index).
public func fillUniform(_ out: UnsafeMutablePointer<Float>, count: Int, generator: Philox4x32,
                        stream: RandomStream, epoch: Int, index: Int) {
    var written = 0
    var blockIndex = 0
    while written < count {
        let bits = generator.block(stream: stream, epoch: epoch, index: index, block: blockIndex)
        for lane in 0..<4 where written < count {
            out[written] = uniformOpen(bits[lane])
            written += 1
        }
        blockIndex += 1
    }
}

/// The permutation of 0 ..< count used for `epoch`: Fisher-Yates driven by Philox,
/// so it depends only on (seed, epoch). Bounded draws use Lemire's multiply-shift
/// on 32 bits (bias below count / 2^32, 1.4e-5 for 60,000 examples).
public func epochPermutation(count: Int, generator: Philox4x32, epoch: Int) -> [Int32] {
    var permutation = [Int32](unsafeUninitializedCapacity: count) { buffer, initialized in
        for i in 0..<count { buffer[i] = Int32(i) }
        initialized = count
    }
    permutation.withUnsafeMutableBufferPointer { p in
        var i = count - 1
        var bits = SIMD4<UInt32>()
        var lane = 4
        var blockIndex = 0
        while i > 0 {
            if lane == 4 {
                bits = generator.block(stream: .permutation, epoch: epoch, index: blockIndex, block: 0)
                blockIndex += 1
                lane = 0
            }
            let j = Int((UInt64(bits[lane]) &* UInt64(i + 1)) >> 32)
            lane += 1
            p.swapAt(i, j)
            i -= 1
        }
    }
    return permutation
}
