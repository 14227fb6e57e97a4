import Foundation

// Crash-safe file replacement: write a temporary file in the same folder, fsync
// it, rename it over the target (atomic on POSIX filesystems), then fsync the
// folder so the rename itself is durable. A crash at any point leaves either the
// old file or the new one, never a torn mix.

/// A file that cannot be written or a folder that cannot be made; `description` is "PATH: REASON".
public struct FileError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }
}

public enum AtomicFile {
    /// Test hook: seconds to stall halfway through writing a checkpoint, so a test can
    /// kill the process in the middle of the write (VAE_DIST_FAULT=stall-write:SECONDS).
    nonisolated(unsafe) static var stallSeconds: Double = faultStallSeconds("stall-write")

    public static func write(_ bytes: [UInt8], to path: String) throws(FileError) {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = (directory as NSString).appendingPathComponent(
            ".\((path as NSString).lastPathComponent).tmp-\(getpid())")
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure(path, "cannot create \(temporary)") }
        var ok = true
        let stall = path.hasSuffix(".safetensors") ? stallSeconds : 0
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let chunk = stall > 0 && offset < raw.count / 2 ? raw.count / 2 - offset : raw.count - offset
                let n = Foundation.write(fd, raw.baseAddress! + offset, chunk)
                if n < 0 { if errno == EINTR { continue }; ok = false; return }
                offset += n
                if stall > 0 && offset == raw.count / 2 { usleep(useconds_t(stall * 1e6)) }
            }
        }
        if !ok {
            let error = failure(path, "write failed")
            close(fd); unlink(temporary)
            throw error
        }
        if fsync(fd) != 0 {
            let error = failure(path, "fsync failed")
            close(fd); unlink(temporary)
            throw error
        }
        close(fd)
        if rename(temporary, path) != 0 {
            let error = failure(path, "rename from \(temporary) failed")
            unlink(temporary)
            throw error
        }
        syncDirectory(directory)
    }

    /// Makes `link` name the same file as `target` atomically (hard link then
    /// rename), falling back to an atomic copy where hard links are not supported.
    public static func replaceLink(_ link: String, target: String, bytes: [UInt8]) throws(FileError) {
        let temporary = (link as NSString).deletingLastPathComponent + "/.\((link as NSString).lastPathComponent).link-\(getpid())"
        unlink(temporary)
        if Foundation.link(target, temporary) == 0 {
            if rename(temporary, link) == 0 {
                syncDirectory((link as NSString).deletingLastPathComponent)
                return
            }
            unlink(temporary)
        }
        try write(bytes, to: link)
    }

    static func syncDirectory(_ directory: String) {
        let fd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    public static func failure(_ path: String, _ what: String) -> FileError {
        let code = errno
        var reason = "\(what): \(String(cString: strerror(code)))"
        if code == ENOSPC || code == EFBIG || code == EDQUOT {
            reason += FileManager.default.fileExists(atPath: path)
                ? " (the disk or a size limit is full; the previous file is intact)"
                : " (the disk or a size limit is full)"
        }
        if code == EACCES || code == EROFS { reason += " (choose a writable --out folder)" }
        return FileError(path: path, reason: reason)
    }

    /// Creates a folder and its parents; a clear error when that is impossible.
    public static func makeDirectory(_ path: String) throws(FileError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw FileError(path: path, reason: "cannot create folder (\((error as NSError).localizedDescription))")
        }
        guard access(path, W_OK) == 0 else { throw FileError(path: path, reason: "folder is not writable (choose another --out)") }
    }
}
