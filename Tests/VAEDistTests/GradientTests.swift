import Foundation
import Testing
import VAEKernels
import VAEModel

/// The pieces of an independent Double-precision forward pass, per example: the
/// encoder's mu and logvar [batch, latent], z [batch, latent], and -log p(x|z) [batch].
struct ReferenceForward {
    var mu: [Double], logvar: [Double], z: [Double], nll: [Double]
}

/// An independent Double-precision implementation of the VAE's forward pass, written
/// from the math (not from the kernels): the truth the Float model is checked against.
func referenceForward(_ p: [Double], config: ModelConfig, layout: ParameterLayout, x: [Double], eps: [Double], batch: Int) -> ReferenceForward {
    let l = config.latent
    func linear(_ input: [Double], _ v: LinearView, relu: Bool) -> [Double] { referenceLinear(p, input, v, relu: relu, batch: batch) }
    var h = x
    for v in layout.convEncoder { h = referenceConvolution(p, h, v, batch: batch) }
    if let last = layout.convEncoder.last { h = referenceFlatten(h, positions: last.geometry.positions, channels: last.channels, batch: batch) }
    for v in layout.encoder { h = linear(h, v, relu: true) }
    let heads = linear(h, layout.head, relu: false)
    var result = ReferenceForward(mu: [], logvar: [], z: [], nll: [Double](repeating: 0, count: batch))
    for b in 0..<batch {
        for j in 0..<l {
            let mu = heads[b * 2 * l + j], lv = heads[b * 2 * l + l + j]
            result.mu.append(mu)
            result.logvar.append(lv)
            result.z.append(config.autoencoder ? mu : mu + exp(0.5 * lv) * eps[b * l + j])
        }
    }
    result.nll = referenceDecode(p, config: config, layout: layout, x: x, z: result.z, batch: batch)
    return result
}

/// The reference decoder: -log p(x|z) per example [batch] for z [batch, latent] given.
func referenceDecode(_ p: [Double], config: ModelConfig, layout: ParameterLayout, x: [Double], z: [Double], batch: Int) -> [Double] {
    let d = config.inputDimension
    var g = z
    for v in layout.decoder { g = referenceLinear(p, g, v, relu: true, batch: batch) }
    var out: [Double]
    if let output = layout.output {
        out = referenceLinear(p, g, output, relu: false, batch: batch)
    } else {
        // conv: decoder.fc's output is a CHW feature map; transposed convolutions, ReLU but the last.
        let first = layout.convDecoder[0]
        out = referenceUnflatten(g, positions: first.geometry.positions, channels: first.channels, batch: batch)
        for (i, v) in layout.convDecoder.enumerated() {
            out = referenceTransposedConvolution(p, out, v, relu: i < layout.convDecoder.count - 1, batch: batch)
        }
    }
    var nll = [Double](repeating: 0, count: batch)
    for b in 0..<batch {
        for i in 0..<d {
            let t = x[b * d + i], o = out[b * d + i]
            switch config.likelihood {
            case .bernoulli:
                nll[b] += max(o, 0) - o * t + log(1 + exp(-abs(o)))
            case .gaussian:
                let lv = min(max(p[layout.outputLogvar! + i], Double(GaussianLikelihood.logvarRange.lowerBound)),
                             Double(GaussianLikelihood.logvarRange.upperBound))
                nll[b] += 0.5 * (log(2 * Double.pi) + lv + (t - o) * (t - o) * exp(-lv))
            }
        }
    }
    return nll
}

/// torch.nn.Conv2d + ReLU on NHWC images, from the definition: out[n, oy, ox, o] = b[o] +
/// sum over c, ky, kx of W[o, c, ky, kx] * in[n, oy * s - p + ky, ox * s - p + kx, c]; the flat
/// buffer holds W as [o, ky, kx, c] (TensorSpec.channelsLast).
func referenceConvolution(_ p: [Double], _ input: [Double], _ v: ConvView, batch: Int) -> [Double] {
    let g = v.geometry, k = g.kernel
    var out = [Double](repeating: 0, count: batch * g.positions * v.channels)
    for n in 0..<batch {
        for oy in 0..<g.outHeight {
            for ox in 0..<g.outWidth {
                for o in 0..<v.channels {
                    var sum = p[v.bias + o]
                    for c in 0..<g.inChannels {
                        for ky in 0..<k {
                            for kx in 0..<k {
                                let iy = oy * g.stride - g.padding + ky, ix = ox * g.stride - g.padding + kx
                                guard iy >= 0, iy < g.inHeight, ix >= 0, ix < g.inWidth else { continue }
                                sum += p[v.weight + ((o * k + ky) * k + kx) * g.inChannels + c]
                                    * input[((n * g.inHeight + iy) * g.inWidth + ix) * g.inChannels + c]
                            }
                        }
                    }
                    out[((n * g.outHeight + oy) * g.outWidth + ox) * v.channels + o] = max(sum, 0)
                }
            }
        }
    }
    return out
}

