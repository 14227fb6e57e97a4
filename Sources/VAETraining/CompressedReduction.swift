import VAECheckpoint
import VAEDistributed
import VAEKernels
import VAEModel

/// --grad-compression bf16|fp16 across ranks that talk through MPI: the gradient crosses the
/// network in 16 bits and every sum is kept in fp32 (what PyTorch DDP's bf16/fp16 compression
/// hooks intend; their allreduce of 16-bit values would also add in 16 bits). After backward:
///
///   g [P] fp32 --round (1)--> w [P] 16-bit, cut into one block per rank (Shards)
///   all-to-all (MPI_Ialltoallv): rank r receives block r of every rank's w   [size, block r]
///   s [block r] fp32 = w_0 + w_1 + ... + w_{size-1}, widened exactly, added in rank order
///   s --round (2)--> 16-bit into block r of w; allgather (MPI_Iallgatherv) of the blocks in place
///   g = w widened: every rank, its own block included, holds the same bits.
///
/// Rounding enters exactly twice: once when each rank's gradient is compressed, once when each
/// summed shard is; the adds themselves are fp32. Each rank sends and receives 2 (p-1)/p P
/// 16-bit values (Rabenseifner's fp32 allreduce moves the same count of fp32 values): half the
/// bytes. With --shard-optimizer the second rounding and the allgather are not needed: Adam
/// reads the fp32 shard sums and the parameters go round in fp32 as before.
/// Not overlapped with backward (the all-to-all needs the whole gradient).
final class CompressedReduction: GradientReduction {
    let communicator: any Communicator
    let model: VAE
    let compression: GradientCompression
    let format: SixteenBitFormat
    let sharded: Bool
    /// The 16-bit all-to-all and allgather over the whole gradient, with its buffers.
    let sum: CompressedSum
    private var shards: Shards { sum.exchange.shards }

    init(model: VAE, communicator: any Communicator, compression: GradientCompression, sharded: Bool) {
        precondition(compression != .none)
        self.model = model
        self.communicator = communicator
        self.compression = compression
        format = compression == .fp16 ? .half : .bfloat16
        self.sharded = sharded
        sum = CompressedSum(count: model.parameterCount, communicator: communicator, format: format)
    }

    var name: String {
        let sum = "\(compression.rawValue) on the network: all-to-all of 16-bit blocks, each rank's block summed in fp32"
        return sharded ? "sharded optimizer (\(sum), Adam on 1/\(communicator.size) of the parameters, fp32 allgather of the parameters)"
            : "allreduce after backward in 16 bits (\(sum), 16-bit allgather of the sums)"
    }

    var updateRange: Range<Int> { sharded ? shards.range(communicator.rank) : 0..<model.parameterCount }
    var reducedGradients: UnsafeMutablePointer<Float> { sharded ? sum.shard : model.gradients }

    /// fp16 carries at most 65504: a gradient element beyond 65504 / ranks (where even the sum
    /// of such values could overflow) counts as non-finite, so the step is skipped as a bad one
    /// instead of updating with Inf. bf16 has fp32's range.
    func localGradientIsFinite() -> Bool {
        guard format == .half else { return localGradientIsAllFinite() }
        return allWithin(model.gradients, count: model.parameterCount, limit: 65504 / Float(communicator.size))
    }

    func reduce() throws {
        try sum.reduce(model.gradients, sharded: sharded)
    }

    func shareParameters() throws {
        if sharded { try communicator.allgatherInPlace(model.parameters, shards: shards) }
    }

    func shareOptimizerState(_ optimizer: AdamOptimizer) throws {
        if sharded { try gatherMoments(optimizer, shards: shards) }
    }

    /// Unsharded: the whole reduced gradient is here (`blockwiseSquaredNorm`). Sharded: each
    /// rank's shard's sum of squares, exchanged and added in rank order (as ShardedReduction).
    func squaredGradientNorm() throws -> Double {
        guard sharded else { return blockwiseSquaredNorm(model.gradients) }
        return try withUnsafeTemporaryAllocation(of: Double.self, capacity: communicator.size) { partials throws(CommunicatorError) in
            partials.initialize(repeating: 0)
            partials[communicator.rank] = sumOfSquares(sum.shard, count: updateRange.count)
            try communicator.allreduceSum(partials.baseAddress!, count: partials.count)
            var total = 0.0
            for p in partials { total += p }
            return total
        }
    }
}

