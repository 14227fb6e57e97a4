import VAEKernels

// How a global batch is cut over ranks. Epoch e uses one permutation of the
// training set that depends only on (seed, e); global batch s is
// permutation[s*G ..< (s+1)*G] and rank r takes the r-th contiguous slice of it
// (shardRange: slices differ by at most one example when the rank count does not
// divide G). A last partial global batch is dropped.

public struct EpochPlan: Sendable {
    public let permutation: [Int32]
    public let globalBatchSize: Int
    /// This rank's slice of every global batch.
    public let localRange: Range<Int>
    public var localBatchSize: Int { localRange.count }
    public let rank: Int
    public var steps: Int { permutation.count / globalBatchSize }

    public init(exampleCount: Int, globalBatchSize: Int, rank: Int, worldSize: Int, generator: Philox4x32, epoch: Int) {
        permutation = epochPermutation(count: exampleCount, generator: generator, epoch: epoch)
        self.globalBatchSize = globalBatchSize
        localRange = shardRange(count: globalBatchSize, rank: rank, worldSize: worldSize)
        self.rank = rank
    }

    /// This rank's example indices for global batch `step`.
    public func localIndices(step: Int) -> ArraySlice<Int32> {
        let start = step * globalBatchSize
        return permutation[start + localRange.lowerBound ..< start + localRange.upperBound]
    }
}

/// The slice of 0 ..< count that rank `rank` of `worldSize` evaluates: contiguous,
/// sizes differing by at most one.
public func shardRange(count: Int, rank: Int, worldSize: Int) -> Range<Int> {
    let base = count / worldSize, extra = count % worldSize
    let start = rank * base + min(rank, extra)
    return start ..< start + base + (rank < extra ? 1 : 0)
}

/// Byte b of a packed image as its 8 pixels (bit j of b is pixel j): [256, 8] of 0 or 1.
private let bitsToUnits: [Float] = (0..<2048).map { Float(($0 >> 3) >> ($0 & 7) & 1) }

/// The noise of a batch: eps [rows, latent] of each example, keyed by (stream, epoch, example).
public struct BatchNoise {
    public var eps: UnsafeMutablePointer<Float>
    public var latent: Int
    public var stream: RandomStream
    public var epoch: Int

    public init(eps: UnsafeMutablePointer<Float>, latent: Int, stream: RandomStream, epoch: Int) {
        self.eps = eps
        self.latent = latent
        self.stream = stream
        self.epoch = epoch
    }
}

/// Loads a batch on `threads`: images `indices` (or `first ..< first + rows` when `indices` is
/// nil) into x as `fillBatch` does, and each example's noise. Every row is keyed by its example,
/// so any cut of the rows over threads gives the same bits; and the threads stay awake for the
/// step's first GEMM instead of idling through a serial load.
public func loadBatch(_ x: UnsafeMutablePointer<Float>, noise: BatchNoise?, from images: ImageSet,
                      indices: UnsafeBufferPointer<Int32>?, first: Int = 0, rows: Int,
                      binarize: Bool, generator: Philox4x32, epoch: Int, threads: KernelThreads) {
    threads.forEachRange(rows, alignment: 1, minimum: 16,
                         BatchRows(x: x, noise: noise, images: images, indices: indices?.baseAddress, first: first,
                                   binarize: binarize, generator: generator, epoch: epoch))
}

struct BatchRows: RangeWork {
    let x: UnsafeMutablePointer<Float>
    let noise: BatchNoise?
    let images: ImageSet
    let indices: UnsafePointer<Int32>?
    let first: Int
    let binarize: Bool
    let generator: Philox4x32
    let epoch: Int

    func run(_ rows: Range<Int>, thread: Int) {
        for row in rows {
            let index = indices.map { Int($0[row]) } ?? first + row
            fillImage(x + row * images.pixelsPerImage, from: images, index: index, binarize: binarize,
                      generator: generator, epoch: epoch)
            if let noise {
                fillNormal(noise.eps + row * noise.latent, count: noise.latent, generator: generator,
                           stream: noise.stream, epoch: noise.epoch, index: index)
            }
        }
    }
}

/// Copies images `indices` into out [indices.count, D] as pixel / 255 in [0, 1],
/// or, with `binarize`, as Bernoulli(pixel / 255) draws keyed by (seed, epoch, index).
/// (Concrete, not generic over Collection: an unspecialized generic iterator allocates
/// per element, and this runs in every training step.)
public func fillBatch(_ out: UnsafeMutablePointer<Float>, from images: ImageSet, indices: UnsafeBufferPointer<Int32>,
                      binarize: Bool, generator: Philox4x32, epoch: Int) {
    for (row, index) in indices.enumerated() {
        fillImage(out + row * images.pixelsPerImage, from: images, index: Int(index), binarize: binarize, generator: generator, epoch: epoch)
    }
}

/// The same for the contiguous images `range`.
public func fillBatch(_ out: UnsafeMutablePointer<Float>, from images: ImageSet, range: Range<Int>,
                      binarize: Bool, generator: Philox4x32, epoch: Int) {
    for (row, index) in range.enumerated() {
        fillImage(out + row * images.pixelsPerImage, from: images, index: index, binarize: binarize, generator: generator, epoch: epoch)
    }
}

@inline(__always)
func fillImage(_ row: UnsafeMutablePointer<Float>, from images: ImageSet, index: Int, binarize: Bool,
               generator: Philox4x32, epoch: Int) {
    let d = images.pixelsPerImage
    if let array = images.array {
        array.fill(row, example: images.selection.map { Int($0[index]) } ?? index)
        if binarize { binarizeImage(row, count: d, index: index, generator: generator, epoch: epoch) }
        return
    }
    images.pixels.withUnsafeBufferPointer { pixels in
        if images.pixelFormat == .bits {
            // Binary images: 8 pixels per byte, unpacked per batch (binarizing a 0/1 pixel is the identity).
            bitsToUnits.withUnsafeBufferPointer { table in
                let source = pixels.baseAddress! + index * images.bytesPerImage
                for b in 0..<(d / 8) { (row + 8 * b).update(from: table.baseAddress! + 8 * Int(source[b]), count: 8) }
                for i in (d / 8 * 8)..<d { row[i] = Float(source[i >> 3] >> UInt8(i & 7) & 1) }
            }
            return
        }
        byteToUnit.withUnsafeBufferPointer { table in
            let source = pixels.baseAddress! + index * d
            for i in 0..<d { row[i] = table[Int(source[i])] }
            if binarize { binarizeImage(row, count: d, index: index, generator: generator, epoch: epoch) }
        }
    }
}

/// Replaces each pixel p of row [count] by a Bernoulli(p) draw keyed by (seed, epoch, index).
@inline(__always)
func binarizeImage(_ row: UnsafeMutablePointer<Float>, count d: Int, index: Int, generator: Philox4x32, epoch: Int) {
    var i = 0
    var blockIndex = 0
    while i < d {
        let bits = generator.block(stream: .binarization, epoch: epoch, index: index, block: blockIndex)
        for lane in 0..<4 where i < d {
            row[i] = uniformOpen(bits[lane]) < row[i] ? 1 : 0
            i += 1
        }
        blockIndex += 1
    }
}
