import CMPI
import Foundation

/// Open MPI over the CMPI shim. Errors return codes (MPI_ERRORS_RETURN on the world
/// communicator) and every code goes through `check`, which names the call. Collectives are
/// the nonblocking forms polled until done, so the stall watchdog can end a wait.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public var backend: String { "mpi" }
    let world: MPI_Comm
    private var pending: [MPI_Request?] = []
    /// The watchdog's sequence number of the last reduction started with `startAllreduceSum`.
    private var pendingSequence: Int64 = 0
    private var finalized = false
    /// The stall watchdog once armed (`armWatchdog`); nil: collectives wait without a deadline.
    private var watchdog: MPIWatchdog?
    public var phase = CollectivePhase.startup
    /// The ranks of this node (all of them) and the shared-memory windows, once `allocateShared` made one.
    var node: MPI_Comm?
    private var windows: [MPI_Win?] = []
    /// The ranks of the other nodes with this rank's local rank (MPICommunicator+Nodes.swift).
    var crossNode: MPI_Comm?
    /// The algorithm of MPI_Iallreduce and what chose it (AllreduceAlgorithm.swift).
    public let allreduceAlgorithm: String?
    /// Why there is no progress thread (nil: MPI gave MPI_THREAD_MULTIPLE, and the thread starts
    /// with the first bucket).
    private let noProgressThread: String?
    private var threadMultiple: Bool { noProgressThread == nil }
    /// The thread that polls the buckets started during backward (ReductionProgress.swift),
    /// made at the first `startAllreduceSum`.
    private var progress: ReductionProgress?

    public init() throws(CommunicatorError) {
        var initialized: Int32 = 0
        try Self.check(MPI_Initialized(&initialized), "MPI_Initialized")
        if initialized == 0 {
            let env = ProcessInfo.processInfo.environment
            // From the world size, the same on every rank (a per-node count could differ between
            // nodes, and ranks running different algorithms in one collective would hang).
            let ranks = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"].lazy.compactMap { env[$0].flatMap { Int($0) } }.first ?? 2
            allreduceAlgorithm = AllreduceAlgorithmChoice.apply(ranks: ranks, environment: env).description
            if ReductionProgress.enabled(env) {
                var provided: Int32 = 0
                try Self.check(MPI_Init_thread(nil, nil, vae_mpi_thread_multiple(), &provided), "MPI_Init_thread")
                noProgressThread = provided >= vae_mpi_thread_multiple() ? nil : "this MPI gives no MPI_THREAD_MULTIPLE"
            } else {
                try Self.check(MPI_Init(nil, nil), "MPI_Init")
                noProgressThread = "VAE_DIST_PROGRESS_THREAD=0"
            }
        } else {
            allreduceAlgorithm = nil
            var level: Int32 = 0
            try Self.check(MPI_Query_thread(&level), "MPI_Query_thread")
            let multiple = level >= vae_mpi_thread_multiple() && ReductionProgress.enabled(ProcessInfo.processInfo.environment)
            noProgressThread = multiple ? nil : "MPI was initialized without MPI_THREAD_MULTIPLE"
        }
        world = vae_mpi_comm_world()
        try Self.check(vae_mpi_errors_return(world), "MPI_Comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try Self.check(MPI_Comm_rank(world, &r), "MPI_Comm_rank")
        try Self.check(MPI_Comm_size(world, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
        pending.reserveCapacity(64)
    }

    static func check(_ code: Int32, _ call: @autoclosure () -> String) throws(CommunicatorError) {
        guard code != vae_mpi_success() else { return }
        throw CommunicatorError(call: call(), message: "\(errorText(code)) (code \(code))")
    }

    /// Open MPI's words for an error code.
    static func errorText(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    // Every collective is nonblocking, polled by `wait` until done or past the watchdog's deadline
    // (MPIWatchdog.swift). `enter` announces it to the watchdog's peers first.

    public func armWatchdog(timeout: Double) throws(CommunicatorError) {
        let seconds = timeout > 0 && timeout.isFinite ? timeout : 0  // 0: off, no heartbeats
        if let watchdog {
            watchdog.timeout = seconds
            return
        }
        guard size > 1 else { return }
        watchdog = try MPIWatchdog(world: world, rank: rank, size: size, timeout: seconds)
    }

    func enter() throws(CommunicatorError) -> Int64 {
        try watchdog?.enter(phase) ?? 0
    }

    /// Polls `requests` until they complete: spins for a moment, then sleeps between polls
    /// (StallClock.pause), and past that moment lets the watchdog warn, hear rank 0's report
    /// and end a stall.
    private func wait(_ requests: UnsafeMutablePointer<MPI_Request?>, count: Int, sequence: Int64,
                      call: StaticString) throws(CommunicatorError) {
        var done: Int32 = 0
        try Self.check(MPI_Testall(Int32(count), requests, &done, nil), "MPI_Testall (\(call))")
        if done != 0 { return }
        var clock = StallClock(timeout: watchdog?.timeout ?? 0, start: MPI_Wtime())
        while true {
            try Self.check(MPI_Testall(Int32(count), requests, &done, nil), "MPI_Testall (\(call))")
            if done != 0 { return }
            let now = MPI_Wtime()
            let pause = StallClock.pause(afterWaiting: now - clock.start)
            if pause == 0 { continue }
            usleep(pause)
            try watchdog?.check(&clock, now: now, sequence: sequence, phase: phase, call: call)
        }
    }

    func wait(_ request: inout MPI_Request?, sequence: Int64, call: StaticString) throws(CommunicatorError) {
        try wait(&request, count: 1, sequence: sequence, call: call)
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws(CommunicatorError) {
        let sequence = try enter()
        var request: MPI_Request? = vae_mpi_request_null()
        try Self.check(MPI_Iallreduce(vae_mpi_in_place(), buffer, Int32(count), vae_mpi_float(), vae_mpi_sum(), world, &request),
                       "MPI_Iallreduce(float, \(count))")
        try wait(&request, sequence: sequence, call: "MPI_Iallreduce(float)")
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws(CommunicatorError) {
        let sequence = try enter()
        var request: MPI_Request? = vae_mpi_request_null()
        try Self.check(MPI_Iallreduce(vae_mpi_in_place(), buffer, Int32(count), vae_mpi_double(), vae_mpi_sum(), world, &request),
                       "MPI_Iallreduce(double, \(count))")
        try wait(&request, sequence: sequence, call: "MPI_Iallreduce(double)")
    }

    public func allreduceMinMax(_ value: UInt64) throws(CommunicatorError) -> (min: UInt64, max: UInt64) {
        var low = value, high = value
        for (target, op) in [(0, vae_mpi_min()), (1, vae_mpi_max())] {
            let sequence = try enter()
            var request: MPI_Request? = vae_mpi_request_null()
            let code = target == 0 ? MPI_Iallreduce(vae_mpi_in_place(), &low, 1, vae_mpi_uint64(), op, world, &request)
                : MPI_Iallreduce(vae_mpi_in_place(), &high, 1, vae_mpi_uint64(), op, world, &request)
            try Self.check(code, "MPI_Iallreduce(\(target == 0 ? "min" : "max"))")
            try wait(&request, sequence: sequence, call: "MPI_Iallreduce(min/max)")
        }
        return (low, high)
    }

    public func startAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws(CommunicatorError) {
        pendingSequence = try enter()
        var request: MPI_Request? = vae_mpi_request_null()
        try Self.check(MPI_Iallreduce(vae_mpi_in_place(), buffer, Int32(count), vae_mpi_float(), vae_mpi_sum(), world, &request),
                       "MPI_Iallreduce(float, \(count))")
        if threadMultiple {
            if progress == nil { progress = ReductionProgress() }
            progress!.add(request)
        } else {
            pending.append(request)
        }
    }

    public var overlapProgress: String {
        noProgressThread.map { "polled between layers: \($0)" } ?? "a progress thread polls them every \(ReductionProgress.defaultInterval) us"
    }

    public var reductionsOutstandingWithoutPolling: Bool? {
        guard threadMultiple else { return nil }
        return progress?.outstanding ?? false
    }

    public func finishReductions() throws(CommunicatorError) {
        if let progress {
            // What the thread has not completed yet comes back here, waited for under the watchdog.
            do { try progress.take(into: &pending) } catch { pending.removeAll(keepingCapacity: true); throw error }
        }
        if pending.isEmpty { return }
        let count = pending.count
        try pending.withUnsafeMutableBufferPointer { p throws(CommunicatorError) in
            try wait(p.baseAddress!, count: count, sequence: pendingSequence, call: "MPI_Iallreduce(gradient buckets)")
        }
        pending.removeAll(keepingCapacity: true)
    }

    public func progressReductions() throws(CommunicatorError) {
        if pending.isEmpty || progress != nil { return }
        var done: Int32 = 0
        let count = Int32(pending.count)
        let code = pending.withUnsafeMutableBufferPointer { MPI_Testall(count, $0.baseAddress, &done, nil) }
        try Self.check(code, "MPI_Testall")
        if done != 0 { pending.removeAll(keepingCapacity: true) }
    }

    public func reduceScatterSum(_ input: UnsafePointer<Float>, shards: Shards, into output: UnsafeMutablePointer<Float>) throws(CommunicatorError) {
        let sequence = try enter()
        var request: MPI_Request? = vae_mpi_request_null()
        let code = shards.counts.withUnsafeBufferPointer {
            MPI_Ireduce_scatter(input, output, $0.baseAddress, vae_mpi_float(), vae_mpi_sum(), world, &request)
        }
        try Self.check(code, "MPI_Ireduce_scatter(float, \(shards.total))")
        try wait(&request, sequence: sequence, call: "MPI_Ireduce_scatter")
    }

    public func allgatherInPlace(_ buffer: UnsafeMutablePointer<Float>, shards: Shards) throws(CommunicatorError) {
        let sequence = try enter()
        var request: MPI_Request? = vae_mpi_request_null()
        let code = shards.counts.withUnsafeBufferPointer { c in
            shards.offsets.withUnsafeBufferPointer { o in
                MPI_Iallgatherv(vae_mpi_in_place(), 0, vae_mpi_float(), buffer, c.baseAddress, o.baseAddress, vae_mpi_float(), world, &request)
            }
        }
        try Self.check(code, "MPI_Iallgatherv(float, \(shards.total))")
        try wait(&request, sequence: sequence, call: "MPI_Iallgatherv")
    }

    public func exchangeBlocks(_ send: UnsafeRawPointer, into received: UnsafeMutableRawPointer, exchange: BlockExchange) throws(CommunicatorError) {
        try exchangeBlocks(send, into: received, exchange: exchange, on: world)
    }

    public func allgatherBlocksInPlace(_ buffer: UnsafeMutableRawPointer, exchange: BlockExchange) throws(CommunicatorError) {
        try allgatherBlocksInPlace(buffer, exchange: exchange, on: world)
    }

    func exchangeBlocks(_ send: UnsafeRawPointer, into received: UnsafeMutableRawPointer, exchange: BlockExchange,
                        on comm: MPI_Comm?) throws(CommunicatorError) {
        let sequence = try enter()
        var request: MPI_Request? = vae_mpi_request_null()
        let bytes = vae_mpi_byte()
        try Self.check(MPI_Ialltoallv(send, exchange.blockBytes, exchange.blockOffsets, bytes,
                                      received, exchange.receiveBytes, exchange.receiveOffsets, bytes, comm, &request),
                       "MPI_Ialltoallv(\(exchange.shards.total * exchange.elementBytes) bytes)")
        try wait(&request, sequence: sequence, call: "MPI_Ialltoallv")
    }

    func allgatherBlocksInPlace(_ buffer: UnsafeMutableRawPointer, exchange: BlockExchange, on comm: MPI_Comm?) throws(CommunicatorError) {
        let sequence = try enter()
        var request: MPI_Request? = vae_mpi_request_null()
        try Self.check(MPI_Iallgatherv(vae_mpi_in_place(), 0, vae_mpi_byte(), buffer, exchange.blockBytes, exchange.blockOffsets,
                                       vae_mpi_byte(), comm, &request),
                       "MPI_Iallgatherv(\(exchange.shards.total * exchange.elementBytes) bytes)")
        try wait(&request, sequence: sequence, call: "MPI_Iallgatherv(blocks)")
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, byteCount: Int, root: Int) throws(CommunicatorError) {
        // MPI counts are Int32: send large buffers in chunks of 1 GiB.
        var offset = 0
        repeat {
            let chunk = min(byteCount - offset, 1 << 30)
            let sequence = try enter()
            var request: MPI_Request? = vae_mpi_request_null()
            try Self.check(MPI_Ibcast(buffer + offset, Int32(chunk), vae_mpi_byte(), Int32(root), world, &request), "MPI_Ibcast(\(byteCount) bytes)")
            try wait(&request, sequence: sequence, call: "MPI_Ibcast")
            offset += chunk
        } while offset < byteCount
    }

    public func allgather(_ input: UnsafePointer<Float>, count: Int, into output: UnsafeMutablePointer<Float>) throws(CommunicatorError) {
        let sequence = try enter()
        var request: MPI_Request? = vae_mpi_request_null()
        try Self.check(MPI_Iallgather(input, Int32(count), vae_mpi_float(), output, Int32(count), vae_mpi_float(), world, &request),
                       "MPI_Iallgather(float, \(count))")
        try wait(&request, sequence: sequence, call: "MPI_Iallgather")
    }

    public func barrier() throws(CommunicatorError) {
        let sequence = try enter()
        var request: MPI_Request? = vae_mpi_request_null()
        try Self.check(MPI_Ibarrier(world, &request), "MPI_Ibarrier")
        try wait(&request, sequence: sequence, call: "MPI_Ibarrier")
    }

    // Shared memory: when every rank runs on this node, the gradient reduction reads the other
    // ranks' buffers directly (SharedMemoryReduction.swift); Open MPI's own shared-memory transport
    // copies each message through a second buffer.

    public func allocateShared(count: Int) throws(CommunicatorError) -> UnsafeMutablePointer<Float>? {
        guard size > 1, try nodeSize() == size else { return nil }
        return try allocateWindow(count: count)
    }

    /// The number of ranks on this node; makes the node's communicator the first time. Collective.
    func nodeSize() throws(CommunicatorError) -> Int {
        if node == nil {
            var comm: MPI_Comm?
            try Self.check(MPI_Comm_split_type(world, vae_mpi_comm_type_shared(), Int32(rank), vae_mpi_info_null(), &comm),
                           "MPI_Comm_split_type(shared)")
            try Self.check(vae_mpi_errors_return(comm), "MPI_Comm_set_errhandler(node)")
            node = comm
        }
        var nodeSize: Int32 = 0
        try Self.check(MPI_Comm_size(node, &nodeSize), "MPI_Comm_size(node)")
        return Int(nodeSize)
    }

    /// `count` floats every rank of this node maps (the node's communicator exists); nil on every
    /// rank of the node when one cannot map it. Collective over the node.
    func allocateWindow(count: Int) throws(CommunicatorError) -> UnsafeMutablePointer<Float>? {
        // The node's first rank allocates the whole buffer (one contiguous block), the others none and map it.
        // Nothing touches it here: each page is first touched by the rank that writes it.
        let bytes = count * MemoryLayout<Float>.stride
        var window: MPI_Win?
        var base: UnsafeMutableRawPointer?
        var localRank: Int32 = 0
        try Self.check(MPI_Comm_rank(node, &localRank), "MPI_Comm_rank(node)")
        var failure = vae_mpi_win_allocate_shared(MPI_Aint(localRank == 0 ? bytes : 0), node, &window)
        if failure == vae_mpi_success() { failure = vae_mpi_win_errors_return(window) }
        if failure == vae_mpi_success() { failure = vae_mpi_win_shared_query(window, 0, &base) }
        // Every rank uses the memory, or none does (then they all use MPI's collectives).
        var ok: Int32 = failure == vae_mpi_success() && base != nil ? 1 : 0, all: Int32 = 0
        try Self.check(MPI_Allreduce(&ok, &all, 1, vae_mpi_int32(), vae_mpi_min(), node), "MPI_Allreduce(shared memory)")
        guard all == 1, let floats = base?.bindMemory(to: Float.self, capacity: count) else {
            if window != nil { MPI_Win_free(&window) }
            if rank == 0 {
                let reason = failure != vae_mpi_success() ? Self.errorText(failure) : "another rank could not map it"
                Console.err("vae-dist: note: no shared memory for the gradients (MPI_Win_allocate_shared of \(bytes) bytes: \(reason)); using MPI's collectives\n")
            }
            return nil
        }
        try Self.check(MPI_Win_lock_all(vae_mpi_mode_nocheck(), window), "MPI_Win_lock_all")
        windows.append(window)
        try synchronizeShared()
        return floats
    }

    public func synchronizeShared() throws(CommunicatorError) {
        for window in windows { try Self.check(MPI_Win_sync(window), "MPI_Win_sync") }
        let sequence = try enter()
        var request: MPI_Request? = vae_mpi_request_null()
        try Self.check(MPI_Ibarrier(node, &request), "MPI_Ibarrier(node)")
        try wait(&request, sequence: sequence, call: "MPI_Ibarrier(shared memory)")
        for window in windows { try Self.check(MPI_Win_sync(window), "MPI_Win_sync") }
    }

    public func abort(code: Int32) -> Never {
        fflush(nil)
        MPI_Abort(world, code)
        exit(code)  // MPI_Abort does not return; this satisfies the type checker.
    }

    public func finalize() {
        guard !finalized else { return }
        finalized = true
        progress?.stop()
        watchdog?.finish()
        for i in windows.indices {
            MPI_Win_unlock_all(windows[i])
            MPI_Win_free(&windows[i])
        }
        if node != nil { MPI_Comm_free(&node) }
        if crossNode != nil { MPI_Comm_free(&crossNode) }
        MPI_Finalize()
    }
}
