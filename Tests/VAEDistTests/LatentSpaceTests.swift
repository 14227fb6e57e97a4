import Foundation
import Testing
import VAEData
import VAEDistributed
import VAEKernels
import VAEModel
import VAETraining
import VAEAnalysis
import VAEOutputs

/// The aggregate posterior's statistics against answers known in closed form.
@Suite struct AggregatePosteriorTests {
    /// KL(N(m, C) || N(0, I)) written out for 2 dimensions: the determinant by hand, no eigenvalues.
    static func kl2(mean m: [Double], covariance c: [Double]) -> Double {
        let det = c[0] * c[3] - c[1] * c[2]
        return 0.5 * (c[0] + c[3] + m[0] * m[0] + m[1] * m[1] - 2 - log(det))
    }

    /// The sample mean and population covariance of 2-D points, written out.
    static func moments2(_ mu: [Float]) -> (mean: [Double], covariance: [Double]) {
        let n = Double(mu.count / 2)
        var m = [0.0, 0.0], c = [0.0, 0.0, 0.0, 0.0]
        for r in 0..<(mu.count / 2) { m[0] += Double(mu[2 * r]) / n; m[1] += Double(mu[2 * r + 1]) / n }
        for r in 0..<(mu.count / 2) {
            let a = Double(mu[2 * r]) - m[0], b = Double(mu[2 * r + 1]) - m[1]
            c[0] += a * a / n; c[1] += a * b / n; c[2] += a * b / n; c[3] += b * b / n
        }
        return (m, c)
    }

    @Test func meansDrawnFromThePriorGiveAnAggregateKLNearZero() {
        let latent = 4, n = 20_000
        let mu = priorLatents(count: n, latent: latent, seed: 5)
        let kl = AggregatePosterior(mu: mu, logvar: nil, latent: latent).klToPrior
        // Sampling error of the moments of 20,000 draws: the expected KL is about d(d+3)/(4N) = 3.5e-4.
        #expect(kl >= 0 && kl < 0.005, "aggregate_kl of N(0, I) draws: \(kl)")
    }

    @Test func meansScaledBy10GiveTheClosedForm() {
        let latent = 2, n = 20_000
        let mu = priorLatents(count: n, latent: latent, seed: 6).map { 10 * $0 }
        let aggregate = AggregatePosterior(mu: mu, logvar: nil, latent: latent)
        let (m, c) = Self.moments2(mu)
        expectClose(aggregate.klToPrior, Self.kl2(mean: m, covariance: c), rtol: 1e-9, "against the 2x2 determinant")
        // N(0, 100 I): 0.5 * d * (100 - 1 - log 100) = 94.395 for d = 2, within the sampling error.
        expectClose(aggregate.klToPrior, 0.5 * 2 * (100 - 1 - log(100.0)), rtol: 0.03, "against N(0, 100 I)")
    }

    /// Four points m +- sqrt(2) L e_k have mean m and covariance L L^T exactly.
    @Test func exactMomentsGiveTheExactKL() {
        let m = [1.0, -1.0]
        let l = [2.0, 0.0, 1.0, 2.0.squareRoot()]  // lower-triangular: C = L L^T = [[4, 2], [2, 3]]
        var mu = [Float]()
        for k in 0..<2 {
            for sign in [1.0, -1.0] {
                mu += [Float(m[0] + sign * 2.0.squareRoot() * l[0 * 2 + k]), Float(m[1] + sign * 2.0.squareRoot() * l[1 * 2 + k])]
            }
        }
        let aggregate = AggregatePosterior(mu: mu, logvar: nil, latent: 2)
        expectClose(aggregate.mean[0], 1, rtol: 1e-6, atol: 1e-6, "m")
        expectClose(aggregate.covariance[1], 2, rtol: 1e-6, atol: 1e-6, "C[0][1]")
        expectClose(aggregate.klToPrior, 0.5 * (7 + 2 - 2 - log(8.0)), rtol: 1e-6, "0.5 (tr C + m'm - d - log det C)")
    }

