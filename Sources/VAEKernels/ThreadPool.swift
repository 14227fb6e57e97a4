#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

// A fixed set of worker threads, created once, that run one parallel-for at a time.
//
// A training step runs some thirty short parallel regions (each GEMM, each elementwise pass,
// Adam), each tens of microseconds, so what matters is the cost of one region: no thread is
// created and nothing is allocated per region.
//
// Chunks are claimed, not assigned: the caller and the workers take the next chunk from one
// atomic ticket until none is left. A chunk computes the same bits whichever thread runs it
// (it gets that thread's index only to pick its scratch space), so claiming changes no result,
// and on a busy machine a worker that the kernel has not scheduled yet costs nothing: the
// caller runs its chunk too instead of waiting for it (a fixed chunk-per-thread barrier would
// stall every region on the slowest thread).
//
// Wake-up: the caller publishes the region in `ticket`; workers spin on it for a short while,
// then poll it between sched_yield calls for up to `yieldWindow` (a step's regions follow each
// other closely), and then sleep on a condition variable. Waking a sleeping worker took 50-100
// microseconds on a 2-core KVM guest (AMD EPYC, 2026-12-07), and about half of a conv training
// step's regions began with the worker asleep when it slept after the spin alone: the caller then
// waited for the worker's late chunk. Polling with sched_yield costs nothing that another
// runnable thread on the core needs (it gives the core away), so it is safe with more threads
// than cores. Completion: every finished chunk increments `done`; the caller spins until all
// are done.

public final class ThreadPool: @unchecked Sendable {
    /// Threads that run chunks, the caller included.
    public let threadCount: Int
    /// The pool of one: `run` calls the body directly.
    public static let serial = ThreadPool(threads: 1)

    @usableFromInline let shared: PoolState
    private var workers: [pthread_t] = []

    public init(threads: Int) {
        threadCount = max(1, threads)
        shared = PoolState(threadCount: threadCount)
        for worker in 1..<threadCount {
            // The worker holds the state, not the pool, so the pool's deinit can stop it.
            let context = Unmanaged.passRetained(WorkerContext(state: shared, worker: worker)).toOpaque()
            #if canImport(Glibc)
            var thread = pthread_t()
            #else
            var thread: pthread_t?
            #endif
            let status = pthread_create(&thread, nil, { raw in
                let context = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                flushDenormals()  // as the caller does (FloatEnvironment.swift)
                context.state.workerLoop(context.worker)
                return nil
            }, context)
            precondition(status == 0, "pthread_create failed (\(status)) starting kernel thread \(worker)")
            #if canImport(Glibc)
            workers.append(thread)
            #else
            workers.append(thread!)
            #endif
        }
    }

    deinit {
        shared.stop()
        for thread in workers { pthread_join(thread, nil) }
    }

    /// Runs work.run(chunk:thread:) for chunk 0 ..< count, each once, on the caller (thread 0)
    /// and the workers (threads 1 ..< threadCount), and returns when all are done. One region at
    /// a time: not reentrant, one caller.
    ///
    /// The work is a struct, not a closure: handing a closure to another thread means making it
    /// escaping, and Swift then copies its context to the heap, one allocation per region. The
    /// struct stays on the caller's stack and the workers call it through a pointer.
    @inlinable @inline(__always)
    public func run<Work: ChunkWork>(_ count: Int, _ work: Work) {
        if threadCount == 1 || count <= 1 {
            for chunk in 0..<count { work.run(chunk: chunk, thread: 0) }
            return
        }
        withUnsafePointer(to: work) { runChunks(count, context: UnsafeRawPointer($0), invoke: ChunkInvoker<Work>.invoke) }
    }

    /// `invoke(context, chunk, thread)` for every chunk; `invoke` must capture nothing (a
    /// static function), so passing it allocates nothing.
    public func runChunks(_ count: Int, context: UnsafeRawPointer, invoke: @escaping ChunkFunction) {
        precondition(count < PoolState.maximumChunks, "\(count) chunks in one region")
        shared.run(count, context: context, invoke: invoke)
    }
}

/// One region's work, chunk by chunk. run(chunk:thread:) must give the same result whichever
/// thread runs the chunk: `thread` only picks per-thread scratch space.
public protocol ChunkWork: SendableMetatype {
    func run(chunk: Int, thread: Int)
}

public typealias ChunkFunction = (_ context: UnsafeRawPointer, _ chunk: Int, _ thread: Int) -> Void

/// The static function that calls a `Work` through a pointer (a thin function once specialized).
public enum ChunkInvoker<Work: ChunkWork> {
    @inlinable
    public static func invoke(_ context: UnsafeRawPointer, _ chunk: Int, _ thread: Int) {
        context.assumingMemoryBound(to: Work.self).pointee.run(chunk: chunk, thread: thread)
    }
}