/// torch.nn.ConvTranspose2d (weight [in, out, kh, kw], held [in, kh, kw, out]) on NHWC maps, from the definition: each
/// input pixel (iy, ix) adds W[c, o, ky, kx] * in[n, iy, ix, c] to out[n, iy * s - p + ky, ix * s - p + kx, o].
func referenceTransposedConvolution(_ p: [Double], _ input: [Double], _ v: ConvView, relu: Bool, batch: Int) -> [Double] {
    let g = v.geometry, k = g.kernel, outChannels = g.inChannels
    var out = [Double](repeating: 0, count: batch * g.imageSize)
    for n in 0..<batch {
        for i in 0..<(g.inHeight * g.inWidth) { for o in 0..<outChannels { out[(n * g.inHeight * g.inWidth + i) * outChannels + o] = p[v.bias + o] } }
        for iy in 0..<g.outHeight {
            for ix in 0..<g.outWidth {
                for c in 0..<v.channels {
                    let x = input[((n * g.outHeight + iy) * g.outWidth + ix) * v.channels + c]
                    for o in 0..<outChannels {
                        for ky in 0..<k {
                            for kx in 0..<k {
                                let oy = iy * g.stride - g.padding + ky, ox = ix * g.stride - g.padding + kx
                                guard oy >= 0, oy < g.inHeight, ox >= 0, ox < g.inWidth else { continue }
                                out[((n * g.inHeight + oy) * g.inWidth + ox) * outChannels + o] += p[v.weight + ((c * k + ky) * k + kx) * outChannels + o] * x
                            }
                        }
                    }
                }
            }
        }
    }
    return relu ? out.map { max($0, 0) } : out
}

/// NHWC maps [batch, positions, channels] -> torch's flatten order [batch, channels, positions].
func referenceFlatten(_ maps: [Double], positions: Int, channels: Int, batch: Int) -> [Double] {
    var out = maps
    for n in 0..<batch { for q in 0..<positions { for c in 0..<channels { out[(n * channels + c) * positions + q] = maps[(n * positions + q) * channels + c] } } }
    return out
}

func referenceUnflatten(_ flat: [Double], positions: Int, channels: Int, batch: Int) -> [Double] {
    var out = flat
    for n in 0..<batch { for q in 0..<positions { for c in 0..<channels { out[(n * positions + q) * channels + c] = flat[(n * channels + c) * positions + q] } } }
    return out
}

/// input [batch, in] -> [batch, out] through the Linear view `v` of parameters p (ReLU optional).
func referenceLinear(_ p: [Double], _ input: [Double], _ v: LinearView, relu: Bool, batch: Int) -> [Double] {
    var out = [Double](repeating: 0, count: batch * v.outFeatures)
    for b in 0..<batch {
        for o in 0..<v.outFeatures {
            var s = p[v.bias + o]
            for i in 0..<v.inFeatures { s += input[b * v.inFeatures + i] * p[v.weight + o * v.inFeatures + i] }
            out[b * v.outFeatures + o] = relu ? max(s, 0) : s
        }
    }
    return out
}

/// The mean over the batch of recon + beta * KL (the training objective) in Double.
func referenceLoss(_ p: [Double], config: ModelConfig, layout: ParameterLayout, x: [Double], eps: [Double], batch: Int) -> Double {
    let f = referenceForward(p, config: config, layout: layout, x: x, eps: eps, batch: batch)
    var total = f.nll.reduce(0, +)
    if !config.autoencoder {
        for (mu, lv) in zip(f.mu, f.logvar) { total += Double(config.beta) * 0.5 * (mu * mu + exp(lv) - lv - 1) }
    }
    return total / Double(batch)
}

@Suite struct GradientCheck {
    static let configs: [ModelConfig] = [
        ModelConfig(imageHeight: 4, imageWidth: 5, hidden: [7], latent: 3, likelihood: .bernoulli),
        ModelConfig(imageHeight: 4, imageWidth: 5, hidden: [9, 6], latent: 2, likelihood: .gaussian, beta: 4),
        ModelConfig(imageHeight: 3, imageWidth: 3, hidden: [5], latent: 2, likelihood: .bernoulli, autoencoder: true),
    ] + convConfigs

