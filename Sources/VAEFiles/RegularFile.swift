import Foundation

// Every file vae-dist reads (checkpoints, data) is opened here first, and treated as hostile:
// it must be a regular file (not a folder, a FIFO that would block the open, or /dev/zero that
// never ends), and nothing is read or allocated beyond what the caller allows and the file's
// size shows it holds.

/// Why a file cannot be read; `description` completes "PATH: ...".
public enum FileProblem: Error, Equatable, CustomStringConvertible {
    case notFound
    case danglingLink
    case symlinkLoop
    case isFolder
    /// A FIFO, a device, a socket: `kind` names it.
    case notRegular(kind: String)
    case unreadable(reason: String)
    /// The file holds `size` bytes, more than the `limit` the caller accepts.
    case tooLarge(size: Int, limit: Int)
    /// Fewer bytes than its size promised (it shrank while being read).
    case shortRead(expected: Int, got: Int)

    public var description: String {
        switch self {
        case .notFound: "not found"
        case .danglingLink: "is a symbolic link to a file that does not exist"
        case .symlinkLoop: "is a loop of symbolic links (too many levels of symbolic links)"
        case .isFolder: "is a folder, not a file"
        case .notRegular(let kind): "is \(kind), not a regular file"
        case .unreadable(let reason): "cannot be read (\(reason))"
        case .tooLarge(let size, let limit): "holds \(size) bytes, more than the \(limit) bytes such a file can have"
        case .shortRead(let expected, let got): "ended after \(got) of \(expected) bytes (it changed while being read)"
        }
    }
}

/// A regular file open for reading. The descriptor closes with the value.
public final class RegularFile {
    public let path: String
    /// The size when opened.
    public let size: Int
    /// The descriptor (VAEData's MappedFile maps it and reads from it).
    public let fd: Int32

    /// Opens `path` without blocking (a FIFO would wait for a writer) and refuses anything that
    /// is not a regular file.
    public init(path: String) throws(FileProblem) {
        self.path = path
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            switch code {
            case ENOENT:
                var info = stat()
                throw lstat(path, &info) == 0 ? .danglingLink : .notFound
            case ELOOP: throw .symlinkLoop
            case ENOTDIR: throw .notFound
            default: throw .unreadable(reason: String(cString: strerror(code)))
            }
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .unreadable(reason: reason)
        }
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG else {
            close(fd)
            switch type {
            case S_IFDIR: throw .isFolder
            case S_IFIFO: throw .notRegular(kind: "a FIFO (named pipe)")
            case S_IFCHR: throw .notRegular(kind: "a character device (such as /dev/zero)")
            case S_IFBLK: throw .notRegular(kind: "a block device")
            case S_IFSOCK: throw .notRegular(kind: "a socket")
            default: throw .notRegular(kind: "not a file")
            }
        }
        // Reads block from here on (O_NONBLOCK only guarded the open).
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        self.fd = fd
        size = Int(info.st_size)
    }

    deinit { close(fd) }

    /// `count` bytes from `offset`; the range must lie inside the file.
    public func read(offset: Int, count: Int) throws(FileProblem) -> [UInt8] {
        precondition(offset >= 0 && count >= 0)
        guard offset <= size, count <= size - offset else {
            throw .shortRead(expected: offset + count, got: size)
        }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        var failure: FileProblem?
        bytes.withUnsafeMutableBytes { raw in
            while done < count {
                let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = .unreadable(reason: String(cString: strerror(errno))); return
                }
                if n == 0 { failure = .shortRead(expected: offset + count, got: offset + done); return }
                done += n
            }
        }
        if let failure { throw failure }
        return bytes
    }

    /// The whole file, refused unread when it is larger than `limit` bytes.
    public func readAll(limit: Int) throws(FileProblem) -> [UInt8] {
        guard size <= limit else { throw .tooLarge(size: size, limit: limit) }
        return try read(offset: 0, count: size)
    }
}
