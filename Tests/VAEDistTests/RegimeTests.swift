import Foundation
import Testing
import VAEData
import VAEDistributed
import VAEKernels
import VAEModel
import VAETraining

/// beta-TCVAE's MWS terms per example (mi, tc, dwkl) in Double, written from the formulas of
/// Chen et al. 2018 / vae_quant.py (the whole [B, B, D] table of log q(z_id | x_j), then the
/// logsumexps), independently of the kernel.
func referenceTC(mu: [Double], logvar: [Double], z: [Double], batch b: Int, latent l: Int, datasetSize n: Int) -> [[Double]] {
    func logNormal(_ x: Double, _ m: Double, _ lv: Double) -> Double { -0.5 * (log(2 * Double.pi) + lv + (x - m) * (x - m) / exp(lv)) }
    func logsumexp(_ v: [Double]) -> Double { let m = v.max()!; return m + log(v.map { exp($0 - m) }.reduce(0, +)) }
    let logNM = log(Double(n * b))
    return (0..<b).map { i in
        let table = (0..<b).map { j in (0..<l).map { d in logNormal(z[i * l + d], mu[j * l + d], logvar[j * l + d]) } }
        let condx = table[i].reduce(0, +)
        let logqz = logsumexp(table.map { $0.reduce(0, +) }) - logNM
        let prod = (0..<l).map { d in logsumexp(table.map { $0[d] }) - logNM }.reduce(0, +)
        let logpz = (0..<l).map { d in logNormal(z[i * l + d], 0, 0) }.reduce(0, +)
        return [condx - logqz, logqz - prod, prod - logpz]
    }
}

@Suite struct TotalCorrelationTests {
    static let b = 5, l = 3, n = 40
    static let mu = randomFloats(b * l, seed: 21), logvar = randomFloats(b * l, seed: 22, scale: 0.8)
    static let eps = randomFloats(b * l, seed: 23, scale: 1.2)

    /// (mu | logvar | z) rows for the kernel, z = mu + exp(0.5 logvar) eps.
    static func latents() -> [Float] {
        var rows = [Float]()
        for i in 0..<b {
            for d in 0..<l { rows.append(mu[i * l + d]) }
            for d in 0..<l { rows.append(logvar[i * l + d]) }
            for d in 0..<l {
                let k: Int = i * l + d
                rows.append(mu[k] + exp(0.5 * logvar[k]) * eps[k])
            }
        }
        return rows
    }

