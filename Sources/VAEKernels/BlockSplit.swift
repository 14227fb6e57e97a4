// How one GEMM's output C [rows, columns] is cut between threads when each thread packs only
// its own columns of B (the wide layers, Linear.swift). Cutting the columns into equal runs of
// whole panels leaves a remainder: 25 panels of 16 (400 columns) on 2 threads are 13 + 12, so
// one thread computes 4% more than half; on 4 threads 7 + 7 + 7 + 4, 12% more than a quarter.
// Here every thread takes the same number of whole panels (all rows), and the panels left over
// (fewer than the threads) are cut by rows, one slice per thread: 12 panels + rows 0 ..< 64 of
// the 25th, and 12 panels + rows 64 ..< 128. Each element is still one chain of fused
// multiply-adds over the same K blocks (KernelThreads: cut along M or N, never K), so the bits
// do not depend on the cut.

/// A rectangle of C: its rows and columns.
public struct Block: Equatable, Sendable {
    public var rows: Range<Int>
    public var columns: Range<Int>

    public init(rows: Range<Int>, columns: Range<Int>) {
        self.rows = rows
        self.columns = columns
    }
}

public struct BlockSplit: Equatable, Sendable {
    public let rows: Int, columns: Int
    /// Threads that take part (no more than there are panels or row slices to share).
    public let parts: Int
    /// Columns of whole panels each part takes: part t starts at t * sharedColumns.
    public let sharedColumns: Int
    /// Rows of the left-over panels each part takes (the last part fewer).
    public let sliceRows: Int

    /// `panel`: the GEMM tile's width (its B panel); `rowAlignment`: row slices start at
    /// multiples of it (`GEMMTile.rowSplitAlignment`).
    public init(rows: Int, columns: Int, threads: Int, panel: Int, rowAlignment: Int) {
        self.rows = rows
        self.columns = columns
        let panels = (columns + panel - 1) / panel
        let parts = max(1, min(threads, panels, max(1, rows / max(rowAlignment, 1))))
        self.parts = parts
        sharedColumns = panels / parts * panel
        var slice = (rows + parts - 1) / parts
        slice = (slice + rowAlignment - 1) / rowAlignment * rowAlignment
        sliceRows = slice
    }

    /// The columns past the shared panels (empty when the panels divide evenly).
    public var leftoverColumns: Range<Int> { min(parts * sharedColumns, columns)..<columns }

    /// Part `t`'s whole panels, all rows (the last part's run ends at the last column when
    /// nothing is left over); nil when it has none.
    public func panels(part t: Int) -> Block? {
        let start = t * sharedColumns
        let end = leftoverColumns.isEmpty && t == parts - 1 ? columns : start + sharedColumns
        return start < end ? Block(rows: 0..<rows, columns: start..<end) : nil
    }

    /// Part `t`'s rows of the left-over panels; nil when it has none.
    public func leftover(part t: Int) -> Block? {
        let columns = leftoverColumns
        let first = min(t * sliceRows, rows), last = min(first + sliceRows, rows)
        return columns.isEmpty || first >= last ? nil : Block(rows: first..<last, columns: columns)
    }
}

/// Work on a block of a GEMM's output; see KernelThreads.forEachBlock.
public protocol BlockWork {
    func run(_ block: Block, thread: Int)
}

extension KernelThreads {
    /// Runs work.run(block, thread:) over the blocks of `split` on the pool, one part per chunk.
    @inlinable @inline(__always)
    public func forEachBlock<Work: BlockWork>(_ split: BlockSplit, _ work: Work) {
        if split.parts <= 1 {
            if split.rows > 0 && split.columns > 0 { work.run(Block(rows: 0..<split.rows, columns: 0..<split.columns), thread: 0) }
            return
        }
        pool.run(split.parts, BlockChunks(work: work, split: split))
    }
}

@usableFromInline
struct BlockChunks<Work: BlockWork>: ChunkWork {
    @usableFromInline let work: Work
    @usableFromInline let split: BlockSplit

    @inlinable init(work: Work, split: BlockSplit) {
        self.work = work
        self.split = split
    }

    @inlinable func run(chunk: Int, thread: Int) {
        if let block = split.panels(part: chunk) { work.run(block, thread: thread) }
        if let block = split.leftover(part: chunk) { work.run(block, thread: thread) }
    }
}