    /// conv: kernels 4 and 2, padding 1 and 0, an odd last map (3 x 5), C = 1 and 3, both likelihoods.
    static let convConfigs: [ModelConfig] = {
        func conv(_ h: Int, _ w: Int, channels: Int, _ convChannels: [Int], hidden: [Int], latent: Int, likelihood: Likelihood,
                  beta: Float = 1, autoencoder: Bool = false) -> ModelConfig {
            var c = ModelConfig(imageHeight: h, imageWidth: w, hidden: hidden, latent: latent, likelihood: likelihood, beta: beta,
                                autoencoder: autoencoder)
            c.channels = channels
            c.architecture = .conv
            c.convChannels = convChannels
            return c
        }
        return [conv(8, 8, channels: 1, [3, 4], hidden: [5], latent: 2, likelihood: .bernoulli),
                conv(6, 10, channels: 3, [2], hidden: [4], latent: 2, likelihood: .gaussian, beta: 4),
                conv(8, 8, channels: 3, [2, 3, 2], hidden: [4, 3], latent: 3, likelihood: .bernoulli, autoencoder: true)]
    }()

    /// Central differences of the Double reference against the model's analytic
    /// gradient, for every parameter of every tensor.
    @Test(arguments: configs)
    func wholeLossMatchesFiniteDifferences(config: ModelConfig) {
        let batch = 3
        let model = VAE(config: config)
        model.initialize(seed: 3)
        let layout = model.layout
        if let lv = layout.outputLogvar {
            for i in 0..<config.inputDimension { model.parameters[lv + i] = Float(i % 3) * 0.3 - 0.3 }
        }
        let x = randomFloats(batch * config.inputDimension, seed: 4).map { ($0 + 1) / 2 }
        let eps = randomFloats(batch * config.latent, seed: 5, scale: 1.5)
        let workspace = VAEWorkspace(config: config, capacity: batch)
        model.gradients.update(repeating: 0, count: model.parameterCount)
        let scale = 1 / Float(batch)
        model.forward(workspace, x: x, eps: eps, batch: batch, lossScale: scale)
        model.backward(workspace, x: x, eps: eps, batch: batch, lossScale: scale)
        let analytic = Array(UnsafeBufferPointer(start: model.gradients, count: model.parameterCount))
        var p = (0..<model.parameterCount).map { Double(model.parameters[$0]) }
        let xd = x.map(Double.init), ed = eps.map(Double.init)
        // The forward pass agrees with the reference.
        let modelLoss = (0..<batch).reduce(0.0) { $0 + Double(workspace.recon[$1]) + Double(config.beta) * Double(workspace.kl[$1]) } / Double(batch)
        expectClose(modelLoss, referenceLoss(p, config: config, layout: layout, x: xd, eps: ed, batch: batch), rtol: 1e-5, atol: 1e-5, "loss")
        for tensor in layout.tensors {
            var worst = 0.0
            for i in tensor.offset..<(tensor.offset + tensor.count) {
                let h = 1e-6, saved = p[i]
                p[i] = saved + h
                let up = referenceLoss(p, config: config, layout: layout, x: xd, eps: ed, batch: batch)
                p[i] = saved - h
                let down = referenceLoss(p, config: config, layout: layout, x: xd, eps: ed, batch: batch)
                p[i] = saved
                let numeric = (up - down) / (2 * h)
                worst = max(worst, abs(numeric - Double(analytic[i])) / (1e-3 + abs(numeric)))
            }
            #expect(worst < 2e-3, "\(tensor.name): worst relative gradient error \(worst)")
        }
    }

    /// The first micro-batch of a step writes the gradient over (`accumulate: false`) instead of
    /// zeroing it and adding: every element must be written, with the same bits, whatever the
    /// buffer held (NaN here), on one thread and on two (the layers then cut the work).
    @Test(arguments: configs + [ModelConfig(imageHeight: 28, imageWidth: 28, hidden: [400], latent: 20, likelihood: .bernoulli),
                                ModelConfig(imageHeight: 28, imageWidth: 28, hidden: [400], latent: 20, likelihood: .gaussian)])
    func overwritingEqualsZeroingThenAccumulating(config: ModelConfig) {
        let batch = 64
        let model = VAE(config: config)
        model.initialize(seed: 3)
        let x = randomFloats(batch * config.inputDimension, seed: 4).map { ($0 + 1) / 2 }
        let eps = randomFloats(batch * config.latent, seed: 5)
        let workspace = VAEWorkspace(config: config, capacity: batch)
        func gradient(threads: Int, accumulate: Bool) -> [Float] {
            model.threads = KernelThreads(threads: threads)
            if accumulate { model.gradients.update(repeating: 0, count: model.parameterCount) } else { model.gradients.update(repeating: .nan, count: model.parameterCount) }
            model.forward(workspace, x: x, eps: eps, batch: batch, lossScale: 1 / Float(batch), accumulate: accumulate)
            model.backward(workspace, x: x, eps: eps, batch: batch, lossScale: 1 / Float(batch), accumulate: accumulate)
            return Array(UnsafeBufferPointer(start: model.gradients, count: model.parameterCount))
        }
        let reference = gradient(threads: 1, accumulate: true)
        #expect(reference.allSatisfy { $0.isFinite })
        expectIdentical(gradient(threads: 1, accumulate: false), reference, "1 thread")
        expectIdentical(gradient(threads: 2, accumulate: false), reference, "2 threads")
    }
}