    /// Codes on a line (an autoencoder collapsed to one direction): a finite KL, with the
    /// documented floor on the vanishing eigenvalue.
    @Test func aSingularCovarianceGivesAFiniteKL() {
        let mu: [Float] = (0..<100).flatMap { i -> [Float] in let t = Float(i) / 10 - 5; return [t, 2 * t] }
        let aggregate = AggregatePosterior(mu: mu, logvar: nil, latent: 2)
        let lambda = aggregate.principalAxes.values
        #expect(abs(lambda[1]) < 1e-9 * lambda[0], "rank 1: \(lambda)")
        let expected = 0.5 * (lambda[0] + lambda[1] + aggregate.mean.reduce(0) { $0 + $1 * $1 } - 2
            - log(lambda[0]) - log(AggregatePosterior.varianceFloor))
        #expect(aggregate.klToPrior.isFinite)
        expectClose(aggregate.klToPrior, expected, rtol: 1e-9, "log det floored at 1e-6 per collapsed direction")
    }

    @Test func posteriorStdMeanAveragesSigmaOverExamplesAndDimensions() {
        // sigma = 0.5 and 2 in dimension 0, 1 and 1 in dimension 1: mean (1.25 + 1) / 2.
        let logvar: [Float] = [Float(log(0.25)), 0, Float(log(4.0)), 0]
        let mu: [Float] = [0, 0, 1, 1]
        expectClose(AggregatePosterior(mu: mu, logvar: logvar, latent: 2).posteriorStdMean, 1.125, rtol: 1e-6)
        #expect(AggregatePosterior(mu: mu, logvar: nil, latent: 2).posteriorStdMean == 0, "an autoencoder has no sigma: 0")
        let posterior = PosteriorParameters(latent: 2, count: 2, mu: mu, logvar: logvar)
        #expect(AggregatePosterior(posterior, autoencoder: true).posteriorStdMean == 0)
        expectClose(AggregatePosterior(posterior, autoencoder: false).posteriorStdMean, 1.125, rtol: 1e-6)
    }
}

/// The Jacobi eigen solver against known answers and an independent reference (power iteration).
@Suite struct SymmetricEigenTests {
    @Test func tridiagonalMatrixHasItsKnownEigenvalues() {
        let e = symmetricEigen([2, 1, 0, 1, 2, 1, 0, 1, 2], dimension: 3)
        expectClose(e.values[0], 2 + 2.0.squareRoot(), rtol: 1e-12)
        expectClose(e.values[1], 2, rtol: 1e-12)
        expectClose(e.values[2], 2 - 2.0.squareRoot(), rtol: 1e-12)
        // The top eigenvector is (1, sqrt 2, 1) / 2.
        for (i, v) in [0.5, 0.5 * 2.0.squareRoot(), 0.5].enumerated() { expectClose(e.vectors[i], v, rtol: 1e-12) }
    }

    /// Top eigenvectors by power iteration with deflation: a method independent of Jacobi.
    static func powerIteration(_ a: [Double], n: Int, count: Int) -> [[Double]] {
        var matrix = a
        var result: [[Double]] = []
        for k in 0..<count {
            var v = (0..<n).map { Double(($0 * 7 + k * 3) % 5) + 1 }
            var lambda = 0.0
            for _ in 0..<5000 {
                var w = [Double](repeating: 0, count: n)
                for i in 0..<n { for j in 0..<n { w[i] += matrix[i * n + j] * v[j] } }
                lambda = (w.reduce(0) { $0 + $1 * $1 }).squareRoot()
                v = w.map { $0 / lambda }
            }
            result.append(v)
            for i in 0..<n { for j in 0..<n { matrix[i * n + j] -= lambda * v[i] * v[j] } }
        }
        return result
    }

