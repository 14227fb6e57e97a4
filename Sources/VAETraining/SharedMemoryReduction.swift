import VAEDistributed
import VAEKernels
import VAEModel

/// The ranks of one node sum each other's gradients straight from shared memory: each rank's
/// backward writes its own slot of one shared buffer, then each rank adds up its 1/N block of
/// every slot (in rank order) into the shared result, which Adam reads on every rank (or, with
/// the sharded optimizer, each rank updates its block and the others copy the new parameters
/// from the shared buffer). MPI's shared-memory transport instead copies every message through
/// a second buffer.
/// Each slot starts on a 64-byte boundary, and each rank first touches its own slot and blocks
/// (nothing is zeroed at allocation), so on a multi-socket node their pages sit near their writer.
///
/// Layout: N slots of P floats (one per rank's local gradient), the result [P], and with the
/// sharded optimizer the parameters [P]. Two barriers per step keep writers and readers apart:
///   backward writes slot k  | B1 | rank k sums block k of all slots into result[k] | B2 |
///   the norm (clipping) and Adam read the result
/// The next step's backward rewrites slot k after B2, when nobody reads slots any more; its
/// sums rewrite the result after its B1, which every rank reaches after it last read the result.
/// Sharded, a training step without clipping sums each piece of block k as Adam updates it and
/// copies its new parameters to parameters[k] while they are in L1 (`update`: the same bits,
/// without writing the sum out and reading it back), and no rank reads another's sums, so B2
/// goes:
///   backward writes slot k | B1 | rank k sums and updates block k, writes it to parameters[k] |
///   B3 | copies the other blocks
/// The next step's backward rewrites slot k after B3, which every rank reaches after its sums;
/// its new parameters are written after its B1, which every rank reaches after copying them.
/// With clipping the norm needs every block's sum: `squaredGradientNorm` makes them first, as
/// `reduce` does (B1, sums, B2), and B3 follows the update.
final class SharedMemoryReduction: GradientReduction {
    let communicator: any Communicator
    let model: VAE
    let shards: Shards
    let sharded: Bool
    private let slots: [UnsafeMutablePointer<Float>]
    /// This rank's block of every slot (what its `reduce` adds up).
    private let blockOfSlots: [UnsafePointer<Float>]
    private let result: UnsafeMutablePointer<Float>
    private let parameters: UnsafeMutablePointer<Float>?
    /// Clipping scaled a copy of this rank's part of the result into model.gradients.
    private var scaled = false
    /// After B1 of `reduceForUpdate`: the result's block not summed yet (sharded only).
    private var sumPending = false
    /// `update` wrote this rank's block to the shared parameters already.
    private var published = false

    /// nil when the ranks do not share one node (or there is one rank).
    init?(model: VAE, communicator: any Communicator, sharded: Bool) throws {
        let p = model.parameterCount, n = communicator.size
        let stride = (p + 15) / 16 * 16
        guard n > 1, let base = try communicator.allocateShared(count: (n + (sharded ? 2 : 1)) * stride) else { return nil }
        self.model = model
        self.communicator = communicator
        self.sharded = sharded
        shards = Shards(total: p, ranks: n)
        slots = (0..<n).map { base + $0 * stride }
        let block = shards.range(communicator.rank)
        blockOfSlots = slots.map { UnsafePointer($0 + block.lowerBound) }
        result = base + n * stride
        parameters = sharded ? base + (n + 1) * stride : nil
    }

    var name: String {
        let n = communicator.size
        return sharded ? "sharded optimizer over shared memory (\(n) ranks on one node: each sums and updates 1/\(n) of the parameters)"
            : "sum over shared memory after backward (\(n) ranks on one node)"
    }

    var updateRange: Range<Int> { sharded ? shards.range(communicator.rank) : 0..<model.parameterCount }
    /// The shared result, or after clipping this rank's scaled copy of its part of it.
    var reducedGradients: UnsafeMutablePointer<Float> { (scaled ? model.gradients : result) + updateRange.lowerBound }
    /// Backward writes this rank's own slot.
    var localGradient: UnsafeMutablePointer<Float> { slots[communicator.rank] }

    /// Into this rank's own buffer: the other ranks may still be reading the shared result for
    /// the norm.
    func scaleGradients(by coefficient: Float) {
        let range = updateRange
        vectorScale(result + range.lowerBound, by: coefficient, count: range.count, into: model.gradients + range.lowerBound)
        scaled = true
    }

    func reduce() throws {
        scaled = false
        sumPending = false
        try communicator.synchronizeShared()
        try sumBlock()
    }

    /// This rank's block of the result from every slot, then B2.
    private func sumBlock() throws {
        let block = shards.range(communicator.rank)
        sumSlots(blockOfSlots, into: result + block.lowerBound, count: block.count, threads: model.threads)
        try communicator.synchronizeShared()
    }

    func reduceForUpdate() throws {
        guard sharded else { return try reduce() }
        scaled = false
        try communicator.synchronizeShared()
        sumPending = true
    }

    func update(_ optimizer: AdamOptimizer) {
        if sumPending, let parameters {
            let block = updateRange
            optimizer.update(model, range: block, summing: blockOfSlots, publish: parameters + block.lowerBound)
            sumPending = false
            published = true
        } else {
            optimizer.update(model, range: updateRange, gradients: reducedGradients)
        }
    }

    func shareParameters() throws {
        guard let parameters else { return }
        let block = shards.range(communicator.rank)
        if !published { (parameters + block.lowerBound).update(from: model.parameters + block.lowerBound, count: block.count) }
        published = false
        try communicator.synchronizeShared()
        for r in 0..<communicator.size where r != communicator.rank {
            let other = shards.range(r)
            (model.parameters + other.lowerBound).update(from: parameters + other.lowerBound, count: other.count)
        }
    }

    func shareOptimizerState(_ optimizer: AdamOptimizer) throws {
        if sharded { try gatherMoments(optimizer, shards: shards) }
    }

    /// Every rank reads the whole reduced gradient: the per-block sums in rank order, as the other
    /// strategies add them.
    func squaredGradientNorm() throws -> Double {
        if sumPending {
            try sumBlock()
            sumPending = false
        }
        return blockwiseSquaredNorm(result)
    }
}

/// into[i] = slots[0][i] + slots[1][i] + ... for i < count, added in slot order (at least two
/// slots), cut into blocks on `threads`.
public func sumSlots(_ slots: [UnsafePointer<Float>], into: UnsafeMutablePointer<Float>, count: Int, threads: KernelThreads) {
    precondition(slots.count >= 2)
    threads.forEachRange(count, alignment: 16, minimum: 16_384, SumSlots(slots: slots, into: into))
}

struct SumSlots: RangeWork {
    let slots: [UnsafePointer<Float>]
    let into: UnsafeMutablePointer<Float>

    func run(_ range: Range<Int>, thread: Int) {
        // In pieces that stay in L1 while every slot is added.
        var start = range.lowerBound
        while start < range.upperBound {
            let n = min(4096, range.upperBound - start), out = into + start
            vectorAdd(out, slots[0] + start, slots[1] + start, count: n)
            for s in slots.dropFirst(2) { vectorAdd(out, out, s + start, count: n) }
            start += n
        }
    }
}
