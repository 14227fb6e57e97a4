import VAECheckpoint
import VAEDistributed
import VAEKernels
import VAEModel

/// Ranks on several nodes, some node running more than one: the ranks of a node first add up
/// their gradients through one shared-memory window (as SharedMemoryReduction does on one node),
/// then only the node sums cross the network, and the result comes back through the same memory
/// (Horovod's hierarchical allreduce). Each node thus sends one gradient over its link where the
/// flat allreduce sends one per rank.
///
/// Layout of the node's window: k slots of P floats (one per local rank) and the result [P].
///   backward writes slot i | B1 | local rank i sums block i of every slot into result[i] and
///   allreduces result[i] with local rank i of every other node | B2 | Adam reads the result
/// With nodes of unequal rank counts only local rank 0 reduces across nodes, the whole result,
/// after one more barrier (the others call the collective with an empty buffer). The sum of an
/// element is (node sum in local rank order) summed over nodes in the order of the allreduce's
/// algorithm: on 2 nodes (a0 + a1) + (b0 + b1), the order --deterministic uses on 4 ranks.
/// After backward only: the node sum needs every local rank's gradient first.
///
/// With --grad-compression bf16|fp16 and uniform nodes, the cross-node leg is CompressedSum's
/// 16-bit all-to-all + allgather among the ranks of each local rank (instead of the fp32
/// allreduce): local rank i rounds block i of its node's sum to 16 bits (rounding 1), the
/// blocks' owners add them in fp32 in node order and round the sums (rounding 2). Each node then
/// sends its gradient over the link in 16 bits. Nodes of unequal rank counts keep the fp32 leg.
final class HierarchicalReduction: GradientReduction {
    let communicator: any Communicator
    let model: VAE
    let layout: NodeLayout
    /// The node's blocks, one per local rank.
    let blocks: Shards
    private let slots: [UnsafeMutablePointer<Float>]
    private let blockOfSlots: [UnsafePointer<Float>]
    private let result: UnsafeMutablePointer<Float>
    private var scaled = false
    /// The 16-bit cross-node leg (--grad-compression, uniform nodes); nil: the fp32 allreduce.
    let crossSum: CompressedSum?

    /// nil when the ranks are on one node, one per node, or some node cannot map shared memory (on
    /// every rank alike). Collective.
    init?(model: VAE, communicator: any Communicator, compression: GradientCompression = .none) throws {
        guard let layout = try communicator.nodeLayout() else { return nil }
        let p = model.parameterCount, k = layout.localSize
        let stride = (p + 15) / 16 * 16
        guard let base = try communicator.allocateNodeShared(count: (k + 1) * stride) else { return nil }
        self.model = model
        self.communicator = communicator
        self.layout = layout
        blocks = Shards(total: p, ranks: k)
        slots = (0..<k).map { base + $0 * stride }
        let block = blocks.range(layout.localRank)
        blockOfSlots = slots.map { UnsafePointer($0 + block.lowerBound) }
        result = base + k * stride
        crossSum = compression == .none || !layout.uniform ? nil
            : CompressedSum(count: block.count, communicator: communicator, format: compression == .fp16 ? .half : .bfloat16,
                            group: .crossNode(layout))
    }

    var name: String {
        let across = layout.uniform ? "each of the \(layout.localSize) local ranks 1/\(layout.localSize) of it" : "by each node's first rank"
        let algorithm = communicator.allreduceAlgorithm.map { ", \($0)" } ?? ""
        let leg = crossSum.map { "\($0.format == .half ? "fp16" : "bf16") sum (16-bit all-to-all, fp32 adds, 16-bit allgather) of the node sums across \(layout.nodes) nodes (\(across))" }
            ?? "allreduce of the node sums across \(layout.nodes) nodes (\(across)\(algorithm))"
        return "hierarchical after backward: sum over shared memory on each node (\(layout.localSize) ranks here), then " + leg
    }

    /// fp16 on the cross-node leg carries at most 65504 (as CompressedReduction).
    func localGradientIsFinite() -> Bool {
        guard crossSum?.format == .half else { return localGradientIsAllFinite() }
        return allWithin(slot, count: model.parameterCount, limit: 65504 / Float(communicator.size))
    }

    var updateRange: Range<Int> { 0..<model.parameterCount }
    var reducedGradients: UnsafeMutablePointer<Float> { scaled ? model.gradients : result }
    private var slot: UnsafeMutablePointer<Float> { slots[layout.localRank] }

    func scaleGradients(by coefficient: Float) {
        vectorScale(result, by: coefficient, count: model.parameterCount, into: model.gradients)
        scaled = true
    }

    /// Backward writes this rank's slot of the node's shared window.
    var localGradient: UnsafeMutablePointer<Float> { slot }

    func reduce() throws {
        scaled = false
        try communicator.synchronizeShared()
        let block = blocks.range(layout.localRank)
        if slots.count == 1 {
            result.update(from: slot, count: model.parameterCount)
        } else {
            sumSlots(blockOfSlots, into: result + block.lowerBound, count: block.count, threads: model.threads)
        }
        if let crossSum {
            try crossSum.reduce(result + block.lowerBound, sharded: false)
        } else if layout.uniform {
            try communicator.crossNodeAllreduceSum(result + block.lowerBound, count: block.count)
        } else {
            try communicator.synchronizeShared()
            try communicator.crossNodeAllreduceSum(result, count: layout.localRank == 0 ? model.parameterCount : 0)
        }
        try communicator.synchronizeShared()
    }

    func squaredGradientNorm() throws -> Double { blockwiseSquaredNorm(result) }
}