    @Test func randomCovarianceOf20DimensionsDecomposesExactly() {
        let n = 20
        let b = randomFloats(n * n, seed: 11).map(Double.init)
        var a = [Double](repeating: 0, count: n * n)  // B B^T + diag(i): symmetric, distinct eigenvalues
        for i in 0..<n { for j in 0..<n { for k in 0..<n { a[i * n + j] += b[i * n + k] * b[j * n + k] } } }
        for i in 0..<n { a[i * n + i] += Double(i) * 0.37 }
        let e = symmetricEigen(a, dimension: n)
        #expect(zip(e.values, e.values.dropFirst()).allSatisfy { $0 >= $1 }, "descending")
        var worst = 0.0
        for k in 0..<n {
            for i in 0..<n {  // A v = lambda v
                var s = 0.0
                for j in 0..<n { s += a[i * n + j] * e.vectors[k * n + j] }
                worst = max(worst, abs(s - e.values[k] * e.vectors[k * n + i]))
            }
            for k2 in 0..<n {  // orthonormal
                let dot = (0..<n).reduce(0.0) { $0 + e.vectors[k * n + $1] * e.vectors[k2 * n + $1] }
                worst = max(worst, abs(dot - (k == k2 ? 1 : 0)))
            }
        }
        #expect(worst < 1e-10, "residual \(worst)")
        let reference = Self.powerIteration(a, n: n, count: 2)
        for k in 0..<2 {
            let dot = (0..<n).reduce(0.0) { $0 + e.vectors[k * n + $1] * reference[k][$1] }
            expectClose(abs(dot), 1, rtol: 1e-8, "eigenvector \(k) against power iteration")
        }
    }
}

/// The latent map and the manifold, by content.
@Suite struct LatentSpaceTests {
    @Test func normalQuantilesInvertTheCDF() {
        expectClose(normalQuantile(0.975), 1.959963984540054, rtol: 1e-12)
        expectClose(normalQuantile(0.5), 0, atol: 1e-14)
        expectClose(normalQuantile(0.025), -1.959963984540054, rtol: 1e-12)
        let q = manifoldQuantiles(steps: 20)
        expectClose(q[0], normalQuantile(0.025), rtol: 1e-12)
        expectClose(q[19], -q[0], rtol: 1e-12)
    }

    static func model(latent: Int) -> VAE {
        let model = VAE(config: ModelConfig(imageHeight: 4, imageWidth: 5, hidden: [9], latent: latent))
        model.initialize(seed: 21)
        for i in 0..<model.parameterCount { model.parameters[i] += 0.05 * Float(i % 7) - 0.15 }
        return model
    }

    static func tile(_ grid: [Float], _ index: Int) -> [Float] { Array(grid[(index * 20)..<((index + 1) * 20)]) }

    @Test func manifoldCornersAreTheDecodesOfTheCornerLatents() {
        let steps = 6
        let q = manifoldQuantiles(steps: steps), lo = Float(q[0]), hi = Float(q[steps - 1])
        // 2 latent dimensions: the axes themselves; top-left is (low z1, high z2).
        let model = Self.model(latent: 2)
        let grid = manifoldGrid(model: model, steps: steps, axes: [[1, 0], [0, 1]])
        #expect(grid.count == steps * steps * 20)
        for (cell, z) in [(0, [lo, hi]), (steps - 1, [hi, hi]), (steps * (steps - 1), [lo, lo]), (steps * steps - 1, [hi, lo])] {
            expectClose(Self.tile(grid, cell), decodeLatents(model: model, latents: z, count: 1), "cell \(cell): z = \(z)")
        }
        #expect(zip(Self.tile(grid, 0), Self.tile(grid, steps * steps - 1)).contains { abs($0 - $1) > 1e-3 }, "corners differ")
        // 3 dimensions: the plane of two given axes.
        let model3 = Self.model(latent: 3)
        let s = 1 / 2.0.squareRoot()
        let axes: [[Double]] = [[s, s, 0], [0, 0, 1]]
        let grid3 = manifoldGrid(model: model3, steps: steps, axes: axes)
        let corner = [lo * Float(s), lo * Float(s), hi]
        expectClose(Self.tile(grid3, 0), decodeLatents(model: model3, latents: corner, count: 1), rtol: 1e-5, atol: 1e-6, "3-D top-left")
        let bottomRight = [hi * Float(s), hi * Float(s), lo]
        expectClose(Self.tile(grid3, steps * steps - 1), decodeLatents(model: model3, latents: bottomRight, count: 1), rtol: 1e-5, atol: 1e-6)
    }

