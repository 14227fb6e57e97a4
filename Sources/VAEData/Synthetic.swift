import Foundation
import VAEKernels

// A dSprites-like dataset (Matthey et al. 2017) generated in code: one white shape
// on black, 28x28, with five independent factors of variation drawn uniformly:
//   shape (square, ellipse, triangle), scale, rotation, x position, y position.
// The factor values are kept with the images, for disentanglement metrics of
// beta-VAEs. Every image is a pure function of (seed, index).

public enum Synthetic {
    public static let defaultSeed: UInt64 = 0x5EED_DA7A
    public static let size = 28
    public static let factorNames = ["shape", "scale", "rotation", "x", "y"]
    public static let shapeNames = ["square", "ellipse", "triangle"]

    /// Images 0 ..< trainCount train, the next testCount test (`.testOnly`: only those are made).
    public static func generate(trainCount: Int, testCount: Int, seed: UInt64, splits: DatasetSplits = .all) -> Dataset {
        let test = images(trainCount..<(trainCount + testCount), seed: seed)
        let train = splits == .testOnly ? test.empty : images(0..<trainCount, seed: seed)
        return Dataset(name: "synthetic", train: train, test: test)
    }

    /// `count` images with labels = shape index and factors [count, 5] in [0, 1)
    /// (shape as its index).
    public static func images(count: Int, seed: UInt64) -> ImageSet { images(0..<count, seed: seed) }

    /// Images `indices` of the endless sequence the seed defines (image i depends on i only).
    public static func images(_ indices: Range<Int>, seed: UInt64) -> ImageSet {
        let generator = Philox4x32(seed: seed)
        let n = size * size, count = indices.count
        var pixels = [UInt8](repeating: 0, count: count * n)
        var labels = [UInt8](repeating: 0, count: count)
        var factors = [Float](repeating: 0, count: count * 5)
        pixels.withUnsafeMutableBufferPointer { out in
            for (i, index) in indices.enumerated() {
                let a = generator.block(stream: .synthetic, epoch: 0, index: index, block: 0)
                let b = generator.block(stream: .synthetic, epoch: 0, index: index, block: 1)
                let shape = Int((UInt64(a[0]) &* 3) >> 32)
                let scale = uniformOpen(a[1]), rotation = uniformOpen(a[2]), x = uniformOpen(a[3]), y = uniformOpen(b[0])
                labels[i] = UInt8(shape)
                factors[i * 5] = Float(shape)
                factors[i * 5 + 1] = scale
                factors[i * 5 + 2] = rotation
                factors[i * 5 + 3] = x
                factors[i * 5 + 4] = y
                render(into: out.baseAddress! + i * n, shape: shape, scale: scale, rotation: rotation, x: x, y: y)
            }
        }
        return ImageSet(count: count, rows: size, columns: size, pixels: pixels, labels: labels,
                        factors: factors, factorNames: factorNames)
    }

    /// Rasterizes one shape with 3x3 supersampling (anti-aliased edges).
    static func render(into image: UnsafeMutablePointer<UInt8>, shape: Int, scale: Float, rotation: Float, x: Float, y: Float) {
        let halfSize = 3 + 4 * scale                 // 3 ... 7 pixels
        let centerX = 7 + 14 * x, centerY = 7 + 14 * y
        let angle = 2 * Float.pi * rotation
        let c = cos(angle), s = sin(angle)
        let sub = 3
        for row in 0..<size {
            for column in 0..<size {
                var covered = 0
                for sy in 0..<sub {
                    for sx in 0..<sub {
                        let px = Float(column) + (Float(sx) + 0.5) / Float(sub) - centerX
                        let py = Float(row) + (Float(sy) + 0.5) / Float(sub) - centerY
                        // Into the shape's frame: rotate by -angle, divide by the size.
                        let u = (c * px + s * py) / halfSize, v = (-s * px + c * py) / halfSize
                        if inside(shape: shape, u: u, v: v) { covered += 1 }
                    }
                }
                image[row * size + column] = UInt8((covered * 255 + (sub * sub) / 2) / (sub * sub))
            }
        }
    }

    @inline(__always)
    static func inside(shape: Int, u: Float, v: Float) -> Bool {
        switch shape {
        case 0: return abs(u) <= 1 && abs(v) <= 1
        case 1: return u * u + (v * v) / 0.36 <= 1           // ellipse, axes 1 and 0.6
        default: return v <= 0.7 && v >= -1 + 1.889 * abs(u)  // triangle, apex up
        }
    }
}
