import Foundation
import VAEData
import VAEDistributed
import VAEKernels
import VAEModel

// The aggregate posterior q(z) = (1/N) sum_n q(z|x_n) over the test set, against the prior
// N(0, I). A VAE's KL term pushes each q(z|x) toward the unit Gaussian, so the encoder means
// fill the prior and decoding z ~ N(0, I) gives images; an autoencoder (reconstruction loss
// only) places its codes wherever reconstruction is easiest, with gaps and a scale that has
// nothing to do with N(0, I), so its prior samples decode to textures. Two numbers say which:
//
//   posterior_std_mean  (1/d) sum_j (1/N) sum_n sigma_nj    the mean posterior sigma; a VAE's
//                        encoder keeps it away from 0, an autoencoder has no sigma (0).
//   aggregate_kl        KL(N(m, C) || N(0, I)) of the moment-matched Gaussian of the test
//                        means: 0.5 * (tr C + m^T m - d - log det C). Near 0 when the means
//                        fill the prior; large for codes far away, too wide or collapsed.
//
// C is the population covariance (divide by N), computed in Double. A collapsed code (a
// singular C, e.g. an autoencoder whose codes lie on a line) would make log det C = -inf;
// every eigenvalue of C is floored at `varianceFloor` inside the log, so the answer is
// finite and large (each collapsed direction adds 0.5 * (log(1 / 1e-6) - 1) = 6.4 nats).

/// The encoder's outputs for a set of images: mu and logvar, each [count, latent].
public struct PosteriorParameters: Sendable {
    public var latent: Int
    public var count: Int
    /// [count, latent] the posterior means.
    public var mu: [Float]
    /// [count, latent] log sigma^2 (meaningless for an autoencoder, whose z = mu).
    public var logvar: [Float]

    public init(latent: Int, count: Int, mu: [Float], logvar: [Float]) {
        precondition(mu.count == count * latent && logvar.count == count * latent)
        self.latent = latent
        self.count = count
        self.mu = mu
        self.logvar = logvar
    }
}

/// Encodes images `range` in batches: the (mu | logvar) rows [range.count, 2 * latent].
public func encodePosterior(model: VAE, images: ImageSet, range: Range<Int>, batchSize: Int? = nil) -> [Float] {
    let batchSize = batchSize ?? evaluationBatch(for: model.config)
    let d = model.config.inputDimension, l = model.config.latent
    let capacity = max(1, min(batchSize, range.count))
    let workspace = VAEWorkspace(config: model.config, capacity: capacity)
    let x = allocateAligned(capacity * d)
    defer { x.deallocate() }
    var heads = [Float](repeating: 0, count: range.count * 2 * l)
    var start = range.lowerBound
    while start < range.upperBound {
        let batch = min(capacity, range.upperBound - start)
        fillBatch(x, from: images, range: start..<(start + batch), binarize: false, generator: Philox4x32(seed: 0), epoch: 0)
        model.encode(workspace, x: x, batch: batch)
        let offset = (start - range.lowerBound) * 2 * l
        heads.withUnsafeMutableBufferPointer { $0.baseAddress!.advanced(by: offset).update(from: workspace.heads, count: batch * 2 * l) }
        start += batch
    }
    return heads
}

/// The posterior parameters of images 0 ..< count, each rank encoding its shard
/// (`shardRange`) and every rank receiving all of them in image order (one allgather;
/// every rank must call it). On one process it is just the encoder over the images.
public func gatherPosterior(model: VAE, images: ImageSet, count: Int,
                            communicator: any Communicator) throws(CommunicatorError) -> PosteriorParameters {
    let range = shardRange(count: count, rank: communicator.rank, worldSize: communicator.size)
    return try gatherPosterior(localHeads: encodePosterior(model: model, images: images, range: range),
                               model: model, count: count, communicator: communicator)
}

/// The same from this rank's shard already encoded: `localHeads` holds the (mu | logvar) rows of
/// its `shardRange` of 0 ..< count (as `encodePosterior` or `evaluate(heads:)` write them).
public func gatherPosterior(localHeads: [Float], model: VAE, count: Int,
                            communicator: any Communicator) throws(CommunicatorError) -> PosteriorParameters {
    let l = model.config.latent, size = communicator.size
    let range = shardRange(count: count, rank: communicator.rank, worldSize: size)
    // allgather moves equal blocks: each rank's shard is padded to the largest shard.
    let rowsPerRank = (count + size - 1) / size, row = 2 * l
    precondition(localHeads.count == range.count * row, "localHeads is not this rank's shard")
    var local = localHeads
    local += [Float](repeating: 0, count: (rowsPerRank - range.count) * row)
    var all = [Float](repeating: 0, count: size * rowsPerRank * row)
    try local.withUnsafeBufferPointer { input throws(CommunicatorError) in
        try all.withUnsafeMutableBufferPointer { output throws(CommunicatorError) in
            try communicator.allgather(input.baseAddress!, count: rowsPerRank * row, into: output.baseAddress!)
        }
    }
    var mu = [Float](), logvar = [Float]()
    mu.reserveCapacity(count * l)
    logvar.reserveCapacity(count * l)
    for r in 0..<size {
        for i in 0..<shardRange(count: count, rank: r, worldSize: size).count {
            let base = (r * rowsPerRank + i) * row
            mu += all[base..<(base + l)]
            logvar += all[(base + l)..<(base + row)]
        }
    }
    return PosteriorParameters(latent: l, count: count, mu: mu, logvar: logvar)
}

/// The moments of the encoder means and the mean posterior sigma (see the top of this file).
public struct AggregatePosterior: Sendable {
    /// Eigenvalues of C below this count as this much variance inside log det C.
    public static let varianceFloor = 1e-6

