import Foundation
import VAECheckpoint
import VAEDistributed
import VAEKernels
import VAEModel

// `vae-dist bench --allreduce --check`: every reduction vae-dist can run, on this job's ranks and
// nodes, against a Double reference (what nccl-tests' -c and the OSU benchmarks' validation do
// for their collectives). Each rank fills its buffer with values it and every other rank can
// compute (`checkValue`), so each rank computes the exact sum of all ranks' values in Double
// and compares its result with it, element by element, within the rounding the reduction may
// add; then the ranks compare their results' bits with each other (the sums must be the same on
// every rank). Two kinds of cases:
//   - the collectives alone on buffers of 0, 1, 2, 3, 5, 7, 13, 1,000 and 65,537 floats: fewer
//     elements than ranks gives empty blocks to reduce-scatter, the all-to-all and the allgathers;
//   - the strategies training uses (makeGradientReduction: shared memory, hierarchical with an
//     fp32 or 16-bit cross-node leg, the overlapped buckets, sharded, 16-bit) on small models whose gradient sizes divide unevenly
//     among the ranks, run as a step runs them: backward's layer-by-layer observer, then reduce.

/// One case's outcome on this rank.
public struct ReductionCheckResult: Sendable {
    public var name: String
    public var count: Int
    /// The largest error over the allowed error (pass: at most 1), and where.
    public var worstRatio: Double
    public var worstIndex: Int
    /// Every rank holds the same bits.
    public var sameOnEveryRank: Bool
    public var passed: Bool { worstRatio <= 1 && sameOnEveryRank }
}

/// Rank `rank`'s value at `index` for case `salt`: magnitudes from 2^-6 to 2^6, both signs, so
/// that sums cancel and round. Never 0 and inside fp16's normal range.
func checkValue(rank: Int, index: Int, salt: UInt64) -> Float {
    var z = UInt64(index) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(rank + 1) &* 0xBF58_476D_1CE4_E5B9 &+ salt &* 0x94D0_49BB_1331_11EB
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    let mantissa = 1 + Float(z & 0xFFFFFF) / Float(1 << 24)      // [1, 2)
    let exponent = Int((z >> 24) % 13) - 6                       // -6 ... 6
    return (z >> 40) & 1 == 0 ? Float(sign: .plus, exponent: exponent, significand: mantissa)
        : Float(sign: .minus, exponent: exponent, significand: mantissa)
}

/// How much rounding a reduction may add to a sum of `ranks` floats: each fp32 addition at most
/// 2^-24 of the running magnitude, and each 16-bit rounding (bf16: 2^-8, fp16: 2^-11 relative) of
/// every value, then of the sum when the sum travels in 16 bits too.
struct RoundingBound {
    var sixteenBit: Double = 0
    var roundsTheSum = false

    func allowed(ranks: Int, absoluteSum: Double, sum: Double) -> Double {
        let fp32 = Double(ranks) * 0x1p-24 * absoluteSum * (1 + sixteenBit)
        let first = sixteenBit * absoluteSum
        let second = roundsTheSum ? sixteenBit * (abs(sum) + first + fp32) : 0
        // A 16-bit sum that cancels to below fp16's normal range (6.1e-5) rounds to 2^-24 steps.
        let subnormal = roundsTheSum ? 0x1p-25 : 0
        return (first + fp32 + second + subnormal) * 1.000001 + 1e-30
    }
}