    /// Means with a known dominant plane in 5 dimensions: the latent map's axes are the top two
    /// eigenvectors of their covariance (checked against power iteration), and the points are the
    /// means' dot products with them.
    @Test func principalComponentPathProjectsOnTheTopTwoEigenvectors() {
        let latent = 5, n = 3000
        let scales: [Float] = [0.5, 3, 0.2, 2, 1]
        var mu = priorLatents(count: n, latent: latent, seed: 9)
        for r in 0..<n { for j in 0..<latent { mu[r * latent + j] = mu[r * latent + j] * scales[j] + 0.5 } }
        // Rotate dimensions 1 and 3 by 30 degrees so the axes are not coordinate axes.
        let c = Float(cos(Double.pi / 6)), s = Float(sin(Double.pi / 6))
        for r in 0..<n {
            let a = mu[r * latent + 1], b = mu[r * latent + 3]
            mu[r * latent + 1] = c * a - s * b
            mu[r * latent + 3] = s * a + c * b
        }
        let aggregate = AggregatePosterior(mu: mu, logvar: nil, latent: latent)
        let axes = aggregate.planeAxes
        let reference = SymmetricEigenTests.powerIteration(aggregate.covariance, n: latent, count: 2)
        for k in 0..<2 {
            let dot = (0..<latent).reduce(0.0) { $0 + axes[k][$1] * reference[k][$1] }
            expectClose(abs(dot), 1, rtol: 1e-8, "axis \(k) is the eigenvector of eigenvalue \(k + 1)")
        }
        // The top direction is close to the rotated dimension 1 (scale 3).
        #expect(abs(axes[0][1]) > 0.8 && abs(axes[0][3]) > 0.4, "\(axes[0])")
        let points = projectLatents(mu, latent: latent, axes: axes)
        for r in [0, 17, n - 1] {
            for k in 0..<2 {
                let expected = (0..<latent).reduce(0.0) { $0 + Double(mu[r * latent + $1]) * reference[k][$1] }
                expectClose(abs(points[r * 2 + k]), abs(expected), rtol: 1e-6, atol: 1e-9, "point \(r), component \(k)")
            }
        }
        // Two latent dimensions are drawn as they are.
        #expect(AggregatePosterior(mu: [1, 2, 3, 5], logvar: nil, latent: 2).planeAxes == [[1, 0], [0, 1]])
    }

