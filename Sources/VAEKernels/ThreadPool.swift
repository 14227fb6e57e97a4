#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

// A fixed set of worker threads, created once, that run one parallel-for at a time.
//
// A training step runs some thirty short parallel regions (each GEMM, each elementwise pass,
// Adam), each a few tens of microseconds on one core, so what matters is the cost of one
// region: no thread is created, nothing is allocated, and chunk i always runs on thread i
// (the caller runs chunk 0), so each chunk can use that thread's own scratch space.
//
// Wake-up: the caller publishes the body and bumps `generation`; workers spin on it for a
// short while (a step's regions follow each other closely) and then sleep on a condition
// variable. Completion: each worker decrements `pending`; the caller spins until it is zero.

public final class ThreadPool: @unchecked Sendable {
    /// Threads that run chunks, the caller included.
    public let threadCount: Int
    /// The pool of one: `run` calls the body directly.
    public static let serial = ThreadPool(threads: 1)

    private let shared: PoolState
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

    /// Runs body(0) ..< body(count) with chunk i on thread i, and returns when all are done.
    /// `count` is at most `threadCount`. One region at a time: not reentrant, one caller.
    @inline(__always)
    public func run(_ count: Int, _ body: (Int) -> Void) {
        precondition(count <= threadCount, "\(count) chunks on a pool of \(threadCount) threads")
        if count <= 1 {
            if count == 1 { body(0) }
            return
        }
        withoutActuallyEscaping(body) { shared.run(count, $0) }
    }
}

private final class PoolState: @unchecked Sendable {
    let threadCount: Int
    let generation = Atomic<Int>(0)
    let pending = Atomic<Int>(0)
    let sleepers = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    let condition: UnsafeMutablePointer<pthread_cond_t>
    /// The region being run; written by the caller before `generation` is bumped, read by
    /// workers after they see the new generation (release/acquire on `generation`).
    var body: ((Int) -> Void)?
    var chunks = 0

    /// Iterations a waiting thread polls before it sleeps or yields: tens of microseconds,
    /// longer than the serial gap between two regions of a step, far shorter than a step.
    static let spinIterations = 20_000

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

    func run(_ count: Int, _ escapable: @escaping (Int) -> Void) {
        body = escapable
        chunks = count
        pending.store(threadCount - 1, ordering: .relaxed)
        generation.add(1, ordering: .sequentiallyConsistent)
        // A worker asleep (or about to sleep: it raises `sleepers` before its last check of
        // the generation) is woken; one still spinning sees the new generation by itself.
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 { wakeAll() }
        escapable(0)
        var spins = 0
        while pending.load(ordering: .acquiring) != 0 {
            spins += 1
            if spins > Self.spinIterations { sched_yield() }
        }
        body = nil
    }

    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        generation.add(1, ordering: .sequentiallyConsistent)
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
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen && spins < Self.spinIterations { spins += 1 }
            if generation.load(ordering: .acquiring) == seen {
                pthread_mutex_lock(mutex)
                sleepers.add(1, ordering: .sequentiallyConsistent)
                while generation.load(ordering: .sequentiallyConsistent) == seen {
                    pthread_cond_wait(condition, mutex)
                }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                pthread_mutex_unlock(mutex)
            }
            seen = generation.load(ordering: .acquiring)
            if stopping.load(ordering: .acquiring) { return }
            if worker < chunks { runChunk(worker) }
            pending.subtract(1, ordering: .releasing)
        }
    }

    /// Out of line, so the body's copy is released before `pending` says "done" (the caller's
    /// withoutActuallyEscaping checks that no copy outlives the region).
    @inline(never)
    private func runChunk(_ worker: Int) { body!(worker) }
}

private final class WorkerContext {
    let state: PoolState
    let worker: Int
    init(state: PoolState, worker: Int) {
        self.state = state
        self.worker = worker
    }
}