/// Compares `result` [range] with the Double sum of every rank's values there; then, unless the
/// ranks hold different ranges (`sameRange` false: a shard each), whether every rank holds these
/// bits (a collective: every rank calls it for the same case).
func checkAgainstReference(name: String, result: UnsafePointer<Float>, range: Range<Int>, salt: UInt64, bound: RoundingBound,
                           sameRange: Bool = true, communicator: any Communicator) throws -> ReductionCheckResult {
    var worst = 0.0, worstIndex = range.lowerBound
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for (k, i) in range.enumerated() {
        var sum = 0.0, absoluteSum = 0.0
        for r in 0..<communicator.size {
            let v = Double(checkValue(rank: r, index: i, salt: salt))
            sum += v
            absoluteSum += abs(v)
        }
        let got = Double(result[k])
        let ratio = got.isFinite ? abs(got - sum) / bound.allowed(ranks: communicator.size, absoluteSum: absoluteSum, sum: sum) : .infinity
        if !(ratio <= worst) { worst = ratio; worstIndex = i }
        hash = (hash ^ UInt64(result[k].bitPattern)) &* 0x100_0000_01B3
    }
    // The bits of every element on every rank: each rank hashes the elements it holds.
    let (low, high) = try communicator.allreduceMinMax(hash)
    return ReductionCheckResult(name: name, count: range.count, worstRatio: worst, worstIndex: worstIndex,
                                sameOnEveryRank: low == high || !sameRange)
}

/// The collectives alone, on buffers from empty to 65,537 floats.
public func checkCollectives(communicator: any Communicator) throws -> [ReductionCheckResult] {
    let counts = [0, 1, 2, 3, 5, 7, 13, 1000, 65_537]
    var results: [ReductionCheckResult] = []
    for (c, count) in counts.enumerated() {
        let buffer = allocateAligned(max(count, 1)), block = allocateAligned(max(count, 1))
        defer { buffer.deallocate(); block.deallocate() }
        let shards = Shards(total: count, ranks: communicator.size)
        let mine = shards.range(communicator.rank)
        func fill(_ salt: UInt64) {
            for i in 0..<count { buffer[i] = checkValue(rank: communicator.rank, index: i, salt: salt) }
        }
        func check(_ name: String, _ salt: UInt64, bound: RoundingBound = RoundingBound()) throws {
            results.append(try checkAgainstReference(name: name, result: buffer, range: 0..<count, salt: salt, bound: bound,
                                                     communicator: communicator))
        }
        let salt = UInt64(c) * 16
        fill(salt + 1)
        try communicator.allreduceSum(buffer, count: count)
        try check("allreduce", salt + 1)

        // Buckets as backward starts them: three uneven pieces, the last first, all in flight at once.
        fill(salt + 2)
        let cuts = [0, count / 5, count / 2, count]
        for b in (0..<3).reversed() where cuts[b + 1] > cuts[b] {
            try communicator.startAllreduceSum(buffer + cuts[b], count: cuts[b + 1] - cuts[b])
        }
        try communicator.finishReductions()
        try check("iallreduce in 3 buckets", salt + 2)

        // The progress thread alone completes a started allreduce: this thread makes no MPI
        // call until it is done (or 20 s have passed, which fails the case: it takes milliseconds).
        if count == 65_537, communicator.reductionsOutstandingWithoutPolling != nil {
            fill(salt + 8)
            try communicator.startAllreduceSum(buffer, count: count)
            let start = Date()
            while communicator.reductionsOutstandingWithoutPolling == true && Date().timeIntervalSince(start) < 20 { usleep(1000) }
            let byThread = communicator.reductionsOutstandingWithoutPolling == false
            try communicator.finishReductions()
            var result = try checkAgainstReference(name: "iallreduce completed by the progress thread alone", result: buffer, range: 0..<count,
                                                   salt: salt + 8, bound: RoundingBound(), communicator: communicator)
            if !byThread { result.worstRatio = .infinity }
            results.append(result)
        }

        fill(salt + 3)
        try communicator.reduceScatterSum(buffer, shards: shards, into: block)
        (buffer + mine.lowerBound).update(from: block, count: mine.count)
        try communicator.allgatherInPlace(buffer, shards: shards)
        try check("reduce-scatter + allgather", salt + 3)

        if communicator.size > 1 {
            for (f, format) in [SixteenBitFormat.bfloat16, .half].enumerated() {
                let name = format == .half ? "fp16" : "bf16"
                let unit = format == .half ? 0x1p-11 : 0x1p-8
                let sum = CompressedSum(count: count, communicator: communicator, format: format)
                let s = salt + 4 + UInt64(f) * 2
                fill(s)
                try sum.reduce(buffer, sharded: false)
                try check("\(name) all-to-all + allgather", s, bound: RoundingBound(sixteenBit: unit, roundsTheSum: true))
                fill(s + 1)
                try sum.reduce(buffer, sharded: true)
                results.append(try checkAgainstReference(name: "\(name) all-to-all, own block (sharded)", result: sum.shard, range: mine,
                                                         salt: s + 1, bound: RoundingBound(sixteenBit: unit), sameRange: false,
                                                         communicator: communicator))
            }
        }
    }
    return results
}

