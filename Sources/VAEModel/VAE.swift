import Foundation
import VAEKernelDispatch
import VAEKernels

// The Variational Autoencoder (Kingma & Welling 2014):
//
//   encoder  q(z|x) = N(mu(x), diag(exp(logvar(x))))     MLP, ReLU, two linear heads
//   sample   z = mu + exp(0.5 logvar) * eps,  eps ~ N(0, I)  (the reparameterization trick)
//   decoder  p(x|z) from logits(z)                         MLP mirroring the encoder
//   loss     recon(x, z) + beta * KL(q(z|x) || N(0, I))    per example; beta = 1: the
//            negative ELBO. Autoencoder mode: z = mu and no KL.
//
// Parameters and gradients are each one flat buffer (see ParameterLayout). A
// `VAEWorkspace` holds the activations for one batch size; forward and backward
// are explicit paired functions over it and never allocate.

public final class VAE: @unchecked Sendable {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public var parameterCount: Int { layout.count }
    /// [parameterCount] all parameters, named views in `layout`.
    public let parameters: UnsafeMutablePointer<Float>
    /// [parameterCount] gradients, same layout; backward accumulates into it.
    public let gradients: UnsafeMutablePointer<Float>
    /// The threads forward and backward run on (one unless set). Any count gives the same bits.
    public var threads: KernelThreads = .serial

    public init(config: ModelConfig) {
        self.config = config
        layout = ParameterLayout(config)
        parameters = allocateAligned(layout.count)
        gradients = allocateAligned(layout.count)
    }

    deinit {
        parameters.deallocate()
        gradients.deallocate()
    }

    /// torch.nn.Linear's default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    /// decoder.logvar starts at 0 (unit variance). Deterministic in the seed.
    public func initialize(seed: UInt64) {
        let generator = Philox4x32(seed: seed)
        for (index, tensor) in layout.tensors.enumerated() {
            let p = parameters + tensor.offset
            if tensor.name == "decoder.logvar" {
                p.update(repeating: 0, count: tensor.count)
                continue
            }
            let fanIn = tensorFanIn(tensor)
            let bound = 1 / Float(fanIn).squareRoot()
            fillUniform(p, count: tensor.count, generator: generator, stream: .initialization, epoch: 0, index: index)
            for i in 0..<tensor.count { p[i] = (2 * p[i] - 1) * bound }
        }
    }

    private func tensorFanIn(_ tensor: TensorSpec) -> Int {
        // torch's fan-in: the weight's size over its dimensions after the first (in x kh x kw
        // for Conv2d; out x kh x kw for ConvTranspose2d, [in, out, kh, kw], as torch computes
        // it). A bias has the fan-in of its weight.
        if tensor.shape.count >= 2 { return tensor.shape.dropFirst().reduce(1, *) }
        let weightName = tensor.name.replacingSuffix(".bias", with: ".weight")
        return layout.tensor(named: weightName).map { $0.shape.dropFirst().reduce(1, *) } ?? 1
    }

    // MARK: Forward

    /// Runs the encoder, the reparameterization and the decoder on x [batch, D],
    /// and the per-example loss terms into `workspace.recon` and `workspace.kl`.
    /// `eps` [batch, latent] is the noise; nil decodes the mean (z = mu).
    /// With `lossScale` set, also seeds the backward pass: d(lossScale * recon)/d(logits)
    /// (and, for the gaussian likelihood, accumulates d/d(decoder.logvar) into `gradients`,
    /// default `self.gradients`; overwrites it when `accumulate` is false, as `backward` then
    /// overwrites every other gradient).
    public func forward(_ workspace: VAEWorkspace, x: UnsafePointer<Float>, eps: UnsafePointer<Float>?,
                        batch: Int, lossScale: Float?, gradients target: UnsafeMutablePointer<Float>? = nil,
                        accumulate: Bool = true) {
        let gradients = target ?? self.gradients
        precondition(batch <= workspace.capacity, "batch \(batch) exceeds workspace capacity \(workspace.capacity)")
        let l = config.latent
        encode(workspace, x: x, batch: batch)
        let meanOnly = config.autoencoder || eps == nil
        // Per-row kernels, cut into blocks of rows on the threads (VAE+Rows.swift).
        threads.forEachRange(batch, alignment: 1, minimum: 8,
                             ReparameterizeRows(z: workspace.z, heads: workspace.heads, eps: meanOnly ? nil : eps, latent: l))
        decode(workspace, z: workspace.z, batch: batch)
        // The gaussian likelihood's d/d(decoder.logvar) is a sum over rows: that pass stays on one thread.
        let rowsApart = config.likelihood == .bernoulli || lossScale == nil
        let lv = layout.outputLogvar
        if let lv, lossScale != nil, !accumulate { (gradients + lv).update(repeating: 0, count: config.inputDimension) }
        threads.forEachRange(batch, alignment: 1, minimum: rowsApart ? 8 : batch,
                             LossRows(likelihood: config.likelihood, recon: workspace.recon, kl: workspace.kl,
                                      dlogits: lossScale == nil ? nil : workspace.dlogits,
                                      logits: workspace.logits, targets: x, heads: workspace.heads,
                                      outputLogvar: lv.map { UnsafePointer(parameters + $0) },
                                      dOutputLogvar: lossScale == nil ? nil : lv.map { gradients + $0 },
                                      inputDimension: config.inputDimension, latent: l, scale: lossScale ?? 0,
                                      withKL: !config.autoencoder))
    }

