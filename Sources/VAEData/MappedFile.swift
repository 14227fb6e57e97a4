import Foundation

// A data file mapped read-only into memory. Mapping costs no memory by itself: a page becomes
// resident when it is first read, and `release` gives the pages back (the file stays in the
// kernel's page cache, shared and not counted against the process; a later read maps the page
// again). This is how a 2 GB .npy trains in a process of a few hundred MB.

/// A read-only, shared mapping of a whole regular file; unmapped with the value.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    /// The first byte (nil for an empty file, which cannot be mapped).
    public let base: UnsafeRawPointer?

    public init(_ file: RegularFile) throws(FileProblem) {
        path = file.path
        size = file.size
        guard size > 0 else { base = nil; return }
        let address = mmap(nil, size, PROT_READ, MAP_SHARED, file.fd, 0)
        guard let address, address != MAP_FAILED else {
            throw .unreadable(reason: "mmap: \(String(cString: strerror(errno)))")
        }
        // Random access: no read-ahead of neighbours the permutation may not ask for soon.
        _ = madvise(address, size, MADV_RANDOM)
        base = UnsafeRawPointer(address)
    }

    public convenience init(path: String) throws(FileProblem) {
        try self.init(RegularFile(path: path))
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }

    /// Drops this process's mapping of the pages of bytes `range` (widened to whole pages): they
    /// stop counting as resident. Nothing is lost; the next read maps them from the page cache.
    public func release(_ range: Range<Int>) {
        guard let base, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = range.lowerBound / page * page
        let end = min((range.upperBound + page - 1) / page * page, size)
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }
}