    /// Each term (mi, tc, dwkl) alone: the kernel's value and its partial derivatives w.r.t.
    /// mu, logvar and z against central differences of the Double reference.
    @Test(arguments: [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 6.0, 1.0)])
    func termGradientsMatchFiniteDifferences(alpha: Double, beta: Double, gamma: Double) {
        let (b, l, n) = (Self.b, Self.l, Self.n)
        let rows = Self.latents()
        var terms = [Double](repeating: 0, count: b * 3), gradient = [Float](repeating: 0, count: b * 3 * l)
        let scale = 0.5
        totalCorrelationForwardBackward(terms: &terms, gradient: &gradient, latents: rows, rows: b, latent: l, datasetSize: n,
                                        weights: TotalCorrelationWeights(alpha: alpha, beta: beta, gamma: gamma), scale: scale,
                                        workspace: TotalCorrelationWorkspace(capacity: b, latent: l))
        var v = rows.map(Double.init)  // (mu | logvar | z) per row, as Double
        func unpack(_ v: [Double]) -> (mu: [Double], logvar: [Double], z: [Double]) {
            var mu = [Double](), lv = [Double](), z = [Double]()
            for i in 0..<b {
                let start: Int = i * 3 * l
                for d in 0..<l {
                    mu.append(v[start + d])
                    lv.append(v[start + l + d])
                    z.append(v[start + 2 * l + d])
                }
            }
            return (mu, lv, z)
        }
        func loss(_ v: [Double]) -> Double {
            let (mu, lv, z) = unpack(v)
            return scale * referenceTC(mu: mu, logvar: lv, z: z, batch: b, latent: l, datasetSize: n)
                .reduce(0) { $0 + alpha * $1[0] + beta * $1[1] + gamma * $1[2] }
        }
        let (mu, lv, z) = unpack(v)
        let reference = referenceTC(mu: mu, logvar: lv, z: z, batch: b, latent: l, datasetSize: n)
        for i in 0..<b {
            for t in 0..<3 { expectClose(terms[i * 3 + t], reference[i][t], rtol: 1e-9, atol: 1e-9, "term \(t) of example \(i)") }
        }
        var worst = 0.0
        for k in 0..<v.count {
            let h = 1e-6, saved = v[k]
            v[k] = saved + h; let up = loss(v)
            v[k] = saved - h; let down = loss(v)
            v[k] = saved
            let numeric = (up - down) / (2 * h)
            worst = max(worst, abs(numeric - Double(gradient[k])) / (1e-4 + abs(numeric)))
        }
        #expect(worst < 1e-4, "weights (\(alpha), \(beta), \(gamma)): worst relative gradient error \(worst)")
        #expect(gradient.contains { abs($0) > 1e-3 }, "a gradient of zeros checks nothing")
    }

    /// Through the reparameterization: the kernel's partials chained by the model's
    /// reparameterizeBackward equal d(loss)/d(mu, logvar) with z = mu + exp(0.5 logvar) eps.
    @Test func gradientThroughTheEpsPath() {
        let (b, l, n) = (Self.b, Self.l, Self.n)
        let rows = Self.latents()
        var terms = [Double](repeating: 0, count: b * 3), gradient = [Float](repeating: 0, count: b * 3 * l)
        totalCorrelationForwardBackward(terms: &terms, gradient: &gradient, latents: rows, rows: b, latent: l, datasetSize: n,
                                        weights: TotalCorrelationWeights(beta: 6), scale: 1,
                                        workspace: TotalCorrelationWorkspace(capacity: b, latent: l))
        // dmu | dlogvar rows (stride 2l) plus dz chained through z = mu + sigma eps.
        var heads = [Float](), dheads = [Float](), dz = [Float]()
        for i in 0..<b {
            let start: Int = i * 3 * l
            for d in 0..<l { heads.append(Self.mu[i * l + d]) }
            for d in 0..<l { heads.append(Self.logvar[i * l + d]) }
            for d in 0..<(2 * l) { dheads.append(gradient[start + d]) }
            for d in 0..<l { dz.append(gradient[start + 2 * l + d]) }
        }
        heads.withUnsafeBufferPointer { h in
            dheads.withUnsafeMutableBufferPointer { d in
                reparameterizeBackward(dmu: d.baseAddress!, dlogvar: d.baseAddress! + l, dz: dz, logvar: h.baseAddress! + l,
                                       eps: Self.eps, rows: b, latent: l, stride: 2 * l)
            }
        }
        var mu = Self.mu.map(Double.init), lv = Self.logvar.map(Double.init)
        let eps = Self.eps.map(Double.init)
        func loss() -> Double {
            let z = (0..<(b * l)).map { mu[$0] + exp(0.5 * lv[$0]) * eps[$0] }
            return referenceTC(mu: mu, logvar: lv, z: z, batch: b, latent: l, datasetSize: n).reduce(0) { $0 + $1[0] + 6 * $1[1] + $1[2] }
        }
        var worst = 0.0
        for k in 0..<(b * l) {
            for isLogvar in [false, true] {
                let h = 1e-6
                func bump(_ delta: Double) { if isLogvar { lv[k] += delta } else { mu[k] += delta } }
                bump(h); let up = loss(); bump(-2 * h); let down = loss(); bump(h)
                let numeric = (up - down) / (2 * h)
                let analytic = Double(dheads[(k / l) * 2 * l + (isLogvar ? l : 0) + k % l])
                worst = max(worst, abs(numeric - analytic) / (1e-4 + abs(numeric)))
            }
        }
        #expect(worst < 1e-4, "worst relative error through the eps path \(worst)")
    }
}