/// The ticket packs (generation, chunk count, next chunk) into one word, so a worker claims a
/// chunk of exactly the region it saw with one compare-and-swap, and a late worker can never
/// claim a chunk of a region that has moved on.
private struct Ticket {
    var word: UInt64
    init(_ word: UInt64) { self.word = word }
    init(generation: UInt64, count: Int) { word = generation << 32 | UInt64(count) << 16 }
    var generation: UInt64 { word >> 32 }
    var count: Int { Int(word >> 16 & 0xFFFF) }
    var next: Int { Int(word & 0xFFFF) }
}

@usableFromInline final class PoolState: @unchecked Sendable {
    static let maximumChunks = 0xFFFF
    let threadCount: Int
    let ticket = Atomic<UInt64>(0)
    let done = Atomic<Int>(0)
    let sleepers = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    let condition: UnsafeMutablePointer<pthread_cond_t>
    /// The region being run: written by the caller before the ticket is published, read by a
    /// worker only after it claimed a chunk of that ticket (release/acquire on `ticket`); the
    /// region cannot end, nor these change, before that chunk is done.
    var invoke: ChunkFunction?
    var context: UnsafeRawPointer?
    var generation: UInt64 = 0

    /// Iterations a waiting thread polls before it sleeps or yields: tens of microseconds,
    /// longer than the serial gap between two regions of a step, far shorter than a step.
    static let spinIterations = 20_000
    /// How long an idle worker polls the ticket between sched_yield calls before it sleeps, in
    /// seconds: longer than nearly every gap between two regions of a training step (with
    /// it, 47 of a conv benchmark's 10,500 regions began with the worker asleep, against 4,970
    /// without), far shorter than the pauses of a run (an evaluation, a checkpoint).
    static let yieldWindow = 0.001

    init(threadCount: Int) {
        self.threadCount = threadCount
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    func run(_ count: Int, context: UnsafeRawPointer, invoke: @escaping ChunkFunction) {
        self.invoke = invoke
        self.context = context
        done.store(0, ordering: .relaxed)
        generation = (generation + 1) & 0xFFFF_FFFF  // the ticket's 32 bits; a wrap is still a change
        ticket.store(Ticket(generation: generation, count: count).word, ordering: .sequentiallyConsistent)
        // A worker asleep (or about to sleep: it raises `sleepers` before its last look at the
        // ticket) is woken; one still spinning sees the new ticket by itself.
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 { wakeAll() }
        while let chunk = claim(generation) {
            invoke(context, chunk, 0)
            done.add(1, ordering: .releasing)
        }
        var spins = 0
        while done.load(ordering: .acquiring) != count {
            spins += 1
            if spins > Self.spinIterations { sched_yield() }
        }
        self.invoke = nil
        self.context = nil
    }

    /// The next unclaimed chunk of region `generation`, or nil when none is left.
    @inline(__always)
    private func claim(_ generation: UInt64) -> Int? {
        var current = ticket.load(ordering: .acquiring)
        while true {
            let t = Ticket(current)
            if t.generation != generation || t.next >= t.count { return nil }
            let (exchanged, original) = ticket.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if exchanged { return t.next }
            current = original
        }
    }

    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        ticket.store(Ticket(generation: (generation + 1) & 0xFFFF_FFFF, count: 0).word, ordering: .sequentiallyConsistent)
        wakeAll()
    }

    private func wakeAll() {
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    func workerLoop(_ worker: Int) {
        // Generation 0 is the pool's start, whenever this thread gets to run: a region started
        // before the thread was first scheduled must still be seen as new.
        var seen: UInt64 = 0
        while true {
            var spins = 0
            while Ticket(ticket.load(ordering: .acquiring)).generation == seen && spins < Self.spinIterations { spins += 1 }
            if Ticket(ticket.load(ordering: .acquiring)).generation == seen {
                let start = monotonicSeconds()
                while Ticket(ticket.load(ordering: .acquiring)).generation == seen
                        && monotonicSeconds() - start < Self.yieldWindow {
                    sched_yield()
                }
            }
            if Ticket(ticket.load(ordering: .acquiring)).generation == seen {
                pthread_mutex_lock(mutex)
                sleepers.add(1, ordering: .sequentiallyConsistent)
                while Ticket(ticket.load(ordering: .sequentiallyConsistent)).generation == seen {
                    pthread_cond_wait(condition, mutex)
                }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                pthread_mutex_unlock(mutex)
            }
            if stopping.load(ordering: .acquiring) { return }
            seen = Ticket(ticket.load(ordering: .acquiring)).generation
            while let chunk = claim(seen) {
                runChunk(chunk, worker)
                done.add(1, ordering: .releasing)
            }
        }
    }

    private func runChunk(_ chunk: Int, _ worker: Int) { invoke!(context!, chunk, worker) }
}

private final class WorkerContext {
    let state: PoolState
    let worker: Int
    init(state: PoolState, worker: Int) {
        self.state = state
        self.worker = worker
    }
}

/// Seconds on CLOCK_MONOTONIC (a vDSO call: no system call): the project's one clock for
/// measuring and waiting (VAEKernelDispatch's kernel timing, VAEOutputs.now).
@inline(__always)
public func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