    /// Encoder only: x [batch, D] -> workspace.heads [batch, 2 * latent] = (mu | logvar) per row.
    public func encode(_ workspace: VAEWorkspace, x: UnsafePointer<Float>, batch: Int) {
        if workspace.conv != nil { return convEncode(workspace, x: x, batch: batch) }
        mlpForward(layout.encoder, activations: workspace.encoderHidden, head: layout.head, output: workspace.heads,
                   input: x, batch: batch, workspace: workspace.gemm)
    }

    /// Decoder only: z [batch, latent] -> workspace.logits [batch, D].
    public func decode(_ workspace: VAEWorkspace, z: UnsafePointer<Float>, batch: Int) {
        if workspace.conv != nil { return convDecode(workspace, z: z, batch: batch) }
        mlpForward(layout.decoder, activations: workspace.decoderHidden, head: layout.output!, output: workspace.logits,
                   input: z, batch: batch, workspace: workspace.gemm)
    }

    /// Hidden layers (Linear + ReLU) into `activations`, then the linear `head` into `output`.
    func mlpForward(_ hidden: [LinearView], activations: [UnsafeMutablePointer<Float>], head: LinearView,
                            output: UnsafeMutablePointer<Float>, input x: UnsafePointer<Float>, batch: Int,
                            workspace: GEMMWorkspace) {
        var input = x
        for (i, layer) in hidden.enumerated() {
            linearForward(activations[i], input, parameters + layer.weight, parameters + layer.bias,
                          batch: batch, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, relu: true,
                          threads: threads, workspace: workspace)
            input = UnsafePointer(activations[i])
        }
        linearForward(output, input, parameters + head.weight, parameters + head.bias,
                      batch: batch, inFeatures: head.inFeatures, outFeatures: head.outFeatures, relu: false,
                      threads: threads, workspace: workspace)
    }

    /// The decoder's mean image in [0, 1] from workspace.logits: sigmoid (bernoulli)
    /// or the clamped mean (gaussian). images [batch, D].
    public func meanImages(_ workspace: VAEWorkspace, into images: UnsafeMutablePointer<Float>, batch: Int) {
        let n = batch * config.inputDimension
        for i in 0..<n {
            let v = workspace.logits[i]
            switch config.likelihood {
            case .bernoulli: images[i] = 1 / (1 + exp(-v))
            case .gaussian: images[i] = min(max(v, 0), 1)
            }
        }
    }

    // MARK: Backward