/// The training objective of `regime` at `step` over the batch, in Double from the reference
/// forward pass (mean over the batch; the capacity and free-bits terms on batch means).
func referenceRegimeLoss(_ p: [Double], config: ModelConfig, layout: ParameterLayout, x: [Double], eps: [Double], batch: Int,
                         regime: LossRegime, step: Int) -> Double {
    let f = referenceForward(p, config: config, layout: layout, x: x, eps: eps, batch: batch)
    let l = config.latent, bd = Double(batch)
    let recon = f.nll.reduce(0, +) / bd
    var klDim = [Double](repeating: 0, count: l)  // batch mean KL per dimension
    for i in 0..<batch {
        for j in 0..<l {
            let m = f.mu[i * l + j], lv = f.logvar[i * l + j]
            klDim[j] += 0.5 * (m * m + exp(lv) - lv - 1) / bd
        }
    }
    let warm = regime.klWarmup > 0 ? min(1, Double(step) / Double(regime.klWarmup)) : 1
    if let tcBeta = regime.tcBeta {
        let terms = referenceTC(mu: f.mu, logvar: f.logvar, z: f.z, batch: batch, latent: l, datasetSize: regime.datasetSize)
        return recon + terms.reduce(0) { $0 + $1[0] + tcBeta * $1[1] + $1[2] } / bd
    }
    if regime.capacity > 0 {
        let c = regime.capacity * min(1, Double(step) / Double(regime.capacitySteps))
        return recon + regime.gamma * abs(klDim.reduce(0, +) - c)
    }
    if regime.freeBits > 0 {
        return recon + regime.beta * warm * klDim.map { max(regime.freeBits, $0) }.reduce(0, +)
    }
    return recon + regime.beta * warm * klDim.reduce(0, +)
}

@Suite struct RegimeGradientTests {
    static let config = ModelConfig(imageHeight: 4, imageWidth: 5, hidden: [7], latent: 3, likelihood: .bernoulli, beta: 2)
    static let regimes: [(String, LossRegime, Int)] = [
        ("warm-up, mid-ramp", LossRegime(beta: 2, klWarmup: 10), 3),
        ("capacity above C", LossRegime(beta: 1, capacity: 2, capacitySteps: 10, gamma: 7), 0),
        ("capacity under C", LossRegime(beta: 1, capacity: 8, capacitySteps: 10, gamma: 7), 9),
        ("free bits", LossRegime(beta: 2, klWarmup: 10, freeBits: 0.05), 4),
        ("beta-TCVAE", LossRegime(beta: 1, tcBeta: 6, datasetSize: 50), 0),
    ]

