import Foundation

// What data-parallel training needs from a process group: the rank and world size,
// in-place sum allreduce (blocking, and started now / finished later so it overlaps
// with backward), broadcast, barrier, and a way to end every rank at once.

public protocol Communicator: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// A short name for messages: "mpi" or "single-process".
    var backend: String { get }

    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws(CommunicatorError)
    func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws(CommunicatorError)
    /// Min and max of one value over all ranks (cheap agreement checks).
    func allreduceMinMax(_ value: UInt64) throws(CommunicatorError) -> (min: UInt64, max: UInt64)
    /// Starts an in-place sum allreduce; the buffer must not be touched until `finishReductions`.
    func startAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws(CommunicatorError)
    /// Waits for every reduction started with `startAllreduceSum`.
    func finishReductions() throws(CommunicatorError)
    /// Lets started reductions make progress (MPI progresses nonblocking collectives only inside
    /// MPI calls); returns at once.
    func progressReductions() throws(CommunicatorError)
    /// Sums `input` [shards.total] over ranks and leaves this rank's block in `output` [its count].
    func reduceScatterSum(_ input: UnsafePointer<Float>, shards: Shards, into output: UnsafeMutablePointer<Float>) throws(CommunicatorError)
    /// In place: block r of `buffer` [shards.total] comes from rank r.
    func allgatherInPlace(_ buffer: UnsafeMutablePointer<Float>, shards: Shards) throws(CommunicatorError)
    func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) throws(CommunicatorError)
    /// Gathers `count` floats from every rank into `output` [size, count], rank order.
    func allgather(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) throws(CommunicatorError)
    func barrier() throws(CommunicatorError)
    /// `count` floats of memory every rank maps, the same bytes on each (not initialized), when
    /// every rank runs on this node; nil when the ranks span nodes, there is one rank, or the MPI
    /// library cannot give shared memory (on every rank alike). Collective.
    func allocateShared(count: Int) throws(CommunicatorError) -> UnsafeMutablePointer<Float>?
    /// A barrier over the ranks sharing memory that also orders each rank's writes to it before
    /// the other ranks' reads after it.
    func synchronizeShared() throws(CommunicatorError)
    /// What the following collectives belong to (a step, the evaluation...), for stall reports.
    /// Set before each step's collectives; costs nothing.
    var phase: CollectivePhase { get set }
    /// Arms the stall watchdog: from then on every collective waits at most `timeout` seconds
    /// (0, or anything not positive and finite: no deadline and no heartbeats), warns at half of
    /// it, and at the deadline the ranks that can still talk name the ranks that have not arrived
    /// (StallWatchdog.swift) and this throws a `CommunicatorError` with `isStall` (already
    /// printed: only abort). The first call is a collective (every rank, at the same point,
    /// whatever its timeout); later calls only change this rank's deadline.
    func armWatchdog(timeout: Double) throws(CommunicatorError)
    /// Ends every rank of the job with `code` (MPI_Abort); never returns.
    func abort(code: Int32) -> Never
    func finalize()
    /// The algorithm of the nonblocking allreduce and what chose it, for the start-up line; nil
    /// when it is not vae-dist's to choose (one process, MPI initialized by someone else).
    var allreduceAlgorithm: String? { get }
    /// How buckets started during backward move on while it computes, for the start-up line.
    var overlapProgress: String { get }
    /// With a progress thread: whether reductions started with `startAllreduceSum` are still
    /// incomplete, asked without any MPI call (so a caller that only waits sees the thread's
    /// work). nil without a progress thread.
    var reductionsOutstandingWithoutPolling: Bool? { get }
    /// Where this rank sits among the job's nodes, when it spans several and some node runs more
    /// than one rank; nil otherwise. Collective (makes the communicators the two next calls use).
    func nodeLayout() throws(CommunicatorError) -> NodeLayout?
    /// `count` floats that every rank of this node maps (not initialized), on any number of nodes;
    /// nil on every rank when some node cannot map them. Collective; after `nodeLayout`.
    func allocateNodeShared(count: Int) throws(CommunicatorError) -> UnsafeMutablePointer<Float>?
    /// In-place sum over the ranks of every node that have this rank's local rank (one per node
    /// with uniform nodes). Every rank calls it (`count` may be 0); after `nodeLayout`.
    func crossNodeAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws(CommunicatorError)
    /// All-to-all of blocks (MPI_Ialltoallv): block r of `send` [exchange.shards.total elements]
    /// goes to rank r, and `received` [size, this rank's block] gets every rank's block of this
    /// rank's shard, in rank order.
    func exchangeBlocks(_ send: UnsafeRawPointer, into received: UnsafeMutableRawPointer, exchange: BlockExchange) throws(CommunicatorError)
    /// In place (MPI_Iallgatherv): block r of `buffer` [exchange.shards.total elements] comes from rank r.
    func allgatherBlocksInPlace(_ buffer: UnsafeMutableRawPointer, exchange: BlockExchange) throws(CommunicatorError)
    /// `exchangeBlocks` and `allgatherBlocksInPlace` among the ranks of every node that have this
    /// rank's local rank (ranks as `NodeLayout.crossNodeRank`); after `nodeLayout`.
    func crossNodeExchangeBlocks(_ send: UnsafeRawPointer, into received: UnsafeMutableRawPointer, exchange: BlockExchange) throws(CommunicatorError)
    func crossNodeAllgatherBlocksInPlace(_ buffer: UnsafeMutableRawPointer, exchange: BlockExchange) throws(CommunicatorError)
}

