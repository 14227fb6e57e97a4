import Foundation
import Testing
import VAEData
import VAEKernels

/// dSprites generated in code: the published grid, known renders, the split, packed pixels.
@Suite struct DSpritesTests {
    /// The index of a factor combination in the published order (y fastest).
    static func index(_ k: [Int]) -> Int { (((k[0] * 6 + k[1]) * 40 + k[2]) * 32 + k[3]) * 32 + k[4] }

    /// Image `k` (factor indices) as 64x64 booleans, row-major.
    static func render(_ k: [Int]) -> [Bool] {
        let set = DSprites.images([Int32(index(k))])
        var floats = [Float](repeating: -1, count: 4096)
        [Int32(0)].withUnsafeBufferPointer { fillBatch(&floats, from: set, indices: $0, binarize: false, generator: Philox4x32(seed: 0), epoch: 0) }
        #expect(floats.allSatisfy { $0 == 0 || $0 == 1 }, "pixels are 0 or 1")
        return floats.map { $0 == 1 }
    }

    /// (ink, first row, last row, first column, last column) of an image.
    static func extent(_ image: [Bool]) -> (ink: Int, rows: ClosedRange<Int>, columns: ClosedRange<Int>) {
        let on = image.indices.filter { image[$0] }
        let rows = on.map { $0 / 64 }, columns = on.map { $0 % 64 }
        return (on.count, rows.min()!...rows.max()!, columns.min()!...columns.max()!)
    }

    @Test func theGridIsThePublishedOne() {
        #expect(DSprites.factorSizes.reduce(1, *) == DSprites.count && DSprites.count == 737_280)
        #expect(DSprites.factorIndices(0) == [0, 0, 0, 0, 0])
        #expect(DSprites.factorIndices(DSprites.count - 1) == [2, 5, 39, 31, 31])
        #expect(DSprites.factorIndices(Self.index([1, 4, 17, 9, 30])) == [1, 4, 17, 9, 30])
        #expect(DSprites.factorIndices(1) == [0, 0, 0, 0, 1], "position y varies fastest")
        let last = DSprites.factorValues(DSprites.count - 1)
        #expect(last == [2, 1, Float(2 * Double.pi * 39 / 40), 1, 1])
        let scales = (0..<6).map { DSprites.factorValues(Self.index([0, $0, 0, 0, 0]))[1] }
        expectClose(scales, [0.5, 0.6, 0.7, 0.8, 0.9, 1.0], rtol: 0, atol: 1e-7, "scale = linspace(0.5, 1, 6)")
        let orientations = (0..<40).map { DSprites.factorValues(Self.index([2, 0, $0, 0, 0]))[2] }
        #expect(orientations.first == 0 && orientations.last! < Float(2 * Double.pi) && orientations == orientations.sorted())
        let xs = (0..<32).map { DSprites.factorValues(Self.index([0, 0, 0, $0, 0]))[3] }
        expectClose(xs, (0..<32).map { Float($0) / 31 }, rtol: 0, atol: 1e-7, "x = linspace(0, 1, 32)")
    }

    @Test func knownFactorCombinationsRenderWhereAndHowLargeTheyShould() {
        // A square of scale 1 (20 px) at x = 0 (center 16.25 px), y = 1 (48.25 px): columns 6 ... 25, rows 38 ... 57.
        let square = Self.extent(Self.render([0, 5, 0, 0, 31]))
        #expect(square.ink == 400 && square.columns == 6...25 && square.rows == 38...57)
        // Scale 0.5: 10 px, same center.
        let small = Self.extent(Self.render([0, 0, 0, 0, 31]))
        #expect(small.ink == 100 && small.columns == 11...20 && small.rows == 43...52)
        // An ellipse of scale 0.5 (semi-axes 6 and 3 px) at x = 1 (48.25 px), y = 0 (16.25 px): wide ...
        let ellipse = Self.extent(Self.render([1, 0, 0, 31, 0]))
        #expect(ellipse.columns == 42...53 && ellipse.rows == 13...18 && (50...64).contains(ellipse.ink))
        // ... and tall when turned by 90 degrees (10 steps).
        let turned = Self.extent(Self.render([1, 0, 10, 31, 0]))
        #expect(turned.columns == 45...50 && turned.rows == 10...21 && abs(turned.ink - ellipse.ink) <= 4)
        // A heart at the center, upright: lobes on top (more ink above its middle), the tip below;
        // upside down at 180 degrees (20 steps).
        for (orientation, lobesUp) in [(0, true), (20, false)] {
            let heart = Self.render([2, 5, orientation, 15, 15])
            let e = Self.extent(heart)
            let middle = (e.rows.lowerBound + e.rows.upperBound + 1) / 2
            let above = (e.rows.lowerBound..<middle).reduce(0) { sum, r in sum + (0..<64).filter { heart[r * 64 + $0] }.count }
            let below = e.ink - above
            #expect((above > below + 40) == lobesUp && (below > above + 40) == !lobesUp, "heart orientation \(orientation): \(above) above, \(below) below")
            #expect(e.rows.count >= 21 && e.rows.count <= 24 && e.columns.count >= 22 && e.columns.count <= 24)
        }
        // Every shape stays inside the frame at the extreme positions, largest scale, any angle.
        for shape in 0..<3 {
            for orientation in [0, 5, 7] {
                for (x, y) in [(0, 0), (31, 31)] {
                    let e = Self.extent(Self.render([shape, 5, orientation, x, y]))
                    #expect(e.rows.lowerBound >= 1 && e.rows.upperBound <= 62 && e.columns.lowerBound >= 1 && e.columns.upperBound <= 62)
                }
            }
        }
        // The square's 90-degree and the ellipse's 180-degree symmetry give identical images.
        #expect(Self.render([0, 3, 4, 7, 9]) == Self.render([0, 3, 14, 7, 9]))
        #expect(Self.render([1, 3, 4, 7, 9]) == Self.render([1, 3, 24, 7, 9]))
        #expect(Self.render([1, 3, 4, 7, 9]) != Self.render([1, 3, 14, 7, 9]))
        #expect(Self.render([2, 3, 4, 7, 9]) != Self.render([2, 3, 24, 7, 9]))
    }

