import Foundation
import VAEKernels

// dSprites (Matthey, Higgins, Hassabis & Lerchner 2017, github.com/deepmind/dsprites-dataset),
// generated in code: every combination of the published factor grid once, 737,280 binary
// 64x64 images of one white shape on black. Nothing is read or downloaded: image i is a pure
// function of its factor index i.
//
// The grid, in the published index order (the last factor varies fastest):
//   shape        3   square, ellipse, heart (stored as 0, 1, 2)
//   scale        6   linspace(0.5, 1, 6)
//   orientation 40   2 pi k / 40, k = 0 ..< 40: [0, 2 pi) as the issue asks. The published file
//                    uses linspace(0, 2 pi, 40), whose first and last angles are the same.
//   position x  32   linspace(0, 1, 32)
//   position y  32   linspace(0, 1, 32)
// (The published color factor has one value and is left out: a constant has no information.)
//
// Rendering: a shape is a region of the unit frame (u right, v up), scaled by 10 px * scale,
// rotated counterclockwise by the orientation about its center, and centered at
// (16.25 + 32 x, 16.25 + 32 y) px from the top-left corner; a pixel is white when its center
// lies in the region. The largest extent (the square's corner, 14.1 px at scale 1) keeps every
// shape inside the frame (2.1 px from its edges at least). Positions step by 1.03 px, scales by
// 1 px, orientations by 9 degrees. The quarter pixel keeps centers off the corners of pixels:
// there the pixel centers lie mirror-symmetrically around the shape, and a small ellipse
// turned by 9 and by 18 degrees covered the same ones (16 pairs at x, y in {0, 1}).
//
// A square turned by 90 degrees (10 orientation steps) and an ellipse turned by 180 degrees
// (20 steps) are the same region, so no renderer can draw them differently: those images are
// rendered from the same angle (k mod 10, k mod 20) and are identical. The set therefore holds
// 430,080 distinct images (heart 245,760 + ellipse 122,880 + square 61,440); every other pair
// of factor combinations differs (Tests/VAEDistTests/DSpritesTests.swift checks all 737,280 in a release build).
//
// Storage: one bit per pixel, 512 bytes per image, 377 MB for the whole set (bytes would be
// 3 GB per rank). The split is fixed: a Philox permutation of the 737,280 indices with a fixed
// seed; its first 73,728 (10%) are the test set, the rest the training set, each in that
// random order. `dsprites:N` takes N/10 test images from the start of the test part and the
// rest from the start of the training part, so a subset never tests on what the full set trains on.

public enum DSprites {
    public static let size = 64
    public static let factorNames = ["shape", "scale", "orientation", "position_x", "position_y"]
    public static let shapeNames = ["square", "ellipse", "heart"]
    /// Values per factor, in index order (shape, scale, orientation, x, y).
    public static let factorSizes = [3, 6, 40, 32, 32]
    public static let count = 737_280
    public static let testCount = 73_728
    public static let splitSeed: UInt64 = 0xD5_9817E5
    public static let bytesPerImage = size * size / 8

    /// The factor indices of image `index` (shape, scale, orientation, x, y).
    public static func factorIndices(_ index: Int) -> [Int] {
        var rest = index
        var out = [Int](repeating: 0, count: 5)
        for f in stride(from: 4, through: 0, by: -1) {
            out[f] = rest % factorSizes[f]
            rest /= factorSizes[f]
        }
        return out
    }

    /// The factor values of image `index`: shape as 0, 1, 2; scale; orientation in radians; x; y.
    public static func factorValues(_ index: Int) -> [Float] {
        let k = factorIndices(index)
        return [Float(k[0]), Float(0.5 + 0.1 * Double(k[1])), orientation(k[2]), Float(Double(k[3]) / 31), Float(Double(k[4]) / 31)]
    }

    static func orientation(_ k: Int) -> Float { Float(2 * Double.pi * Double(k) / 40) }

    /// The full set (`count` nil) or `dsprites:N` (`count` N, 2 ... 737,280); `.testOnly`
    /// renders only the test images.
    public static func generate(count: Int? = nil, splits: DatasetSplits = .all) -> Dataset {
        let permutation = splitPermutation()
        let test, train: ArraySlice<Int32>
        if let n = count {
            let testN = max(n / 10, 1)
            test = permutation[0..<testN]
            train = permutation[testCount..<(testCount + n - testN)]
        } else {
            test = permutation[0..<testCount]
            train = permutation[testCount...]
        }
        let testImages = images(Array(test))
        return Dataset(name: count.map { "dsprites:\($0)" } ?? "dsprites",
                       train: splits == .testOnly ? testImages.empty : images(Array(train)), test: testImages)
    }

