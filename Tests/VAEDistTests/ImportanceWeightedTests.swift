import Foundation
import Testing
import VAEData
import VAEDistributed
import VAEKernels
import VAEModel
import VAETraining
import VAEAnalysis

/// log N(v; mean, variance) in Double, with its constant.
private func logNormal(_ v: Double, mean: Double, variance: Double) -> Double {
    -0.5 * (log(2 * Double.pi) + log(variance) + (v - mean) * (v - mean) / variance)
}

/// Random 8-bit images [count, 4, 5].
private func smallImages(_ count: Int, seed: UInt64) -> ImageSet {
    let pixels = randomFloats(count * 20, seed: seed).map { UInt8(min(255, max(0, ($0 + 1) * 127.5))) }
    return ImageSet(count: count, rows: 4, columns: 5, pixels: pixels)
}

@Suite struct ImportanceWeightedTests {
    static let config = ModelConfig(imageHeight: 4, imageWidth: 5, hidden: [7], latent: 3)

    /// IW_K = log (1/K) sum_k w_k, log w_k = log p(x|z_k) + log N(z_k; 0, I) - log N(z_k; mu, sigma^2),
    /// each density with all its constants, against an independent Double computation from the
    /// same noise draws. K = 1 is the one-sample ELBO; K = 70 spans two decode batches of 64.
    @Test(arguments: [1, 5, 70])
    func matchesTheDoubleReference(samples: Int) {
        let config = Self.config, l = config.latent
        let model = VAE(config: config)
        model.initialize(seed: 11)
        let images = smallImages(3, seed: 4)
        let seed: UInt64 = 9
        let actual = importanceWeightedLogLikelihood(model: model, workspace: VAEWorkspace(config: config, capacity: 64),
                                                     images: images, range: 0..<3, samples: samples, binarize: false, seed: seed)
        let p = (0..<model.parameterCount).map { Double(model.parameters[$0]) }
        let generator = Philox4x32(seed: seed)
        var expected = 0.0
        for example in 0..<3 {
            let x = (0..<20).map { Double(images.pixels[example * 20 + $0]) / 255 }
            var logWeights = [Double]()
            for k in 0..<samples {
                var eps = [Float](repeating: 0, count: l)
                eps.withUnsafeMutableBufferPointer {
                    fillNormal($0.baseAddress!, count: l, generator: generator, stream: .importance, epoch: k, index: example)
                }
                let f = referenceForward(p, config: config, layout: model.layout, x: x, eps: eps.map(Double.init), batch: 1)
                var logWeight = -f.nll[0]
                for j in 0..<l {
                    logWeight += logNormal(f.z[j], mean: 0, variance: 1) - logNormal(f.z[j], mean: f.mu[j], variance: exp(f.logvar[j]))
                }
                logWeights.append(logWeight)
            }
            let top = logWeights.max()!
            expected += top + log(logWeights.map { exp($0 - top) }.reduce(0, +)) - log(Double(samples))
        }
        expectClose(actual, expected, rtol: 2e-6, atol: 1e-4, "IW estimate with K = \(samples)")
    }

    /// When q(z|x) is the prior and the decoder ignores z, every importance weight equals
    /// p(x) exactly, so the estimate is log p(x) in closed form for every K (a dropped
    /// 1/K or a missing term of log q shows as an offset).
    @Test func exactWhenThePosteriorIsThePriorAndTheDecoderIgnoresZ() {
        let config = Self.config
        let model = VAE(config: config)
        model.parameters.update(repeating: 0, count: model.parameterCount)  // mu = 0, logvar = 0, decoder constant
        let bias = randomFloats(20, seed: 5, scale: 2)
        for i in 0..<20 { model.parameters[model.layout.output!.bias + i] = bias[i] }
        let images = smallImages(4, seed: 6)
        var logPx = 0.0  // sum over the images of log Bernoulli(x; sigmoid(bias)), x in [0, 1]
        for n in 0..<4 {
            for i in 0..<20 {
                let t = Double(images.pixels[n * 20 + i]) / 255, o = Double(bias[i])
                logPx -= max(o, 0) - o * t + log(1 + exp(-abs(o)))
            }
        }
        for samples in [1, 7, 100] {
            let actual = importanceWeightedLogLikelihood(model: model, workspace: VAEWorkspace(config: config, capacity: 64),
                                                         images: images, range: 0..<4, samples: samples, binarize: false, seed: 2)
            expectClose(actual, logPx, rtol: 1e-6, atol: 1e-4, "IW estimate with q = p, K = \(samples)")
        }
    }

    /// log p(x) >= IW_K >= IW_1 ~ ELBO: on a trained model more importance samples give a
    /// tighter bound, so the IW negative log-likelihood sits below the NELBO and falls with K.
    @Test func boundTightensWithSamplesOnATrainedModel() throws {
        let out = temporaryDirectory()
        let trainer = try Trainer(options: options(out, data: "synthetic:600", epochs: 2, batch: 30),
                                  model: ModelConfig(hidden: [64], latent: 4), resume: false,
                                  communicator: SingleProcessCommunicator()) { _ in }
        try trainer.run()
        let workspace = VAEWorkspace(config: trainer.modelConfig, capacity: 64)
        let range = 0..<40
        let nelbo = evaluate(model: trainer.model, workspace: workspace, images: trainer.dataset.test, range: range,
                             binarize: false, seed: 1).mean(beta: 1)
        let iw1 = -importanceWeightedLogLikelihood(model: trainer.model, workspace: workspace, images: trainer.dataset.test,
                                                   range: range, samples: 1, binarize: false, seed: 1) / 40
        let iw200 = -importanceWeightedLogLikelihood(model: trainer.model, workspace: workspace, images: trainer.dataset.test,
                                                     range: range, samples: 200, binarize: false, seed: 1) / 40
        #expect(iw200 < iw1, "IW NLL K=200 \(iw200) vs K=1 \(iw1)")
        #expect(iw200 < nelbo.recon + nelbo.kl, "IW NLL \(iw200) vs NELBO \(nelbo.recon + nelbo.kl)")
    }
}
