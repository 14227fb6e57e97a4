import VAEData
import VAEDistributed
import VAEKernels
import VAEModel

/// Sums over a set of examples, nats.
public struct LossSums: Sendable {
    public var recon = 0.0
    public var kl = 0.0
    public var count = 0.0

    public init(recon: Double = 0, kl: Double = 0, count: Double = 0) {
        self.recon = recon
        self.kl = kl
        self.count = count
    }

    public func mean(beta: Double) -> (loss: Double, recon: Double, kl: Double) {
        let c = max(count, 1)
        return ((recon + beta * kl) / c, recon / c, kl / c)
    }
}

/// The binarization draw of a test image is fixed (not per epoch): epoch key below.
let testEpochKey = Int(UInt32.max)

/// Test images per forward pass of the evaluation: 1000 ran the test set 5-7% faster than 500
/// (the weights are packed once per pass) and 2000 no faster (`vae-dist bench`, 1 and 2 threads).
public let evaluationBatch = 1000

/// The evaluation's batch for `config`: a conv model's patch matrices (about 1.4 MB an example
/// at 64x64) cap it at 64.
public func evaluationBatch(for config: ModelConfig) -> Int {
    config.architecture == .conv ? 64 : evaluationBatch
}

/// Evaluates the negative ELBO on `images[range]` with one sample of z per example
/// (eps fixed per test example, so epochs compare on the same noise). `heads`, when given,
/// receives the encoder's (mu | logvar) rows [range.count, 2 * latent] of the same pass (what
/// `encodePosterior` computes, without a second encoder pass).
public func evaluate(model: VAE, workspace: VAEWorkspace, images: ImageSet, range: Range<Int>,
                     binarize: Bool, seed: UInt64, heads: UnsafeMutablePointer<Float>? = nil) -> LossSums {
    let generator = Philox4x32(seed: seed)
    let d = model.config.inputDimension, l = model.config.latent
    let capacity = workspace.capacity
    let x = allocateAligned(capacity * d), eps = allocateAligned(capacity * l)
    defer { x.deallocate(); eps.deallocate() }
    var sums = LossSums()
    var start = range.lowerBound
    while start < range.upperBound {
        let batch = min(capacity, range.upperBound - start)
        loadBatch(x, noise: BatchNoise(eps: eps, latent: l, stream: .evaluation, epoch: 0), from: images, indices: nil,
                  first: start, rows: batch, binarize: binarize, generator: generator, epoch: testEpochKey,
                  threads: model.threads)
        model.forward(workspace, x: x, eps: eps, batch: batch, lossScale: nil)
        if let heads {
            (heads + (start - range.lowerBound) * 2 * l).update(from: workspace.heads, count: batch * 2 * l)
        }
        for r in 0..<batch {
            sums.recon += Double(workspace.recon[r])
            sums.kl += Double(workspace.kl[r])
        }
        sums.count += Double(batch)
        start += batch
    }
    return sums
}

/// Evaluates the test set (its first `count` images, all by default) sharded over ranks, reduced
/// so every rank has the totals, and the posteriors gathered in example order (`gatherPosterior`)
/// from the same pass.
public func evaluateDistributed(model: VAE, workspace: VAEWorkspace, images: ImageSet, count: Int? = nil, binarize: Bool,
                                seed: UInt64, communicator: any Communicator) throws(CommunicatorError) -> (LossSums, PosteriorParameters) {
    let count = count ?? images.count
    let range = shardRange(count: count, rank: communicator.rank, worldSize: communicator.size)
    // Binarized inputs are random draws: the posteriors are then of the images themselves,
    // encoded below, and the evaluation pass keeps none.
    var heads = [Float](repeating: 0, count: binarize ? 0 : range.count * 2 * model.config.latent)
    let local = heads.withUnsafeMutableBufferPointer {
        evaluate(model: model, workspace: workspace, images: images, range: range, binarize: binarize, seed: seed,
                 heads: binarize ? nil : $0.baseAddress)
    }
    var totals = [local.recon, local.kl, local.count]
    try totals.withUnsafeMutableBufferPointer { buffer throws(CommunicatorError) in
        try communicator.allreduceSum(buffer.baseAddress!, count: 3)
    }
    if binarize { heads = encodePosterior(model: model, images: images, range: range) }
    let posterior = try gatherPosterior(localHeads: heads, model: model, count: count, communicator: communicator)
    return (LossSums(recon: totals[0], kl: totals[1], count: totals[2]), posterior)
}