    /// Accumulates d(lossScale * sum_b (recon_b + beta * KL_b)) / d(parameters) into
    /// `gradients` (same layout, default `self.gradients`), after `forward` with the same
    /// `lossScale`, x, eps, gradients and `accumulate`; with `accumulate` false the two overwrite
    /// every gradient instead (no zeroing pass needed). `latent` replaces the beta * KL term's gradient for the
    /// training regimes (KL warm-up, capacity, free bits, beta-TCVAE: `LatentGradient`).
    /// `observer` hears, after each layer, that every gradient from that layer's offset to the
    /// end of the buffer is final (gradient reduction overlapped with the rest of backward).
    public func backward(_ workspace: VAEWorkspace, x: UnsafePointer<Float>, eps: UnsafePointer<Float>?,
                         batch: Int, lossScale: Float, gradients target: UnsafeMutablePointer<Float>? = nil,
                         latent: LatentGradient? = nil, observer: (any BackwardObserver)? = nil, accumulate: Bool = true) {
        let gradients = target ?? self.gradients
        let l = config.latent
        let ws = workspace.gemm
        if workspace.conv != nil {
            convDecoderBackward(workspace, gradients: gradients, batch: batch, observer: observer, accumulate: accumulate)
        } else {
            mlpDecoderBackward(workspace, gradients: gradients, batch: batch, observer: observer, accumulate: accumulate)
        }
        // Latent: dz -> (dmu | dlogvar) in dheads [batch, 2 * latent].
        let meanOnly = config.autoencoder || eps == nil
        threads.forEachRange(batch, alignment: 1, minimum: 8,
                             LatentBackwardRows(dheads: workspace.dheads, dz: workspace.dz, heads: workspace.heads,
                                                eps: meanOnly ? nil : eps, latent: l,
                                                klScale: config.autoencoder || latent != nil ? nil : lossScale * config.beta,
                                                klScales: latent?.klScales, coupled: latent?.coupled))
        let dheads = workspace.dheads
        // Encoder heads and hidden layers; the input x needs no gradient.
        let encoderCount = layout.encoder.count
        let head = layout.head
        let headInput = UnsafePointer(workspace.encoderHidden[encoderCount - 1])
        linearBackward(workspace.encoderGradient[encoderCount - 1], gradients + head.weight, gradients + head.bias,
                       dheads, headInput, parameters + head.weight,
                       batch: batch, inFeatures: head.inFeatures, outFeatures: head.outFeatures, accumulate: accumulate, threads: threads, workspace: ws)
        observer?.gradientsFinal(from: head.weight)
        for i in stride(from: encoderCount - 1, through: 0, by: -1) {
            let layer = layout.encoder[i]
            let dout = workspace.encoderGradient[i]
            reluBackward(dout, dout, workspace.encoderHidden[i], count: batch * layer.outFeatures, threads: threads)
            let input = i > 0 ? UnsafePointer(workspace.encoderHidden[i - 1]) : UnsafePointer(workspace.conv?.flat ?? UnsafeMutablePointer(mutating: x))
            let dinp = i > 0 ? workspace.encoderGradient[i - 1] : workspace.conv?.dflat
            linearBackward(dinp, gradients + layer.weight, gradients + layer.bias, dout, input, parameters + layer.weight,
                           batch: batch, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, accumulate: accumulate, threads: threads, workspace: ws)
            observer?.gradientsFinal(from: layer.weight)
        }
        if workspace.conv != nil {
            convEncoderBackward(workspace, x: x, gradients: gradients, batch: batch, observer: observer, accumulate: accumulate)
        }
    }

    /// The MLP decoder's backward: decoder.out, then the hidden layers, from dlogits to dz.
    func mlpDecoderBackward(_ workspace: VAEWorkspace, gradients: UnsafeMutablePointer<Float>, batch: Int,
                            observer: (any BackwardObserver)?, accumulate: Bool) {
        let ws = workspace.gemm
        // dlogits [batch, D] was seeded by the fused likelihood in forward.
        let dout = workspace.dlogits
        let out = layout.output!
        let decoderCount = layout.decoder.count
        let lastDecoderInput = decoderCount > 0 ? UnsafePointer(workspace.decoderHidden[decoderCount - 1]) : UnsafePointer(workspace.z)
        let dLast = decoderCount > 0 ? workspace.decoderGradient[decoderCount - 1] : workspace.dz
        linearBackward(dLast, gradients + out.weight, gradients + out.bias, dout, lastDecoderInput, parameters + out.weight,
                       batch: batch, inFeatures: out.inFeatures, outFeatures: out.outFeatures, accumulate: accumulate, threads: threads, workspace: ws)
        observer?.gradientsFinal(from: out.weight)
        denseDecoderBackward(workspace, gradients: gradients, batch: batch, observer: observer, accumulate: accumulate)
    }

    /// The decoder's dense hidden layers (ReLU), from the last one's output gradient in
    /// workspace.decoderGradient to dz.
    func denseDecoderBackward(_ workspace: VAEWorkspace, gradients: UnsafeMutablePointer<Float>, batch: Int,
                              observer: (any BackwardObserver)?, accumulate: Bool) {
        for i in stride(from: layout.decoder.count - 1, through: 0, by: -1) {
            let layer = layout.decoder[i]
            let activation = workspace.decoderHidden[i]
            let dout = workspace.decoderGradient[i]
            reluBackward(dout, dout, activation, count: batch * layer.outFeatures, threads: threads)
            let input = i > 0 ? UnsafePointer(workspace.decoderHidden[i - 1]) : UnsafePointer(workspace.z)
            let dinp = i > 0 ? workspace.decoderGradient[i - 1] : workspace.dz
            linearBackward(dinp, gradients + layer.weight, gradients + layer.bias, dout, input, parameters + layer.weight,
                           batch: batch, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, accumulate: accumulate, threads: threads, workspace: workspace.gemm)
            observer?.gradientsFinal(from: layer.weight)
        }
    }
}