    /// The fixed permutation of 0 ..< 737,280 that decides the split.
    public static func splitPermutation() -> [Int32] {
        epochPermutation(count: DSprites.count, generator: Philox4x32(seed: splitSeed), epoch: 0)
    }

    /// Images `indices` of the grid, in that order, rendered in parallel.
    public static func images(_ indices: [Int32]) -> ImageSet {
        let n = indices.count
        var pixels = [UInt8](repeating: 0, count: n * bytesPerImage)
        var labels = [UInt8](repeating: 0, count: n)
        var factors = [Float](repeating: 0, count: n * 5)
        let chunk = 2048
        pixels.withUnsafeMutableBufferPointer { p in
            labels.withUnsafeMutableBufferPointer { l in
                factors.withUnsafeMutableBufferPointer { f in
                    indices.withUnsafeBufferPointer { idx in
                        // Pointers as integers: the closure runs on several threads and each
                        // chunk writes only its own images.
                        let (pixelBase, labelBase, factorBase) = (UInt(bitPattern: p.baseAddress), UInt(bitPattern: l.baseAddress),
                                                                  UInt(bitPattern: f.baseAddress))
                        let indexBase = UInt(bitPattern: idx.baseAddress)
                        DispatchQueue.concurrentPerform(iterations: (n + chunk - 1) / chunk) { c in
                            let pixels = UnsafeMutablePointer<UInt8>(bitPattern: pixelBase)!
                            let labels = UnsafeMutablePointer<UInt8>(bitPattern: labelBase)!
                            let factors = UnsafeMutablePointer<Float>(bitPattern: factorBase)!
                            let indices = UnsafePointer<Int32>(bitPattern: indexBase)!
                            for i in (c * chunk)..<min(n, (c + 1) * chunk) {
                                let index = Int(indices[i])
                                let k = factorIndices(index)
                                labels[i] = UInt8(k[0])
                                for (j, v) in factorValues(index).enumerated() { factors[i * 5 + j] = v }
                                render(into: pixels + i * bytesPerImage, factors: k)
                            }
                        }
                    }
                }
            }
        }
        var set = ImageSet(count: n, rows: size, columns: size, packedBits: pixels, labels: labels,
                           factors: factors, factorNames: factorNames)
        set.discreteFactors = true
        return set
    }

    /// Rasterizes image `factors` (indices) into `image` [512 bytes], one bit per pixel:
    /// pixel p = row * 64 + column is bit p % 8 of byte p / 8 (least significant first).
    static func render(into image: UnsafeMutablePointer<UInt8>, factors k: [Int]) {
        image.initialize(repeating: 0, count: bytesPerImage)
        let shape = k[0]
        let scale = Float(0.5 + 0.1 * Double(k[1]))
        // The shape's own rotational symmetry: 90 degrees for the square, 180 for the ellipse.
        let turn = shape == 0 ? k[2] % 10 : shape == 1 ? k[2] % 20 : k[2]
        let angle = orientation(turn)
        let c = cos(angle), s = sin(angle)
        let unit = 10 * scale  // px per unit of the shape's frame
        let centerX = 16.25 + 32 * Float(Double(k[3]) / 31), centerY = 16.25 + 32 * Float(Double(k[4]) / 31)
        let reach = 1.5 * unit  // beyond every shape's farthest point (square: sqrt(2))
        let rows = max(0, Int((centerY - reach).rounded(.down)))...min(size - 1, Int((centerY + reach).rounded(.up)))
        let columns = max(0, Int((centerX - reach).rounded(.down)))...min(size - 1, Int((centerX + reach).rounded(.up)))
        for row in rows {
            let dyUp = centerY - (Float(row) + 0.5)
            for column in columns {
                let dx = Float(column) + 0.5 - centerX
                // Into the shape's frame: rotate by -angle, divide by the unit.
                let u = (c * dx + s * dyUp) / unit, v = (-s * dx + c * dyUp) / unit
                if inside(shape: shape, u: u, v: v) {
                    let p = row * size + column
                    image[p >> 3] |= UInt8(1) << UInt8(p & 7)
                }
            }
        }
    }

    /// The shapes in their unit frame: a square of side 2, an ellipse with semi-axes 1.2 and
    /// 0.6, and the heart curve (x^2 + y^2 - 1)^3 <= x^2 y^3 (2.28 wide, 2.24 tall), shifted so
    /// its bounding box is centered on the origin.
    @inline(__always)
    static func inside(shape: Int, u: Float, v: Float) -> Bool {
        switch shape {
        case 0: return abs(u) <= 1 && abs(v) <= 1
        case 1: return (u * u) / 1.44 + (v * v) / 0.36 <= 1
        default:
            let y = v + 0.118
            let r = u * u + y * y - 1
            return r * r * r <= u * u * y * y * y
        }
    }
}