    @Test func scatterShowsLabelColorsLegendAndPriorCircles() {
        let points: [Double] = [0.5, 0.5, -1.5, 0.2, 1.2, -1.4, 3, 3]
        let labels: [UInt8] = [0, 3, 2, 1]
        let extent = LatentScatter.extent(points: points)
        #expect(abs(extent - 3.15) < 1e-12)
        #expect(LatentScatter.extent(points: points + [.nan, .infinity]) == extent, "non-finite points do not count")
        let image = LatentScatter.draw(points: points, labels: labels, extent: extent)
        #expect(image.width == 3 * LatentScatter.margin + LatentScatter.plotSize + LatentScatter.swatch)
        #expect(image.height == 2 * LatentScatter.margin + LatentScatter.plotSize)
        #expect(image.pixels.count == image.width * image.height * 3)
        for r in 0..<4 {
            let p = LatentScatter.pixel(x: points[2 * r], y: points[2 * r + 1], extent: extent)
            #expect(image.pixel(x: p.x, y: p.y) == LatentScatter.color(label: Int(labels[r])), "point \(r) in the color of label \(labels[r])")
        }
        for k in 0..<4 {
            let corner = LatentScatter.swatchOrigin(k)
            #expect(image.pixel(x: corner.x + 8, y: corner.y + 8) == LatentScatter.color(label: k), "legend swatch \(k) in label order")
        }
        // The circles: at radius 1 and 2 (to the left of the origin, where no point lies), black.
        let origin = LatentScatter.pixel(x: 0, y: 0, extent: extent)
        let pixelsPerUnit = Double(LatentScatter.plotSize - 1) / (2 * extent)
        for sigma in [1.0, 2.0] {
            let radius = Int((sigma * pixelsPerUnit).rounded())
            #expect(image.pixel(x: origin.x - radius, y: origin.y) == [0, 0, 0], "\(sigma)-sigma circle, left")
            #expect(image.pixel(x: origin.x, y: origin.y + radius) == [0, 0, 0], "\(sigma)-sigma circle, below")
            #expect(image.pixel(x: origin.x - radius + 3, y: origin.y + 3) != [0, 0, 0], "\(sigma)-sigma circle is thin")
        }
        // No labels: one color and no legend.
        let plain = LatentScatter.draw(points: points, labels: nil, extent: extent)
        var colors = Set<[UInt8]>()
        for y in 0..<plain.height { for x in 0..<plain.width { colors.insert(plain.pixel(x: x, y: y)) } }
        #expect(colors == [[255, 255, 255], [210, 210, 210], [0, 0, 0], LatentScatter.palette[0]], "\(colors)")
    }

    @Test func legendCoversOnlyTheLabelValuesPresent() {
        // Labels 0, 200 and 255 (a file's "unknown" codes) make 3 swatches, not 256.
        let points: [Double] = [0.5, 0.5, -1.5, 0.2, 1.2, -1.4, -0.4, 1.1]
        let labels: [UInt8] = [255, 0, 200, 0]
        let extent = LatentScatter.extent(points: points)
        let image = LatentScatter.draw(points: points, labels: labels, extent: extent)
        #expect(image.height == 2 * LatentScatter.margin + LatentScatter.plotSize, "the legend fits beside the plot")
        let legend = LabelLegend(labels)
        #expect(legend.values == [0, 200, 255] && legend.isDrawn)
        #expect(legend.caption.contains("swatches for labels 0, 200, 255, top to bottom"), "\(legend.caption)")
        let expected = [0: 2, 1: 0, 2: 1, 3: 0]  // point -> position of its label among the values
        for (r, k) in expected {
            let p = LatentScatter.pixel(x: points[2 * r], y: points[2 * r + 1], extent: extent)
            #expect(image.pixel(x: p.x, y: p.y) == LatentScatter.color(label: k), "point \(r), label \(labels[r])")
        }
        for k in 0..<3 {
            let corner = LatentScatter.swatchOrigin(k)
            #expect(image.pixel(x: corner.x + 8, y: corner.y + 8) == LatentScatter.color(label: k), "swatch \(k)")
        }
        let below = LatentScatter.swatchOrigin(3)
        #expect(image.pixel(x: below.x + 8, y: below.y + 8) == [255, 255, 255], "no fourth swatch")

        // More than 20 distinct labels: no legend at all, and the caption says why.
        let many = (0..<30).map { UInt8($0 * 7) }
        let scattered = (0..<30).flatMap { [Double($0) / 15 - 1, 0.3] }
        let crowded = LatentScatter.draw(points: scattered, labels: many, extent: 2.5)
        #expect(crowded.height == 2 * LatentScatter.margin + LatentScatter.plotSize)
        var legendColumn = Set<[UInt8]>()
        for y in 0..<crowded.height {
            for x in (2 * LatentScatter.margin + LatentScatter.plotSize)..<crowded.width { legendColumn.insert(crowded.pixel(x: x, y: y)) }
        }
        #expect(legendColumn == [[255, 255, 255]], "no swatches: \(legendColumn.count) colors")
        #expect(!LabelLegend(many).isDrawn)
        #expect(LabelLegend(many).caption.contains("no legend: 30 distinct labels are more than 20"), "\(LabelLegend(many).caption)")
        #expect(LabelLegend((0..<20).map { UInt8($0) }).isDrawn, "20 labels still get a legend")
    }

