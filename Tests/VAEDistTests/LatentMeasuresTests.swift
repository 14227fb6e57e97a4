import Foundation
import Testing
import VAEData
import VAEDistributed
import VAEKernels
import VAEModel
import VAETraining
import VAEAnalysis

/// MIG, KL per dimension and active units on codes with known answers.
@Suite struct LatentMeasuresTests {
    /// Every combination of factors with `sizes` values (0, 1, ...): [n, sizes.count].
    static func grid(_ sizes: [Int]) -> (factors: [Float], count: Int) {
        let n = sizes.reduce(1, *)
        var factors: [Float] = []
        for i in 0..<n {
            var rest = i
            for size in sizes.reversed() { factors.append(Float(rest % size)); rest /= size }
        }
        // Built y-fastest backwards: reverse each row into factor order.
        var rows: [Float] = []
        for i in 0..<n { rows += factors[(i * sizes.count)..<((i + 1) * sizes.count)].reversed() }
        return (rows, n)
    }

    @Test func aCodeThatCopiesEachFactorScoresOne() {
        // Up to 20 values per factor, unevenly many, codes an affine copy of each factor.
        let sizes = [3, 6, 20, 4]
        let (factors, n) = Self.grid(sizes)
        let codes = (0..<(n * 4)).map { 0.37 * factors[$0] - 1.5 }
        let r = mutualInformationGap(codes: codes, latent: 4, factors: factors, factorCount: 4)
        #expect(abs(r.mig! - 1) < 1e-12)
        #expect(r.perFactor.allSatisfy { abs($0! - 1) < 1e-12 })
        // In another order, with an extra constant dimension: still 1.
        var shuffled: [Float] = []
        for i in 0..<n { shuffled += [codes[i * 4 + 2], 0.25, codes[i * 4], codes[i * 4 + 3], codes[i * 4 + 1]] }
        #expect(abs(mutualInformationGap(codes: shuffled, latent: 5, factors: factors, factorCount: 4).mig! - 1) < 1e-12)
    }

    @Test func aCodeIndependentOfTheFactorsScoresAboutZero() {
        let (factors, n) = Self.grid([3, 6, 10, 8, 8])  // 11,520 examples
        let codes = randomFloats(n * 6, seed: 11)
        let r = mutualInformationGap(codes: codes, latent: 6, factors: factors, factorCount: 5)
        #expect(r.mig! >= 0 && r.mig! < 0.01, "mig \(r.mig!)")
    }

    @Test func aDuplicatedDimensionScoresZeroForItsFactor() {
        let (factors, n) = Self.grid([3, 6, 8])
        var codes: [Float] = []
        for i in 0..<n { codes += [factors[i * 3], factors[i * 3], factors[i * 3 + 1], factors[i * 3 + 2]] }
        let r = mutualInformationGap(codes: codes, latent: 4, factors: factors, factorCount: 3)
        #expect(r.perFactor[0]! == 0 && abs(r.perFactor[1]! - 1) < 1e-12 && abs(r.perFactor[2]! - 1) < 1e-12)
        #expect(abs(r.mig! - 2.0 / 3) < 1e-12)
    }

    @Test func halfTheInformationGivesAHalfGap() {
        // One factor with 4 equally likely values; the code tells only its high bit: I = log 2, H = log 4.
        let factors: [Float] = (0..<400).map { Float($0 % 4) }
        let codes: [Float] = factors.map { $0 >= 2 ? 1 : 0 }
        let r = mutualInformationGap(codes: codes, latent: 1, factors: factors, factorCount: 1)
        #expect(abs(r.mig! - 0.5) < 1e-12)
        // A constant factor has no entropy: no score for it, left out of the mean.
        let two = mutualInformationGap(codes: codes, latent: 1, factors: (0..<400).flatMap { [factors[$0], 7] }, factorCount: 2)
        #expect(two.perFactor[1] == nil && abs(two.mig! - 0.5) < 1e-12)
    }

    @Test func equalWidthBinsAsNumpyHistogramAndDigitize() {
        // 21 values 0 ... 20 over 20 bins of width 1: the bin edges are 0, 1, ..., 19 and
        // np.digitize puts 19 and 20 together in the last bin. A factor that separates
        // {19, 20} from the rest is then fully known from the bins...
        let codes: [Float] = (0...20).map(Float.init)
        let split: [Float] = codes.map { $0 >= 19 ? 1 : 0 }
        #expect(abs(mutualInformationGap(codes: codes, latent: 1, factors: split, factorCount: 1).mig! - 1) < 1e-12)
        // ... but one that separates 20 alone is not (it shares a bin with 19).
        let last: [Float] = codes.map { $0 == 20 ? 1 : 0 }
        #expect(mutualInformationGap(codes: codes, latent: 1, factors: last, factorCount: 1).mig! < 0.9)
    }

    @Test func klPerDimensionAndActiveUnits() {
        // Dimension 0: mu in {-1, 1} (variance 1), logvar 0: KL 0.5. Dimension 1: mu 0.05 or 0.15
        // (variance 0.0025, inactive), logvar log 0.5. Dimension 2: mu 0, logvar 0: KL 0.
        var mu: [Float] = [], logvar: [Float] = []
        for i in 0..<10 {
            mu += [i % 2 == 0 ? -1 : 1, i % 2 == 0 ? 0.05 : 0.15, 0]
            logvar += [0, Float(log(0.5)), 0]
        }
        let images = ImageSet(count: 10, rows: 1, columns: 1, pixels: [UInt8](repeating: 0, count: 10))
        let m = LatentMeasures(PosteriorParameters(latent: 3, count: 10, mu: mu, logvar: logvar), data: images)
        let kl1 = 0.5 * (0.0125 + 0.5 - log(0.5) - 1)  // mean of mu^2 is (0.0025 + 0.0225) / 2
        expectClose(m.klPerDimension[0], 0.5, rtol: 0, atol: 1e-12, "KL of dimension 0")
        expectClose(m.klPerDimension[1], kl1, rtol: 1e-6, atol: 1e-9, "KL of dimension 1")
        #expect(m.klPerDimension[2] == 0 && m.activeUnits == 1 && m.mig == nil)
        #expect(m.jsonFields.map(\.0) == ["kl_per_dimension", "active_units"])
    }

    @Test func migOfTheGatheredMeansOnDSprites() throws {
        let data = try Dataset.load("dsprites:300")
        let model = VAE(config: ModelConfig(imageHeight: 64, imageWidth: 64, hidden: [16], latent: 4))
        model.initialize(seed: 4)
        let posterior = try gatherPosterior(model: model, images: data.test, count: 25, communicator: SingleProcessCommunicator())
        let m = LatentMeasures(posterior, data: data.test)
        #expect(m.jsonFields.map(\.0) == ["kl_per_dimension", "active_units", "mig", "mig_per_factor"] && m.migPerFactor!.count == 5)
        let direct = mutualInformationGap(codes: encodeMeans(model: model, images: data.test, indices: Array(0..<25)), latent: 4,
                                          factors: Array(data.test.factors![0..<125]), factorCount: 5)
        #expect(m.mig == direct.mig, "MIG of the first 25 test images' means and factors")
    }
}