/// This rank's node: `localSize` ranks share its memory, it is the `localRank`-th of them.
public struct NodeLayout: Sendable, Equatable {
    public let localRank: Int
    public let localSize: Int
    public let nodes: Int
    /// Every node runs `localSize` ranks.
    public let uniform: Bool
    /// This rank's place among the ranks of its local rank on every node (the cross-node
    /// collectives' rank): with uniform nodes, the node's index.
    public let crossNodeRank: Int
    /// How many ranks share this rank's local rank across nodes (`nodes` with uniform nodes).
    public let crossNodeSize: Int
    public init(localRank: Int, localSize: Int, nodes: Int, uniform: Bool, crossNodeRank: Int = 0, crossNodeSize: Int = 1) {
        self.localRank = localRank
        self.localSize = localSize
        self.nodes = nodes
        self.uniform = uniform
        self.crossNodeRank = crossNodeRank
        self.crossNodeSize = crossNodeSize
    }
}

extension Communicator {
    /// One rank: its own block is the whole exchange.
    public func exchangeBlocks(_ send: UnsafeRawPointer, into received: UnsafeMutableRawPointer, exchange: BlockExchange) throws(CommunicatorError) {
        guard size == 1 else { throw CommunicatorError(call: "exchangeBlocks", message: "\(backend) cannot exchange blocks") }
        received.copyMemory(from: send, byteCount: exchange.shards.total * exchange.elementBytes)
    }
    public func allgatherBlocksInPlace(_ buffer: UnsafeMutableRawPointer, exchange: BlockExchange) throws(CommunicatorError) {
        guard size == 1 else { throw CommunicatorError(call: "allgatherBlocksInPlace", message: "\(backend) cannot gather blocks") }
    }
    public var allreduceAlgorithm: String? { nil }
    public var overlapProgress: String { "nothing to overlap" }
    public var reductionsOutstandingWithoutPolling: Bool? { nil }
    public func crossNodeExchangeBlocks(_ send: UnsafeRawPointer, into received: UnsafeMutableRawPointer, exchange: BlockExchange) throws(CommunicatorError) {
        throw CommunicatorError(call: "crossNodeExchangeBlocks", message: "no node communicators")
    }
    public func crossNodeAllgatherBlocksInPlace(_ buffer: UnsafeMutableRawPointer, exchange: BlockExchange) throws(CommunicatorError) {
        throw CommunicatorError(call: "crossNodeAllgatherBlocksInPlace", message: "no node communicators")
    }
    public func nodeLayout() throws(CommunicatorError) -> NodeLayout? { nil }
    public func allocateNodeShared(count: Int) throws(CommunicatorError) -> UnsafeMutablePointer<Float>? { nil }
    public func crossNodeAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws(CommunicatorError) {
        if size > 1 { throw CommunicatorError(call: "crossNodeAllreduceSum", message: "no node communicators") }
    }
}

/// `total` elements cut into one contiguous block per rank, sizes differing by at most one
/// (the layout of reduce-scatter and allgather; counts in MPI's Int32, computed once).
public final class Shards: Sendable {
    public let total: Int
    public let counts: [Int32]
    public let offsets: [Int32]

    public init(total: Int, ranks: Int) {
        precondition(total < Int(Int32.max) && ranks >= 1)
        self.total = total
        let base = total / ranks, extra = total % ranks
        counts = (0..<ranks).map { Int32(base + ($0 < extra ? 1 : 0)) }
        var running: Int32 = 0
        var starts: [Int32] = []
        for c in counts { starts.append(running); running += c }
        offsets = starts
    }