    @Test func subsetsTakeFixedTestAndTrainingParts() throws {
        let permutation = DSprites.splitPermutation()
        #expect(Set(permutation).count == DSprites.count)
        let data = try Dataset.load("dsprites:1000")
        #expect(data.train.count == 900 && data.test.count == 100 && data.train.rows == 64 && data.train.pixelFormat == .bits)
        #expect(data.train.pixels.count == 900 * 512, "one bit per pixel")
        #expect(data.test.factorNames == DSprites.factorNames && data.test.discreteFactors)
        for i in [0, 57, 99] {
            let k = Int(permutation[i])
            #expect(Array(data.test.factors![(i * 5)..<(i * 5 + 5)]) == DSprites.factorValues(k))
            #expect(data.test.labels![i] == UInt8(DSprites.factorIndices(k)[0]), "label = shape")
        }
        for i in [0, 899] {
            #expect(Array(data.train.factors![(i * 5)..<(i * 5 + 5)]) == DSprites.factorValues(Int(permutation[DSprites.testCount + i])))
        }
        // The same subset every time, and its images are those of the grid.
        let again = try Dataset.load("dsprites:1000")
        expectIdentical(again.train.pixels, data.train.pixels, "dsprites:1000 loaded twice: training pixels")
        expectIdentical(again.test.pixels, data.test.pixels, "dsprites:1000 loaded twice: test pixels")
        let one = DSprites.images([permutation[DSprites.testCount + 5]])
        #expect(Array(data.train.pixels[(5 * 512)..<(6 * 512)]) == one.pixels)
        for bad in ["dsprites:1", "dsprites:737281", "dsprites:x"] {
            #expect { try Dataset.load(bad) } throws: { "\($0)".contains("dsprites:N") }
        }
    }

    /// Every pair of factor combinations gives different images, but for the square's 90-degree
    /// and the ellipse's 180-degree turns, which give the same region: 430,080 distinct images
    /// in the whole grid. All 737,280 in an optimized build (test.sh), positions 0, 1, 2, 15, 30
    /// and 31 in a debug build.
    @Test func imagesAreDistinctUpToTheShapesSymmetries() {
        #if DEBUG
        let positions = [0, 1, 2, 15, 30, 31]
        #else
        let positions = Array(0..<32)
        #endif
        var indices: [Int32] = []
        for shape in 0..<3 { for scale in 0..<6 { for o in 0..<40 { for x in positions { for y in positions {
            indices.append(Int32(Self.index([shape, scale, o, x, y])))
        } } } } }
        let set = DSprites.images(indices)
        var hashOfClass: [Int: UInt64] = [:]
        var consistent = true
        set.pixels.withUnsafeBytes { bytes in
            for (i, index) in indices.enumerated() {
                let hash = fnv1a64Lanes(UnsafeRawBufferPointer(rebasing: bytes[(i * 512)..<((i + 1) * 512)]))
                var k = DSprites.factorIndices(Int(index))
                k[2] %= k[0] == 0 ? 10 : k[0] == 1 ? 20 : 40
                let representative = Self.index(k)
                if let known = hashOfClass[representative] { consistent = consistent && known == hash } else { hashOfClass[representative] = hash }
            }
        }
        let perPosition = 6 * (10 + 20 + 40)
        #expect(indices.count == 3 * 6 * 40 * positions.count * positions.count)
        #expect(consistent, "symmetric turns give identical images")
        #expect(hashOfClass.count == perPosition * positions.count * positions.count)
        #expect(Set(hashOfClass.values).count == hashOfClass.count, "all other combinations differ")
        if positions.count == 32 { #expect(Set(hashOfClass.values).count == 430_080) }
    }

    @Test func packedBitsUnpackToTheSameFloatsAsBytes() {
        // The same binary images as packed bits and as bytes (0 / 255) fill the same batch.
        let packed = DSprites.images([3, 70_000, 400_000, 737_279])
        var bytes = [UInt8](repeating: 0, count: 4 * 4096)
        for p in 0..<(4 * 4096) { bytes[p] = (packed.pixels[p >> 3] >> UInt8(p & 7)) & 1 == 1 ? 255 : 0 }
        let unpacked = ImageSet(count: 4, rows: 64, columns: 64, pixels: bytes)
        var a = [Float](repeating: 0, count: 4 * 4096), b = a, c = a
        let g = Philox4x32(seed: 3)
        [Int32(2), 0, 3, 1].withUnsafeBufferPointer {
            fillBatch(&a, from: packed, indices: $0, binarize: false, generator: g, epoch: 1)
            fillBatch(&b, from: unpacked, indices: $0, binarize: false, generator: g, epoch: 1)
            fillBatch(&c, from: packed, indices: $0, binarize: true, generator: g, epoch: 1)
        }
        #expect(a == b && a == c && a.contains(1) && a.contains(0))
    }
}
