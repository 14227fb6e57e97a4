#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import _VAEKernelShims

// The threads a model's kernels run on, and how work is cut between them without changing a
// single bit of any result.
//
// Every parallel kernel in this project splits its OUTPUT into disjoint ranges and computes
// each element exactly as the serial kernel does:
//   - a GEMM is cut along M (row blocks of C) or N (column blocks), never along K, so every
//     element is the same chain of fused multiply-adds over the same K blocks;
//   - a per-row kernel (the likelihood, the KL, the reparameterization) is cut by rows, so each
//     row's sum runs in the same order; a per-column sum (the bias gradient) is cut by columns;
//   - elementwise kernels (ReLU backward, Adam) are cut at multiples of 16, so the same
//     elements go through the SIMD body and the same through the scalar tail.
// Sums across rows (the batch loss) stay serial, after the parallel part.

/// A thread pool and one GEMM workspace per thread (GEMM scratch is per thread; the caller,
/// thread 0, brings its own so a serial model shares nothing).
public final class KernelThreads: @unchecked Sendable {
    public let pool: ThreadPool
    /// Scratch of threads 1 ..< count.
    @usableFromInline let workerGEMM: [GEMMWorkspace]
    public var count: Int { pool.threadCount }

    /// One thread: every kernel is called directly, as before threads existed.
    public static let serial = KernelThreads(threads: 1)

    public init(threads: Int) {
        pool = threads <= 1 ? ThreadPool.serial : ThreadPool(threads: threads)
        workerGEMM = (1..<max(1, threads)).map { _ in GEMMWorkspace() }
    }

    /// Thread `thread`'s GEMM scratch; thread 0 uses the caller's `own`.
    @inlinable @inline(__always)
    public func gemmWorkspace(_ thread: Int, own: GEMMWorkspace) -> GEMMWorkspace {
        thread == 0 ? own : workerGEMM[thread - 1]
    }

    /// Cuts 0 ..< total into at most `count` x `chunksPerThread` ranges (one on one thread)
    /// whose starts are multiples of `alignment`, none shorter than `minimum` (but the last),
    /// and runs work.run(range, thread:) for each on the pool (`thread` picks the scratch space;
    /// the result must not depend on it). With one range the work runs on the caller, with no
    /// synchronization. Several ranges per thread balance a region whose threads run at
    /// different speeds (the pool's threads claim them as they go), where one range each makes
    /// the faster thread wait for the slower; each range costs a call.
    @inlinable @inline(__always)
    public func forEachRange<Work: RangeWork>(_ total: Int, alignment: Int = 16, minimum: Int = 16, chunksPerThread: Int = 1,
                                              _ work: Work) {
        let (parts, size) = partition(total, alignment: alignment, minimum: minimum, chunksPerThread: chunksPerThread)
        if parts <= 1 {
            if total > 0 { work.run(0..<total, thread: 0) }
            return
        }
        pool.run(parts, RangeChunks(work: work, size: size, total: total))
    }

    /// (number of ranges, length of each but the last).
    @inlinable @inline(__always)
    func partition(_ total: Int, alignment: Int, minimum: Int, chunksPerThread: Int = 1) -> (Int, Int) {
        let wanted = min(count == 1 ? 1 : count * max(1, chunksPerThread), max(1, total / max(minimum, 1)))
        if wanted <= 1 { return (1, total) }
        var size = (total + wanted - 1) / wanted
        size = (size + alignment - 1) / alignment * alignment
        return ((total + size - 1) / size, size)
    }
}

/// Work on a range of indices; see KernelThreads.forEachRange.
public protocol RangeWork {
    func run(_ range: Range<Int>, thread: Int)
}

@usableFromInline
struct RangeChunks<Work: RangeWork>: ChunkWork {
    @usableFromInline let work: Work
    @usableFromInline let size: Int
    @usableFromInline let total: Int

    @inlinable init(work: Work, size: Int, total: Int) {
        self.work = work
        self.size = size
        self.total = total
    }

    @inlinable func run(chunk: Int, thread: Int) {
        let start = chunk * size
        work.run(start..<min(start + size, total), thread: thread)
    }
}

/// Threads each rank should use by default: the cores this process may run on (its affinity
/// mask) divided among the ranks on this node, at least 1. `mpirun -n 4` on 2 cores gives 1,
/// a lone process on an 8-core machine 8.
public func defaultThreadCount(localRanks: Int) -> Int {
    max(1, availableCores() / max(1, localRanks))
}

/// The cores in this process's affinity mask (sched_getaffinity), or the online cores.
public func availableCores() -> Int {
    let count = Int(vae_affinity_count())
    return count > 0 ? count : max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
}
