import Foundation
import Testing
import VAEData
import VAEKernels
import VAEModel
import VAETraining
import VAEAnalysis

/// The image commands checked by content, not only by size: each grid must hold the
/// decodes of the latents it claims to show.
@Suite struct GenerationTests {
    static let config = ModelConfig(imageHeight: 4, imageWidth: 5, hidden: [9], latent: 3)

    static func model() -> VAE {
        let model = VAE(config: config)
        model.initialize(seed: 21)
        // Non-zero biases so that decodes depend on z in every direction.
        for i in 0..<model.parameterCount { model.parameters[i] += 0.05 * Float(i % 7) - 0.15 }
        return model
    }

    static let images: ImageSet = {
        let pixels = randomFloats(6 * 20, seed: 8).map { UInt8(min(255, max(0, ($0 + 1) * 127.5))) }
        return ImageSet(count: 6, rows: 4, columns: 5, pixels: pixels)
    }()

    static func tile(_ grid: [Float], _ index: Int) -> [Float] { Array(grid[(index * 20)..<((index + 1) * 20)]) }

    static func maxDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? 0 }

    @Test func reconstructionGridShowsInputsAboveTheirDecodedMeans() {
        let model = Self.model()
        let indices = [0, 3, 5]
        let grid = reconstructionGrid(model: model, images: Self.images, indices: indices, columns: 2)
        // Rows: inputs 0, 3 | their reconstructions | input 5, blank | its reconstruction, blank.
        #expect(grid.count == 8 * 20)
        let decoded = decodeLatents(model: model, latents: encodeMeans(model: model, images: Self.images, indices: indices), count: 3)
        for (slot, (row, column)) in [(0, (0, 0)), (1, (0, 1)), (2, (2, 0))] {
            let input = Array(Self.images.pixels[(indices[slot] * 20)..<((indices[slot] + 1) * 20)]).map { Float($0) / 255 }
            expectClose(Self.tile(grid, row * 2 + column), input, "input \(indices[slot])")
            expectClose(Self.tile(grid, (row + 1) * 2 + column), Self.tile(decoded, slot), "reconstruction of \(indices[slot])")
        }
        #expect(Self.tile(grid, 5).allSatisfy { $0 == 0 } && Self.tile(grid, 7).allSatisfy { $0 == 0 }, "blank padding")
    }

    @Test func interpolationRunsBetweenTheDecodedEndPoints() {
        let model = Self.model(), l = Self.config.latent
        let steps = 5
        let grid = interpolationGrid(model: model, images: Self.images, pairs: [(1, 4), (2, 0)], steps: steps)
        for (row, (a, b)) in [(1, 4), (2, 0)].enumerated() {
            let mu = encodeMeans(model: model, images: Self.images, indices: [a, b])
            let ends = decodeLatents(model: model, latents: mu, count: 2)
            expectClose(Self.tile(grid, row * steps), Self.tile(ends, 0), "row \(row) starts at the decode of image \(a)")
            expectClose(Self.tile(grid, row * steps + steps - 1), Self.tile(ends, 1), "row \(row) ends at the decode of image \(b)")
            // The midpoint is the decode of the mean of the two posterior means.
            let middle = (0..<l).map { 0.5 * mu[$0] + 0.5 * mu[l + $0] }
            expectClose(Self.tile(grid, row * steps + 2), decodeLatents(model: model, latents: middle, count: 1), "row \(row) midpoint")
            #expect(Self.maxDifference(Self.tile(grid, row * steps), Self.tile(grid, row * steps + steps - 1)) > 1e-3)
        }
    }

    @Test func traversalRowsSweepOneDimensionThroughTheOrigin() {
        let model = Self.model(), l = Self.config.latent
        let steps = 5
        let grid = traversalGrid(model: model, steps: steps, range: -2...2)
        let origin = decodeLatents(model: model, latents: [Float](repeating: 0, count: l), count: 1)
        for j in 0..<l {
            for s in 0..<steps {
                var z = [Float](repeating: 0, count: l)
                z[j] = -2 + Float(s)
                expectClose(Self.tile(grid, j * steps + s), decodeLatents(model: model, latents: z, count: 1), "dimension \(j), step \(s)")
            }
            expectClose(Self.tile(grid, j * steps + 2), origin, "every row passes through z = 0")
            #expect(Self.maxDifference(Self.tile(grid, j * steps), Self.tile(grid, j * steps + steps - 1)) > 1e-3, "row \(j) varies")
        }
    }

    @Test func priorSamplesAreDecodesOfTheirLatents() {
        let model = Self.model()
        let z = priorLatents(count: 4, latent: Self.config.latent, seed: 3)
        let mean = z.reduce(0, +) / Float(z.count)
        #expect(abs(mean) < 1.5 && Set(z).count == z.count, "distinct normal draws")
        expectClose(samplePrior(model: model, count: 4, seed: 3), decodeLatents(model: model, latents: z, count: 4))
    }
}

@Suite struct BinarizationTests {
    /// --binarize draws each pixel from Bernoulli(pixel / 255): only 0 and 1, a mean equal to
    /// the intensity, fresh draws each epoch, and the same draws for the same (seed, epoch).
    @Test func pixelsAreBernoulliDrawsOfTheIntensity() {
        let levels: [UInt8] = [0, 13, 64, 128, 200, 255]
        let count = 4000, d = levels.count
        let images = ImageSet(count: count, rows: 1, columns: d, pixels: (0..<count).flatMap { _ in levels })
        let generator = Philox4x32(seed: 7)
        let x = allocateAligned(count * d), again = allocateAligned(count * d), other = allocateAligned(count * d)
        defer { for p in [x, again, other] { p.deallocate() } }
        fillBatch(x, from: images, range: 0..<count, binarize: true, generator: generator, epoch: 1)
        fillBatch(again, from: images, range: 0..<count, binarize: true, generator: generator, epoch: 1)
        fillBatch(other, from: images, range: 0..<count, binarize: true, generator: generator, epoch: 2)
        #expect((0..<(count * d)).allSatisfy { x[$0] == 0 || x[$0] == 1 }, "binary pixels")
        #expect(memcmp(x, again, count * d * 4) == 0, "the same (seed, epoch) gives the same draws")
        #expect(memcmp(x, other, count * d * 4) != 0, "another epoch gives other draws")
        for (i, level) in levels.enumerated() {
            let p = Double(level) / 255
            let mean = (0..<count).reduce(0.0) { $0 + Double(x[$1 * d + i]) } / Double(count)
            // 5 standard errors of a Bernoulli mean over 4000 draws (at most 0.04).
            #expect(abs(mean - p) <= 5 * (p * (1 - p) / Double(count)).squareRoot() + 1e-9, "level \(level): mean \(mean)")
        }
        // Without --binarize the pixels are the intensities.
        fillBatch(x, from: images, range: 0..<1, binarize: false, generator: generator, epoch: 1)
        expectClose(Array(UnsafeBufferPointer(start: x, count: d)), levels.map { Float($0) / 255 })
    }
}
