import Foundation

// Standard output and standard error, written with write(2) and never fatal: when the reader
// went away (a closed pipe, `vae-dist train | head -1`: SIGPIPE is ignored, so the write fails
// with EPIPE; a closed terminal after SIGHUP: EIO) the text is dropped and training goes on.
// Foundation's FileHandle.write traps on such an error.

public enum Console {
    nonisolated(unsafe) private static var outputClosed = false

    /// `text` on standard output; the first failed write says once on standard error that
    /// output is dropped from then on.
    public static func out(_ text: String) {
        guard !outputClosed else { return }
        if let failure = write(text, to: STDOUT_FILENO) {
            outputClosed = true
            err("vae-dist: note: standard output was closed (\(failure)); training goes on without printing to it\n")
        }
    }

    /// `text` on standard error (dropped when that fails).
    public static func err(_ text: String) {
        _ = write(text, to: STDERR_FILENO)
    }

    /// Writes all of `text`; nil, or why it failed.
    private static func write(_ text: String, to fd: Int32) -> String? {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n >= 0 { offset += n; continue }
            if errno == EINTR || errno == EAGAIN { continue }
            return String(cString: strerror(errno))
        }
        return nil
    }
}