    @Test func evaluationGathersTheSamePosteriorsAsTheEncoder() throws {
        // The end-of-epoch evaluation takes the posteriors from its own encoder pass: they must be
        // the encoder's, bit for bit, whatever its batch size; with --binarize (random draws as
        // inputs) it encodes the images themselves, as `encode` and `latent-map` do.
        let model = Self.model(latent: 3)
        let pixels = randomFloats(12 * 20, seed: 9).map { UInt8(min(255, max(0, ($0 + 1) * 127.5))) }
        let images = ImageSet(count: 12, rows: 4, columns: 5, pixels: pixels, labels: nil)
        let reference = try gatherPosterior(model: model, images: images, count: 12, communicator: SingleProcessCommunicator())
        for binarize in [false, true] {
            let workspace = VAEWorkspace(config: model.config, capacity: 5)
            let (sums, posterior) = try evaluateDistributed(model: model, workspace: workspace, images: images, binarize: binarize,
                                                            seed: 3, communicator: SingleProcessCommunicator())
            #expect(sums.count == 12)
            #expect(bits(posterior.mu) == bits(reference.mu), "mu, binarize \(binarize)")
            #expect(bits(posterior.logvar) == bits(reference.logvar), "logvar, binarize \(binarize)")
        }
    }

    @Test func latentMapPNGHasItsSizeAndCaption() throws {
        let model = Self.model(latent: 3)
        let pixels = randomFloats(12 * 20, seed: 8).map { UInt8(min(255, max(0, ($0 + 1) * 127.5))) }
        let images = ImageSet(count: 12, rows: 4, columns: 5, pixels: pixels, labels: (0..<12).map { UInt8($0 % 10) })
        let posterior = try gatherPosterior(model: model, images: images, count: 12, communicator: SingleProcessCommunicator())
        // Gathering on one process is the encoder's means and log variances in image order.
        expectClose(posterior.mu, encodeMeans(model: model, images: images, indices: Array(0..<12)), "gathered means")
        let map = latentMap(posterior: posterior, labels: images.labels, autoencoder: false)
        #expect(Array(map.png[16..<24]) == [0, 0, 2, 0x20, 0, 0, 2, 0], "IHDR 544 x 512")
        let text = String(decoding: map.png, as: UTF8.self)
        #expect(text.contains("tEXtvae-dist:axes\u{0}principal components"))
        #expect(text.contains("tEXtDescription\u{0}vae-dist latent map: encoder means of 12 test images"))
        #expect(map.caption.contains("labels 0 to 9") && map.caption.contains("aggregate_kl"))
        // The decoded pixels survive the PNG encoding (zlib stream of filter byte + RGB rows).
        let idat = try #require((0..<(map.png.count - 4)).first { Array(map.png[$0..<($0 + 4)]) == Array("IDAT".utf8) })
        let length = map.png[(idat - 4)..<idat].reduce(0) { $0 << 8 | Int($1) }
        let raw = try inflate(Array(map.png[(idat + 4)..<(idat + 4 + length)]))
        #expect(raw.count == 512 * (544 * 3 + 1))
        #expect(Array(raw[(100 * (544 * 3 + 1) + 1)..<(101 * (544 * 3 + 1))]) == Array(map.image.pixels[(100 * 544 * 3)..<(101 * 544 * 3)]))
    }
}

