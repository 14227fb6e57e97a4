import VAEFiles
import Foundation

// A data file mapped read-only into memory, for what is read once (headers, the scans of the
// values and the fingerprint); `release` gives the pages back (the file stays in the kernel's
// page cache, shared and not counted against the process). Training reads its images with
// `copy` (pread) instead: see ArrayImages.swift for why.

/// A read-only, shared mapping of a whole regular file; unmapped with the value.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    /// The first byte (nil for an empty file, which cannot be mapped).
    public let base: UnsafeRawPointer?
    /// Kept open for `copy`.
    let file: RegularFile

    public init(_ file: RegularFile) throws(FileProblem) {
        self.file = file
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

    /// Bytes `range` of the file into `out`, with pread: nothing stays mapped. The range was
    /// checked against the size at open; a file that shrinks under a running job ends it with
    /// one line (there is no one to throw to inside a batch's threads).
    public func copy(_ range: Range<Int>, to out: UnsafeMutableRawPointer) {
        var done = 0
        while done < range.count {
            let n = pread(file.fd, out + done, range.count - done, off_t(range.lowerBound + done))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                let reason = n == 0 ? "it ended at byte \(range.lowerBound + done)" : String(cString: strerror(errno))
                FileHandle.standardError.write(Data("vae-dist: \(path): cannot read bytes \(range) (\(reason)): the file changed while training; restore it and resume\n".utf8))
                exit(1)
            }
            done += n
        }
    }
}