    /// The gradient the training step computes under each regime (forward, the regime's
    /// objective over the batch, backward) against central differences of the Double reference,
    /// for every parameter; and its loss against the reference's.
    @Test(arguments: 0..<regimes.count)
    func wholeLossMatchesFiniteDifferences(index: Int) {
        let (name, regime, step) = Self.regimes[index]
        let config = Self.config, batch = 6
        let model = VAE(config: config)
        model.initialize(seed: 3)
        let x = randomFloats(batch * config.inputDimension, seed: 4).map { ($0 + 1) / 2 }
        let eps = randomFloats(batch * config.latent, seed: 5, scale: 1.5)
        let result = regimeGradient(model: model, x: x, eps: eps, batch: batch, regime: regime, step: step)
        let analytic = Array(UnsafeBufferPointer(start: model.gradients, count: model.parameterCount))
        var p = (0..<model.parameterCount).map { Double(model.parameters[$0]) }
        let xd = x.map(Double.init), ed = eps.map(Double.init)
        func loss() -> Double { referenceRegimeLoss(p, config: config, layout: model.layout, x: xd, eps: ed, batch: batch, regime: regime, step: step) }
        expectClose((result.recon + result.sums.penalty) / Double(batch), loss(), rtol: 1e-5, atol: 1e-5, "\(name): loss")
        if regime.capacity > 0 {
            // "above C" and "under C" must take the two signs of |KL - C|.
            let target = capacityTarget(step: step, capacity: regime.capacity, capacitySteps: regime.capacitySteps)
            let meanKL = result.kl / Double(batch)
            #expect(name.hasSuffix("above C") ? meanKL > target : meanKL < target, "\(name): mean KL \(meanKL), C \(target)")
        }
        if name == "free bits" {
            // Both sides of the floor must be exercised, or the test checks only one branch.
            let f = referenceForward(p, config: config, layout: model.layout, x: xd, eps: ed, batch: batch)
            let l = config.latent
            let means = (0..<l).map { j in (0..<batch).reduce(0.0) { s, i in
                let m = f.mu[i * l + j], lv = f.logvar[i * l + j]; return s + 0.5 * (m * m + exp(lv) - lv - 1) } / Double(batch) }
            #expect(means.contains { $0 > regime.freeBits } && means.contains { $0 < regime.freeBits }, "KL means \(means)")
        }
        var worst = 0.0
        for i in 0..<p.count {
            let h = 1e-6, saved = p[i]
            p[i] = saved + h; let up = loss()
            p[i] = saved - h; let down = loss()
            p[i] = saved
            let numeric = (up - down) / (2 * h)
            worst = max(worst, abs(numeric - Double(analytic[i])) / (1e-3 + abs(numeric)))
        }
        #expect(worst < 2e-3, "\(name): worst relative gradient error \(worst)")
    }

    /// The terms the step reports for beta-TCVAE are the reference's sums over the batch.
    @Test func tcSumsMatchTheReference() {
        let config = Self.config, batch = 6
        let regime = LossRegime(beta: 1, tcBeta: 6, datasetSize: 50)
        let model = VAE(config: config)
        model.initialize(seed: 3)
        let x = randomFloats(batch * config.inputDimension, seed: 4).map { ($0 + 1) / 2 }
        let eps = randomFloats(batch * config.latent, seed: 5, scale: 1.5)
        let sums = regimeGradient(model: model, x: x, eps: eps, batch: batch, regime: regime, step: 0).sums
        let p = (0..<model.parameterCount).map { Double(model.parameters[$0]) }
        let f = referenceForward(p, config: config, layout: model.layout, x: x.map(Double.init), eps: eps.map(Double.init), batch: batch)
        let terms = referenceTC(mu: f.mu, logvar: f.logvar, z: f.z, batch: batch, latent: config.latent, datasetSize: 50)
        expectClose(sums.mi, terms.reduce(0) { $0 + $1[0] }, rtol: 1e-5, atol: 1e-4, "mi")
        expectClose(sums.tc, terms.reduce(0) { $0 + $1[1] }, rtol: 1e-5, atol: 1e-4, "tc")
        expectClose(sums.dwkl, terms.reduce(0) { $0 + $1[2] }, rtol: 1e-5, atol: 1e-4, "dwkl")
    }
}

@Suite struct RegimeScheduleTests {
    /// The ramps start at 0 on the first step and reach their end at step N, not N - 1 or N + 1.
    @Test func rampsFromZeroToFullAtStepN() {
        #expect(klWarmupFactor(step: 0, warmupSteps: 10) == 0)
        #expect(klWarmupFactor(step: 5, warmupSteps: 10) == 0.5)
        #expect(klWarmupFactor(step: 9, warmupSteps: 10) == 0.9)
        #expect(klWarmupFactor(step: 10, warmupSteps: 10) == 1)
        #expect(klWarmupFactor(step: 500, warmupSteps: 10) == 1)
        #expect(klWarmupFactor(step: 0, warmupSteps: 0) == 1)
        #expect(capacityTarget(step: 0, capacity: 25, capacitySteps: 100) == 0)
        #expect(capacityTarget(step: 40, capacity: 25, capacitySteps: 100) == 10)
        #expect(capacityTarget(step: 100, capacity: 25, capacitySteps: 100) == 25)
        #expect(capacityTarget(step: 1000, capacity: 25, capacitySteps: 100) == 25)
    }
}