/// The strategies training builds (`makeGradientReduction`), on small models, as a step runs them.
public func checkStrategies(communicator: any Communicator) throws -> [ReductionCheckResult] {
    // Gradient sizes 10, 45, 4,463 and 63,711 floats: none divides evenly among 3 to 7 ranks.
    let models = [ModelConfig(imageHeight: 1, imageWidth: 1, hidden: [1], latent: 1),
                  ModelConfig(imageHeight: 1, imageWidth: 3, hidden: [3], latent: 2),
                  ModelConfig(imageHeight: 7, imageWidth: 9, hidden: [27, 5], latent: 3),
                  ModelConfig(imageHeight: 28, imageWidth: 28, hidden: [40], latent: 3)]
    var strategies: [(String, TrainingOptions, Bool, RoundingBound)] = []
    var options = TrainingOptions()
    strategies.append(("default", options, true, RoundingBound()))
    strategies.append(("allreduce, MPI's collectives (no shared memory)", options, false, RoundingBound()))
    options.shardOptimizer = true
    strategies.append(("sharded", options, true, RoundingBound()))
    strategies.append(("sharded, MPI's collectives", options, false, RoundingBound()))
    options.shardOptimizer = false
    if communicator.size > 1 {
        options.gradCompression = .bf16
        // The job's own layout: shared memory on one node (no network, nothing rounded), the
        // hierarchy's 16-bit cross-node leg across nodes.
        strategies.append(("bf16, this layout", options, true, RoundingBound(sixteenBit: 0x1p-8, roundsTheSum: true)))
        options.gradCompression = .fp16
        strategies.append(("fp16, this layout", options, true, RoundingBound(sixteenBit: 0x1p-11, roundsTheSum: true)))
        options.gradCompression = .bf16
        strategies.append(("bf16", options, false, RoundingBound(sixteenBit: 0x1p-8, roundsTheSum: true)))
        options.gradCompression = .fp16
        options.shardOptimizer = true
        strategies.append(("fp16 sharded", options, false, RoundingBound(sixteenBit: 0x1p-11)))
    }
    var results: [ReductionCheckResult] = []
    for (m, config) in models.enumerated() {
        let model = VAE(config: config)
        let p = model.parameterCount
        for (s, (label, given, sharedMemory, bound)) in strategies.enumerated() {
            var options = given
            // Buckets of about a third of the gradient, so the small models get several.
            options.bucketMB = Double(max(p / 3, 1) * 4) / 1_048_576
            let reduction = try makeGradientReduction(options: options, model: model, communicator: communicator, sharedMemory: sharedMemory)
            let salt = UInt64(1000 + m * 100 + s)
            let target = reduction.gradientTarget(group: 0)
            for i in 0..<p { target.gradients[i] = checkValue(rank: communicator.rank, index: i, salt: salt) }
            // Backward's observer hears each layer become final, the last layer first.
            if let observer = reduction.backwardObserver(lastMicroBatch: true) {
                for start in model.layout.layerStarts.reversed() { observer.gradientsFinal(from: start) }
            }
            try reduction.finishLocalGradient()
            try reduction.reduce()
            let range = reduction.updateRange
            let name = "\(label): \(reduction.name)"
            var result = try checkAgainstReference(name: name, result: reduction.reducedGradients, range: range, salt: salt,
                                                   bound: bound, sameRange: range.count == p, communicator: communicator)
            result.count = p
            results.append(result)
        }
    }
    return results
}
