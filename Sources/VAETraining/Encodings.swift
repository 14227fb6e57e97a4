import VAEData
import VAEDistributed
import VAEKernels
import VAEModel

// The encoder's posterior q(z|x) = N(mu, exp(logvar)) of a set of images, computed sharded over
// ranks and gathered in example order onto every rank: what `encode` writes, and what the latent
// measures (KL per dimension, active units, MIG) are computed from. Each example's mu and logvar
// are the same bits whichever rank encodes it and in which batch, so the gathered arrays, and
// everything computed from them in example order, are the same on 1 and N ranks.

/// mu and logvar [count, latent] of images 0 ..< count, with their labels and factors.
public struct Encodings: Sendable {
    public var count: Int
    public var latent: Int
    public var mu: [Float]
    public var logvar: [Float]
    /// [count], when the data has labels.
    public var labels: [UInt8]?
    /// [count, factorNames.count], when the data has ground-truth factors.
    public var factors: [Float]?
    public var factorNames: [String]
    public var discreteFactors: Bool

    public init(count: Int, latent: Int, mu: [Float], logvar: [Float], labels: [UInt8]?, factors: [Float]?,
                factorNames: [String], discreteFactors: Bool) {
        precondition(mu.count == count * latent && logvar.count == count * latent)
        self.count = count
        self.latent = latent
        self.mu = mu
        self.logvar = logvar
        self.labels = labels
        self.factors = factors
        self.factorNames = factorNames
        self.discreteFactors = discreteFactors
    }
}

/// Encodes images 0 ..< count (inputs pixel / 255, never binarized: the posterior of the mean
/// image), each rank its `shardRange`, and gathers the result onto every rank (a collective).
public func encodeGathered(model: VAE, images: ImageSet, count: Int, communicator: any Communicator,
                           capacity: Int = 500) throws(CommunicatorError) -> Encodings {
    precondition(count >= 0 && count <= images.count)
    let l = model.config.latent, width = 2 * l  // one row of workspace.heads: mu then logvar
    let ranks = communicator.size
    let range = shardRange(count: count, rank: communicator.rank, worldSize: ranks)
    // Every rank sends the same number of rows (rank 0's, the largest shard), padded.
    let rowsPerRank = max(shardRange(count: count, rank: 0, worldSize: ranks).count, 1)
    var local = [Float](repeating: 0, count: rowsPerRank * width)
    let workspace = VAEWorkspace(config: model.config, capacity: capacity)
    let x = allocateAligned(capacity * model.config.inputDimension)
    defer { x.deallocate() }
    var start = range.lowerBound
    while start < range.upperBound {
        let batch = min(capacity, range.upperBound - start)
        fillBatch(x, from: images, range: start..<(start + batch), binarize: false, generator: Philox4x32(seed: 0), epoch: 0)
        model.encode(workspace, x: x, batch: batch)
        local.withUnsafeMutableBufferPointer {
            ($0.baseAddress! + (start - range.lowerBound) * width).update(from: workspace.heads, count: batch * width)
        }
        start += batch
    }
    var all = [Float](repeating: 0, count: ranks * rowsPerRank * width)
    try local.withUnsafeBufferPointer { input throws(CommunicatorError) in
        try all.withUnsafeMutableBufferPointer { output throws(CommunicatorError) in
            try communicator.allgather(input.baseAddress!, count: rowsPerRank * width, into: output.baseAddress!)
        }
    }
    var mu = [Float](repeating: 0, count: count * l), logvar = [Float](repeating: 0, count: count * l)
    for rank in 0..<ranks {
        let shard = shardRange(count: count, rank: rank, worldSize: ranks)
        for (row, example) in shard.enumerated() {
            let source = (rank * rowsPerRank + row) * width
            for j in 0..<l {
                mu[example * l + j] = all[source + j]
                logvar[example * l + j] = all[source + l + j]
            }
        }
    }
    let f = images.factorNames.count
    return Encodings(count: count, latent: l, mu: mu, logvar: logvar,
                     labels: images.labels.map { Array($0[0..<count]) },
                     factors: images.factors.map { Array($0[0..<(count * f)]) },
                     factorNames: images.factorNames, discreteFactors: images.discreteFactors)
}