@Suite struct RegimeTrainerTests {
    /// One beta-TCVAE step of the trainer on one process (a global batch of 12 = the whole
    /// training set, one step) against a hand-computed Double reference: its gradient (Adam's
    /// first moment after one step is 0.1 g) against central differences of the Double
    /// objective on the batch the step drew (the epoch's permutation, pixels / 255, eps per
    /// example index), and its parameters against Adam's first step, p - lr g / (|g| + eps).
    @Test func oneStepEqualsTheDoubleReference() throws {
        let out = temporaryDirectory()
        var o = options(out, data: "synthetic:12", epochs: 1, batch: 12)
        o.tcBeta = 6
        let trainer = try Trainer(options: o, model: ModelConfig(hidden: [5], latent: 3), resume: false,
                                  communicator: SingleProcessCommunicator()) { _ in }
        let config = trainer.modelConfig, count = trainer.model.parameterCount
        let start = (0..<count).map { Double(trainer.model.parameters[$0]) }
        let d = config.inputDimension, l = config.latent, batch = 12
        let generator = Philox4x32(seed: o.seed)
        let indices = Array(EpochPlan(exampleCount: batch, globalBatchSize: batch, rank: 0, worldSize: 1,
                                      generator: generator, epoch: 1).localIndices(step: 0))
        var x = [Float](repeating: 0, count: batch * d), eps = [Float](repeating: 0, count: batch * l)
        x.withUnsafeMutableBufferPointer { xs in
            indices.withUnsafeBufferPointer {
                fillBatch(xs.baseAddress!, from: trainer.dataset.train, indices: $0, binarize: false, generator: generator, epoch: 1)
            }
        }
        eps.withUnsafeMutableBufferPointer { es in
            for (r, index) in indices.enumerated() {
                fillNormal(es.baseAddress! + r * l, count: l, generator: generator, stream: .reparameterization, epoch: 1, index: Int(index))
            }
        }
        try trainer.run()
        #expect(trainer.optimizer.step == 1)
        let regime = LossRegime(beta: 1, tcBeta: 6, datasetSize: batch)
        #expect(trainer.regime == regime)
        var p = start
        let xd = x.map(Double.init), ed = eps.map(Double.init)
        func loss() -> Double { referenceRegimeLoss(p, config: config, layout: trainer.model.layout, x: xd, eps: ed, batch: batch, regime: regime, step: 0) }
        // Every encoder-head and latent-side parameter, and every 7th of the rest (784-pixel layers).
        let head = trainer.model.layout.head
        var checked = 0, worstGradient = 0.0, worstStep = 0.0
        for i in 0..<count where i % 7 == 0 || (head.weight..<head.bias + head.outFeatures).contains(i) {
            let g = Double(trainer.optimizer.firstMoment[i]) / 0.1
            let h = 1e-6
            p[i] = start[i] + h; let up = loss()
            p[i] = start[i] - h; let down = loss()
            p[i] = start[i]
            let numeric = (up - down) / (2 * h)
            worstGradient = max(worstGradient, abs(numeric - g) / (1e-3 + abs(numeric)))
            let adam = start[i] - 1e-3 * g / (abs(g) + 1e-8)
            worstStep = max(worstStep, abs(Double(trainer.model.parameters[i]) - adam))
            checked += 1
        }
        #expect(checked > 1000, "checked \(checked) parameters")
        #expect(worstGradient < 2e-3, "worst relative gradient error \(worstGradient)")
        #expect(worstStep < 1e-6, "worst parameter error after the Adam step \(worstStep)")
    }
}
