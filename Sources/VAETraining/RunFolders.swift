import Foundation
import VAEDistributed

// Run folders without --out: each training goes to a new numbered folder runs/NNNN (the next free
// number, made with mkdir so two starts never share one), and runs/latest is a symlink to the
// newest, replaced atomically (a symlink under a temporary name, renamed over it). --resume
// without --out continues runs/latest's target. Rank 0 decides and broadcasts the name, so the
// ranks need no shared filesystem. A runs/latest that is a real folder (vae-dist before run
// folders wrote there) is left alone: a fresh run says so, --resume continues it.

enum RunFolders {
    static let root = "runs"
    static let latest = "runs/latest"

    /// The run folder of a training without --out, the same on every rank (rank 0 chooses).
    /// `notes` receives what rank 0 has to say about runs/latest.
    static func choose(resume: Bool, communicator: any Communicator, notes: inout [String]) throws -> String {
        var name: [UInt8] = []
        var failure: (any Error)?
        if communicator.isRoot {
            do {
                name = Array((resume ? resumeFolder() : try makeNext(notes: &notes)).utf8)
            } catch {
                failure = error
            }
        }
        var length = [Int64(failure == nil ? name.count : -1)]
        try communicator.broadcast(&length, root: 0)
        if length[0] < 0 {
            let error = failure ?? TrainingError.training("rank 0 could not make a run folder under \(root)/")
            throw communicator.size > 1 ? FailedOnEveryRank(error: error) : error
        }
        if !communicator.isRoot { name = [UInt8](repeating: 0, count: Int(length[0])) }
        try communicator.broadcast(&name, root: 0)
        return String(decoding: name, as: UTF8.self)
    }

    /// --resume without --out: runs/latest's target (runs/NNNN), or runs/latest itself when it
    /// is a real folder (or missing: the error then names it).
    static func resumeFolder() -> String {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: latest) else { return latest }
        return target.hasPrefix("/") ? target : (root as NSString).appendingPathComponent(target)
    }

    /// Rank 0: mkdir runs/NNNN, one past the highest number there (mkdir fails on a name another
    /// start took first: the next one), then runs/latest -> NNNN.
    static func makeNext(notes: inout [String]) throws -> String {
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        } catch {
            throw TrainingError.file(path: root, reason: "cannot be created (\((error as NSError).localizedDescription)); pass --out")
        }
        let numbers = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap { name in
            name.allSatisfy(\.isNumber) ? Int(name) : nil
        }
        var number = (numbers.max() ?? 0) + 1
        while true {
            let folder = (root as NSString).appendingPathComponent(String(format: "%04d", number))
            if mkdir(folder, 0o755) == 0 {
                if let note = link(latestTo: folder) { notes.append(note) }
                return folder
            }
            guard errno == EEXIST else {
                throw TrainingError.file(path: folder, reason: "cannot be created (\(String(cString: strerror(errno)))); pass --out")
            }
            number += 1
        }
    }

    /// Points runs/latest at `folder` (a relative link: runs/ may move) atomically. A real
    /// folder named runs/latest is left alone; returns the note that says so.
    static func link(latestTo folder: String) -> String? {
        var status = stat()
        if lstat(latest, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR {
            return "vae-dist: note: \(latest) is a folder (a run of an older vae-dist), left alone; this run is in \(folder)"
        }
        let temporary = (root as NSString).appendingPathComponent(".latest.link-\(getpid())")
        unlink(temporary)
        guard symlink((folder as NSString).lastPathComponent, temporary) == 0, rename(temporary, latest) == 0 else {
            unlink(temporary)
            return "vae-dist: note: could not point \(latest) at \(folder) (\(String(cString: strerror(errno))))"
        }
        return nil
    }
}