@Suite struct KLDivergenceTests {
    /// KL(N(mu, sigma^2) || N(0, 1)) = E_q[log q(z) - log p(z)], estimated by Monte Carlo.
    @Test func closedFormMatchesMonteCarlo() {
        let mu: [Float] = [0.7, -1.2, 0.0], logvar: [Float] = [-0.5, 0.4, 1.1]
        var kl: Float = 0
        klForward(kl: &kl, mu: mu, logvar: logvar, rows: 1, latent: 3, stride: 3)
        let n = 400_000
        var eps = [Float](repeating: 0, count: n)
        fillNormal(&eps, count: n, generator: Philox4x32(seed: 9), stream: .evaluation, epoch: 0, index: 0)
        var sum = 0.0, sumSq = 0.0
        for s in 0..<(n / 3) {
            var term = 0.0
            for j in 0..<3 {
                let e = Double(eps[s * 3 + j]), sigma = exp(0.5 * Double(logvar[j]))
                let z = Double(mu[j]) + sigma * e
                term += (-0.5 * e * e - log(sigma)) - (-0.5 * z * z)  // log q - log p (the 2 pi terms cancel)
            }
            sum += term; sumSq += term * term
        }
        let count = Double(n / 3)
        let mean = sum / count, standardError = ((sumSq / count - mean * mean) / count).squareRoot()
        #expect(abs(mean - Double(kl)) < 4 * standardError, "closed form \(kl) vs Monte Carlo \(mean) +- \(standardError)")
    }

    @Test func derivatives() {
        let mu: [Float] = [0.7, -1.2], logvar: [Float] = [-0.5, 0.4]
        var dmu = [Float](repeating: 0, count: 2), dlogvar = dmu
        klBackward(dmu: &dmu, dlogvar: &dlogvar, mu: mu, logvar: logvar, rows: 1, latent: 2, stride: 2, scale: 1)
        expectClose(dmu, mu, rtol: 0, atol: 0, "dKL/dmu = mu")
        // dKL/dsigma = dKL/dlogvar * dlogvar/dsigma = dKL/dlogvar * 2 / sigma = sigma - 1/sigma
        for j in 0..<2 {
            let sigma = exp(0.5 * logvar[j])
            expectClose(Double(dlogvar[j] * 2 / sigma), Double(sigma - 1 / sigma), rtol: 1e-5, atol: 1e-6, "dKL/dsigma")
        }
    }

    @Test func reparameterizationGradients() {
        // z = mu + exp(0.5 lv) eps: dz/dmu = 1, dz/dlv = 0.5 sigma eps.
        let mu: [Float] = [0.3], logvar: [Float] = [0.8], eps: [Float] = [-1.4]
        var z: [Float] = [0]
        reparameterizeForward(z: &z, mu: mu, logvar: logvar, eps: eps, rows: 1, latent: 1, stride: 1)
        expectClose(z, [0.3 + exp(0.4) * -1.4], rtol: 1e-6, atol: 0, "z")
        var dmu: [Float] = [0], dlv: [Float] = [0]
        reparameterizeBackward(dmu: &dmu, dlogvar: &dlv, dz: [2], logvar: logvar, eps: eps, rows: 1, latent: 1, stride: 1)
        expectClose(dmu, [2], rtol: 0, atol: 0, "dmu")
        expectClose(dlv, [2 * 0.5 * exp(0.4) * -1.4], rtol: 1e-6, atol: 0, "dlogvar")
    }
}

extension ModelConfig: CustomTestStringConvertible {
    public var testDescription: String { "\(hidden) latent \(latent) \(likelihood) beta \(beta) ae \(autoencoder)" }
}