    public let latent: Int
    public let count: Int
    /// m [latent], the mean of the encoder means.
    public let mean: [Double]
    /// C [latent, latent], their population covariance (1/N).
    public let covariance: [Double]
    /// (1/d) sum_j (1/N) sum_n exp(0.5 logvar_nj); 0 for an autoencoder (it has no sigma).
    public let posteriorStdMean: Double

    /// `logvar` nil: an autoencoder (posterior_std_mean 0).
    public init(mu: [Float], logvar: [Float]?, latent: Int) {
        precondition(latent >= 1 && mu.count % latent == 0 && (logvar == nil || logvar!.count == mu.count))
        let n = mu.count / latent
        self.latent = latent
        count = n
        var m = [Double](repeating: 0, count: latent)
        for r in 0..<n { for j in 0..<latent { m[j] += Double(mu[r * latent + j]) } }
        for j in 0..<latent { m[j] /= Double(max(n, 1)) }
        var c = [Double](repeating: 0, count: latent * latent)
        var centered = [Double](repeating: 0, count: latent)
        for r in 0..<n {
            for j in 0..<latent { centered[j] = Double(mu[r * latent + j]) - m[j] }
            for i in 0..<latent { for j in i..<latent { c[i * latent + j] += centered[i] * centered[j] } }
        }
        for i in 0..<latent {
            for j in i..<latent {
                c[i * latent + j] /= Double(max(n, 1))
                c[j * latent + i] = c[i * latent + j]
            }
        }
        mean = m
        covariance = c
        principalAxes = symmetricEigen(c, dimension: latent)
        if let logvar, n > 0 {
            posteriorStdMean = logvar.reduce(0.0) { $0 + exp(0.5 * Double($1)) } / Double(n * latent)
        } else {
            posteriorStdMean = 0
        }
    }

    public init(_ posterior: PosteriorParameters, autoencoder: Bool) {
        self.init(mu: posterior.mu, logvar: autoencoder ? nil : posterior.logvar, latent: posterior.latent)
    }

    /// Eigenvalues (descending) and unit eigenvectors of C (see `symmetricEigen`).
    public let principalAxes: SymmetricEigen

    /// KL(N(m, C) || N(0, I)) = 0.5 * (tr C + m^T m - d - log det C), through C's eigenvalues
    /// (tr C = sum lambda, log det C = sum log max(lambda, varianceFloor)).
    public var klToPrior: Double {
        let lambda = principalAxes.values
        let trace = lambda.reduce(0, +)
        let logDet = lambda.reduce(0.0) { $0 + log(max($1, Self.varianceFloor)) }
        let meanSquare = mean.reduce(0.0) { $0 + $1 * $1 }
        return 0.5 * (trace + meanSquare - Double(latent) - logDet)
    }

    /// The two axes latent maps and manifolds are drawn in: the latent dimensions themselves
    /// when there are two, otherwise the top two principal directions of C. Rows of [2, latent].
    public var planeAxes: [[Double]] {
        if latent == 2 { return [[1, 0], [0, 1]] }
        let axes = principalAxes
        return (0..<2).map { k in Array(axes.vectors[(k * latent)..<((k + 1) * latent)]) }
    }
}

/// The eigen-decomposition of a symmetric matrix: values descending, vectors [n, n] with
/// row k the unit eigenvector of values[k], its largest-magnitude component positive.
public struct SymmetricEigen: Sendable {
    public var values: [Double]
    public var vectors: [Double]
}

/// Cyclic Jacobi rotations (Golub and Van Loan, section 8.5) on a symmetric [n, n] matrix in
/// Double: sweeps over every off-diagonal pair, each rotation zeroing one, until the
/// off-diagonal mass is negligible. Quadratically convergent; fine for the latent sizes here.
public func symmetricEigen(_ matrix: [Double], dimension n: Int) -> SymmetricEigen {
    precondition(matrix.count == n * n)
    var a = matrix
    var v = [Double](repeating: 0, count: n * n)
    for i in 0..<n { v[i * n + i] = 1 }
    let scale = max(matrix.reduce(0.0) { $0 + $1 * $1 }, Double.leastNormalMagnitude)
    for _ in 0..<100 {
        var off = 0.0
        for p in 0..<n { for q in (p + 1)..<n { off += a[p * n + q] * a[p * n + q] } }
        if off <= 1e-30 * scale { break }
        for p in 0..<n {
            for q in (p + 1)..<n {
                let apq = a[p * n + q]
                if apq == 0 { continue }
                // The rotation (c, s) in the (p, q) plane that zeroes a[p][q].
                let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0..<n {  // columns: A P, V P
                    let akp = a[k * n + p], akq = a[k * n + q]
                    a[k * n + p] = c * akp - s * akq
                    a[k * n + q] = s * akp + c * akq
                    let vkp = v[k * n + p], vkq = v[k * n + q]
                    v[k * n + p] = c * vkp - s * vkq
                    v[k * n + q] = s * vkp + c * vkq
                }
                for k in 0..<n {  // rows: P^T (A P)
                    let apk = a[p * n + k], aqk = a[q * n + k]
                    a[p * n + k] = c * apk - s * aqk
                    a[q * n + k] = s * apk + c * aqk
                }
            }
        }
    }
    let order = (0..<n).sorted { a[$0 * n + $0] > a[$1 * n + $1] }
    var vectors = [Double](repeating: 0, count: n * n)
    for (k, column) in order.enumerated() {
        var largest = 0.0
        for i in 0..<n where abs(v[i * n + column]) > abs(largest) { largest = v[i * n + column] }
        let sign = largest < 0 ? -1.0 : 1.0
        for i in 0..<n { vectors[k * n + i] = sign * v[i * n + column] }
    }
    return SymmetricEigen(values: order.map { a[$0 * n + $0] }, vectors: vectors)
}