/// Who sums a `CompressedSum`: every rank, or (the hierarchy's cross-node leg) the ranks of every
/// node that have this rank's local rank.
enum BlockGroup {
    case world
    case crossNode(NodeLayout)
}

/// The sum over a group of ranks of `count` floats that cross the network in 16 bits (the scheme
/// above): `reduce` rounds, exchanges and sums this rank's block in fp32 into `shard`, then
/// (unless `sharded`) rounds the summed blocks, allgathers them and widens the whole sum back in
/// place. Blocks may be empty (fewer elements than ranks).
final class CompressedSum {
    let communicator: any Communicator
    let group: BlockGroup
    let format: SixteenBitFormat
    let exchange: BlockExchange
    let count: Int
    /// This rank's place in the group, and the group's size.
    let rank: Int, size: Int
    private let wire: UnsafeMutablePointer<UInt16>      // [count] this rank's compressed values, then every summed block
    private let received: UnsafeMutablePointer<UInt16>  // [size, this rank's block]
    /// [this rank's block] the fp32 sums.
    let shard: UnsafeMutablePointer<Float>

    init(count: Int, communicator: any Communicator, format: SixteenBitFormat, group: BlockGroup = .world) {
        self.count = count
        self.communicator = communicator
        self.format = format
        self.group = group
        switch group {
        case .world: (rank, size) = (communicator.rank, communicator.size)
        case .crossNode(let layout): (rank, size) = (layout.crossNodeRank, layout.crossNodeSize)
        }
        let shards = Shards(total: count, ranks: size)
        exchange = BlockExchange(shards: shards, rank: rank, elementBytes: 2)
        let mine = max(Int(shards.counts[rank]), 1)
        wire = .allocate(capacity: max(count, 1))
        received = .allocate(capacity: size * mine)
        shard = allocateAligned(mine)
    }

    deinit {
        wire.deallocate()
        received.deallocate()
        shard.deallocate()
    }

    func reduce(_ values: UnsafeMutablePointer<Float>, sharded: Bool) throws {
        let block = exchange.shards.range(rank)
        compress(values, count: count, into: wire, format: format)                                  // rounding (1)
        switch group {
        case .world: try communicator.exchangeBlocks(wire, into: received, exchange: exchange)
        case .crossNode: try communicator.crossNodeExchangeBlocks(wire, into: received, exchange: exchange)
        }
        sumWidened(received, blocks: size, count: block.count, into: shard, format: format)
        if sharded { return }
        compress(shard, count: block.count, into: wire + block.lowerBound, format: format)           // rounding (2)
        switch group {
        case .world: try communicator.allgatherBlocksInPlace(wire, exchange: exchange)
        case .crossNode: try communicator.crossNodeAllgatherBlocksInPlace(wire, exchange: exchange)
        }
        decompress(wire, count: count, into: values, format: format)
    }
}

/// A note for the start-up when --grad-compression asks for something the chosen strategy does
/// not do: ranks summing through one node's shared memory send no gradient over a network, and
/// the hierarchy's cross-node leg stays fp32. nil when there is nothing to say.
func compressionNote(options: TrainingOptions, reduction: any GradientReduction) -> String? {
    guard options.gradCompression != .none, reduction.communicator.size > 1, !(reduction is CompressedReduction) else { return nil }
    let flag = "--grad-compression \(options.gradCompression.rawValue)"
    switch reduction {
    case is SharedMemoryReduction:
        return "vae-dist: note: \(flag) does nothing here: every rank is on this node and the gradients are summed through shared memory, where nothing crosses a network (VAE_DIST_SHARED_MEMORY=0 sends them through MPI)"
    case let hierarchical as HierarchicalReduction:
        if hierarchical.crossSum != nil { return nil }
        return "vae-dist: note: \(flag) does nothing here: the nodes run different numbers of ranks, and then the hierarchical sum's cross-node allreduce (by each node's first rank) stays fp32"
    default:
        return "vae-dist: note: \(flag) does nothing with this reduction (\(reduction.name))"
    }
}