    /// The elements rank `rank` owns.
    public func range(_ rank: Int) -> Range<Int> { Int(offsets[rank]) ..< Int(offsets[rank] + counts[rank]) }
}

/// The byte counts and offsets with which `rank` exchanges the blocks of `shards` of elements of
/// `elementBytes` bytes (MPI_BYTE counts: the exchanges carry 16-bit values MPI has no sum for,
/// and none is asked of it). Allocated once, and alive while a nonblocking call reads them.
public final class BlockExchange: @unchecked Sendable {
    public let shards: Shards
    public let elementBytes: Int
    /// Rank r's block of the whole buffer: where this rank sends it from, and every allgather's layout.
    let blockBytes: UnsafeMutablePointer<Int32>, blockOffsets: UnsafeMutablePointer<Int32>
    /// This rank's block from every rank, one after another.
    let receiveBytes: UnsafeMutablePointer<Int32>, receiveOffsets: UnsafeMutablePointer<Int32>

    public init(shards: Shards, rank: Int, elementBytes: Int) {
        precondition(shards.total * elementBytes < Int(Int32.max))
        self.shards = shards
        self.elementBytes = elementBytes
        let n = shards.counts.count, mine = Int(shards.counts[rank]) * elementBytes
        blockBytes = .allocate(capacity: n); blockOffsets = .allocate(capacity: n)
        receiveBytes = .allocate(capacity: n); receiveOffsets = .allocate(capacity: n)
        for r in 0..<n {
            blockBytes[r] = shards.counts[r] * Int32(elementBytes)
            blockOffsets[r] = shards.offsets[r] * Int32(elementBytes)
            receiveBytes[r] = Int32(mine)
            receiveOffsets[r] = Int32(r * mine)
        }
    }

    deinit { [blockBytes, blockOffsets, receiveBytes, receiveOffsets].forEach { $0.deallocate() } }
}

public struct CommunicatorError: Error, CustomStringConvertible {
    public let call: String
    public let message: String
    /// A stall the watchdog detected; its line is printed already (tagged with the rank).
    public let isStall: Bool
    public init(call: String, message: String) { self.call = call; self.message = message; isStall = false }
    public init(stall message: String, call: String) { self.call = call; self.message = message; isStall = true }
    public var description: String { isStall ? message : "\(call) failed: \(message)" }
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    /// Broadcasts an array of trivial values from `root` (the count must agree).
    public func broadcast<T: BitwiseCopyable>(_ array: inout [T], root: Int) throws(CommunicatorError) {
        let count = array.count
        var failure: CommunicatorError?
        array.withUnsafeMutableBytes { raw in
            do throws(CommunicatorError) { try broadcast(raw.baseAddress!, byteCount: count * MemoryLayout<T>.stride, root: root) } catch { failure = error }
        }
        if let failure { throw failure }
    }
}

/// The world of one process: every collective is the identity.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var backend: String { "single-process" }
    public var phase: CollectivePhase {
        get { .startup }
        set {}
    }
    /// One process never waits for another: nothing to watch.
    public func armWatchdog(timeout: Double) {}
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {}
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) {}
    public func allreduceMinMax(_ value: UInt64) -> (min: UInt64, max: UInt64) { (value, value) }
    public func startAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {}
    public func finishReductions() {}
    public func progressReductions() {}
    public func reduceScatterSum(_ input: UnsafePointer<Float>, shards: Shards, into output: UnsafeMutablePointer<Float>) {
        output.update(from: input, count: shards.total)
    }
    public func allgatherInPlace(_ buffer: UnsafeMutablePointer<Float>, shards: Shards) {}
    public func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) {}
    public func allgather(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) {
        output.update(from: input, count: count)
    }
    public func barrier() {}
    public func allocateShared(count: Int) -> UnsafeMutablePointer<Float>? { nil }
    public func synchronizeShared() {}
    public func abort(code: Int32) -> Never { exit(code) }
    public func finalize() {}
}

/// True when this process was started by an MPI launcher (mpirun/mpiexec of Open MPI,
/// srun with PMIx or PMI2, Hydra): then MPI must be initialized. VAE_DIST_MPI=0 or 1 overrides.
public func launchedByMPI(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
    if let forced = environment["VAE_DIST_MPI"] { return forced == "1" }
    for key in ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"] where environment[key] != nil {
        return true
    }
    return false
}

/// The communicator for this process: MPI when launched by mpirun/srun, else single-process.
public func makeCommunicator() throws(CommunicatorError) -> any Communicator {
    launchedByMPI() ? try MPICommunicator() : SingleProcessCommunicator()
}