/// The latent layer's gradient under a training regime, in place of lossScale * beta * dKL:
/// a KL weight per latent dimension, and the gradient of terms that couple the examples of the
/// global batch (beta-TCVAE), both already multiplied by lossScale.
public struct LatentGradient {
    /// [latent] d(loss) / d(KL_j of one example), times lossScale; nil: no analytic-KL gradient.
    public var klScales: UnsafePointer<Float>?
    /// [batch, 3 latent] d(loss) / d(mu | logvar | z) of this call's rows (z: the partial
    /// derivative; backward chains it through the reparameterization); nil: none.
    public var coupled: UnsafePointer<Float>?

    public init(klScales: UnsafePointer<Float>?, coupled: UnsafePointer<Float>?) {
        self.klScales = klScales
        self.coupled = coupled
    }
}

/// ReLU backward cut into ranges at multiples of 16 (the same elements take the SIMD body).
@inline(__always)
func reluBackward(_ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ out: UnsafePointer<Float>,
                          count: Int, threads: KernelThreads) {
    threads.forEachRange(count, alignment: 16, minimum: 4096, ReluBackwardRange(dinp: dinp, dout: dout, out: out))
}

/// Hears during `VAE.backward` which gradients are final: the layers run from the last to the
/// first, and the flat buffer holds them first to last, so the offsets only fall.
public protocol BackwardObserver: AnyObject {
    /// Gradients [offset, parameterCount) will not change again in this backward pass.
    func gradientsFinal(from offset: Int)
}

/// Activations and their gradients for batches of up to `capacity` examples.
public final class VAEWorkspace: @unchecked Sendable {
    public let capacity: Int
    public let gemm = GEMMWorkspace()
    public let encoderHidden: [UnsafeMutablePointer<Float>]    // [capacity, hidden[i]] after ReLU
    public let encoderGradient: [UnsafeMutablePointer<Float>]  // same shapes
    public let heads: UnsafeMutablePointer<Float>              // [capacity, 2 * latent] (mu | logvar)
    public let dheads: UnsafeMutablePointer<Float>
    public let z: UnsafeMutablePointer<Float>                  // [capacity, latent]
    public let dz: UnsafeMutablePointer<Float>
    public let decoderHidden: [UnsafeMutablePointer<Float>]    // [capacity, reversed hidden[i]] after ReLU
    public let decoderGradient: [UnsafeMutablePointer<Float>]
    public let logits: UnsafeMutablePointer<Float>             // [capacity, D]
    public let dlogits: UnsafeMutablePointer<Float>
    public let recon: UnsafeMutablePointer<Float>              // [capacity] -log p(x|z) per example
    public let kl: UnsafeMutablePointer<Float>                 // [capacity] KL(q(z|x) || p(z)) per example
    /// The conv architecture's maps (nil for the MLP).
    public let conv: ConvWorkspace?
    private var owned: [UnsafeMutablePointer<Float>] = []

    public init(config: ModelConfig, capacity: Int) {
        self.capacity = capacity
        var all: [UnsafeMutablePointer<Float>] = []
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = allocateAligned(capacity * count)
            all.append(p)
            return p
        }
        let l = config.latent, d = config.inputDimension
        encoderHidden = config.hidden.map { buffer($0) }
        encoderGradient = config.hidden.map { buffer($0) }
        heads = buffer(2 * l)
        dheads = buffer(2 * l)
        z = buffer(l)
        dz = buffer(l)
        let layout = config.architecture == .conv ? ParameterLayout(config) : nil
        let featureMap = layout?.convEncoder.last.map { [$0.gemmSize] } ?? []
        decoderHidden = (config.hidden.reversed() + featureMap).map { buffer($0) }
        decoderGradient = (config.hidden.reversed() + featureMap).map { buffer($0) }
        conv = layout.map { ConvWorkspace(layout: $0, capacity: capacity) }
        logits = buffer(d)
        dlogits = buffer(d)
        recon = buffer(1)
        kl = buffer(1)
        owned = all
    }

    deinit { for p in owned { p.deallocate() } }
}

extension String {
    func replacingSuffix(_ suffix: String, with replacement: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) + replacement : self
    }
}