/// The notes' "broken implementation": z drawn as a sample with no path back to mu and sigma.
/// Then the reconstruction term cannot teach the encoder anything: its gradient with respect to
/// every encoder parameter is exactly zero. With the reparameterization z = mu + sigma * eps the
/// same term has a gradient, and the model's backward pass computes it. Both are measured with the
/// Double reference of the gradient check (GradientTests.swift), by central differences.
@Suite struct ReparameterizationGradientTests {
    @Test func aConstantSampleCutsTheEncoderOffAndTheTrickDoesNot() {
        // beta 0: the reconstruction term alone.
        let config = ModelConfig(imageHeight: 3, imageWidth: 4, hidden: [6], latent: 2, likelihood: .bernoulli, beta: 0)
        let batch = 3
        let model = VAE(config: config)
        model.initialize(seed: 13)
        let layout = model.layout
        let x = randomFloats(batch * config.inputDimension, seed: 14).map { ($0 + 1) / 2 }
        let eps = randomFloats(batch * config.latent, seed: 15, scale: 1.5)
        var p = (0..<model.parameterCount).map { Double(model.parameters[$0]) }
        let xd = x.map(Double.init), ed = eps.map(Double.init)
        // The sample, drawn once from q(z|x) at the current parameters and then held as a constant.
        let sample = referenceForward(p, config: config, layout: layout, x: xd, eps: ed, batch: batch).z
        // Reconstruction with z given: the decoder of parameters p on the constant sample.
        func brokenRecon(_ p: [Double]) -> Double {
            referenceDecode(p, config: config, layout: layout, x: xd, z: sample, batch: batch).reduce(0, +) / Double(batch)
        }
        func reparameterizedRecon(_ p: [Double]) -> Double {
            referenceForward(p, config: config, layout: layout, x: xd, eps: ed, batch: batch).nll.reduce(0, +) / Double(batch)
        }
        #expect(abs(brokenRecon(p) - reparameterizedRecon(p)) < 1e-12, "the same z, the same reconstruction at p")
        let workspace = VAEWorkspace(config: config, capacity: batch)
        model.gradients.update(repeating: 0, count: model.parameterCount)
        model.forward(workspace, x: x, eps: eps, batch: batch, lossScale: 1 / Float(batch))
        model.backward(workspace, x: x, eps: eps, batch: batch, lossScale: 1 / Float(batch))
        let encoderTensors = layout.tensors.filter { $0.name.hasPrefix("encoder.") }
        #expect(encoderTensors.count == 6, "encoder.0, mu and logvar heads: \(encoderTensors.map(\.name))")
        var brokenLargest = 0.0, trickLargest = 0.0, worstMismatch = 0.0, checked = 0
        for tensor in encoderTensors {
            for i in tensor.offset..<(tensor.offset + tensor.count) {
                let h = 1e-6, saved = p[i]
                p[i] = saved + h
                let brokenUp = brokenRecon(p), trickUp = reparameterizedRecon(p)
                p[i] = saved - h
                let brokenDown = brokenRecon(p), trickDown = reparameterizedRecon(p)
                p[i] = saved
                brokenLargest = max(brokenLargest, abs((brokenUp - brokenDown) / (2 * h)))
                let numeric = (trickUp - trickDown) / (2 * h)
                trickLargest = max(trickLargest, abs(numeric))
                worstMismatch = max(worstMismatch, abs(numeric - Double(model.gradients[i])) / (1e-3 + abs(numeric)))
                checked += 1
            }
        }
        #expect(checked == encoderTensors.reduce(0) { $0 + $1.count })
        #expect(brokenLargest == 0, "a constant sample: the encoder's gradient is exactly zero, got \(brokenLargest)")
        #expect(trickLargest > 1e-3, "the reparameterization: the encoder gets a gradient, largest \(trickLargest)")
        #expect(worstMismatch < 2e-3, "the model's backward pass computes it: worst relative error \(worstMismatch)")
        // Both heads are reached: mu through dz, logvar through eps * sigma / 2.
        for head in ["encoder.mu.weight", "encoder.logvar.weight"] {
            let tensor = layout.tensor(named: head)!
            #expect((tensor.offset..<(tensor.offset + tensor.count)).contains { abs(model.gradients[$0]) > 1e-4 }, "\(head) gets a gradient")
        }
    }
}

