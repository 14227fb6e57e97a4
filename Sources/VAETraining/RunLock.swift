import Foundation
import VAEFiles
import VAEOutputs

// One training per run folder. Rank 0 holds a POSIX advisory lock (fcntl F_SETLK, which NFS
// supports through its lock manager) on OUT/.lock for the whole run; the file says who holds it
// (pid, host, start time) so a second `train` or `train --resume` into OUT is refused with one
// line naming the holder. The kernel releases the lock when the holder dies, however it dies:
// a record left behind by a killed run is taken over with a note. The file is never deleted
// (deleting it would let two runs lock two different files of one name); a run that ends
// empties it. Readers (eval, sample, inspect ...) take no lock: checkpoints are replaced by an
// atomic rename, so they never see half a file.

public final class RunLock {
    public static let fileName = ".lock"
    /// The lock of this process's run (the executable releases it on its way out).
    nonisolated(unsafe) public private(set) static var current: RunLock?

    let path: String
    private var fd: Int32
    /// What the start-up reports: a record taken over from a dead holder, or a filesystem
    /// without POSIX locks.
    public let note: String?

    /// Locks `folder`/.lock, creating the folder when `create` (a new run) is set.
    public static func acquire(folder: String, create: Bool) throws(TrainingError) -> RunLock? {
        if create {
            do { try AtomicFile.makeDirectory(folder) } catch { throw TrainingError(error) }
        }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else { return nil }
        let lock = try RunLock(path: (folder as NSString).appendingPathComponent(fileName))
        current = lock
        return lock
    }

    private init(path: String) throws(TrainingError) {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else {
            throw .file(path: path, reason: "cannot open the run folder's lock file (\(String(cString: strerror(errno))))")
        }
        var request = flock()
        request.l_type = Int16(F_WRLCK)
        request.l_whence = Int16(SEEK_SET)
        if fcntl(fd, F_SETLK, &request) != 0 {
            let code = errno
            if code == EAGAIN || code == EACCES {
                let holder = Self.holder(fd)
                close(fd)
                let folder = (path as NSString).deletingLastPathComponent
                throw .option("\(folder) is in use by another training: \(holder) holds \(path); wait for it to end, or choose another --out")
            }
            // ENOLCK, EOPNOTSUPP: a filesystem without POSIX locks.
            note = "vae-dist: note: \(path) cannot be locked (\(String(cString: strerror(code)))): this filesystem has no POSIX locks, so nothing stops a second training into the same --out"
        } else if let previous = Self.record(fd) {
            note = "vae-dist: note: took over \(path) from \(previous), which ended without releasing it"
        } else {
            note = nil
        }
        writeRecord("pid \(getpid()) on host \(hostName()), since \(ISO8601DateFormatter().string(from: Date()))\n")
    }

    /// Replaces the lock file's text.
    private func writeRecord(_ text: String) {
        ftruncate(fd, 0)
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, 0) }
    }

    /// Who holds the lock: its record, which it writes right after locking (so wait a moment
    /// for it), else the pid the kernel names.
    private static func holder(_ fd: Int32) -> String {
        for _ in 0..<50 {
            if let record = record(fd) { return record }
            usleep(10_000)
        }
        var request = flock()
        request.l_type = Int16(F_WRLCK)
        request.l_whence = Int16(SEEK_SET)
        if fcntl(fd, F_GETLK, &request) == 0 && request.l_pid > 0 { return "pid \(request.l_pid)" }
        return "another process"
    }

    /// The holder's record in the lock file, or nil when it is empty.
    private static func record(_ fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, 0) }
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }

    /// Empties the record and drops the lock (closing the file releases it).
    public func release() {
        guard fd >= 0 else { return }
        writeRecord("")
        close(fd)
        fd = -1
        if RunLock.current === self { RunLock.current = nil }
    }

    deinit { release() }
}
