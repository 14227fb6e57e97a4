import Foundation
import VAECheckpoint
import VAEData
import VAEDistributed
import VAEFiles
import VAEKernelDispatch
import VAEKernels
import VAEOutputs

// The run record: what a run was and where it ran, so it can be repeated and shared. Rank 0 writes
// OUT/run.json at the start (no `end_time` yet) and again at the end (with it), and every
// checkpoint carries the record as it stands in its metadata key `run`. `python/vae_dist/runs.py`
// (read_run_record) reads both.

/// What the executable knows about itself: the release and the source commit it was built from.
public struct BuildIdentity: Sendable {
    public var version: String
    /// `git rev-parse HEAD` (+ "-dirty") written by Launch/setup.sh, or "unknown".
    public var commit: String
    public init(version: String, commit: String) {
        self.version = version
        self.commit = commit
    }
}

extension Trainer {
    /// Every rank's host name, in rank order: each rank in turn broadcasts its own (a collective
    /// every rank makes).
    func gatherHostNames() throws -> [String] {
        var hosts: [String] = []
        let own = Array(hostName().utf8.prefix(255))  // gethostname: no name lookup
        for root in 0..<communicator.size {
            var name = [UInt8](repeating: 0, count: 256)
            if communicator.rank == root { name.replaceSubrange(0..<own.count, with: own) }
            try communicator.broadcast(&name, root: root)
            hosts.append(String(decoding: name.prefix { $0 != 0 }, as: UTF8.self))
        }
        return hosts
    }

    /// The record as a JSON object (keys sorted): the options as the run resolved them. Built
    /// as text (as metrics.jsonl is): the same allocations in every run.
    func runRecordJSON() -> String {
        var recorded = options
        recorded.data = Dataset.recordedSpec(options.data)
        var fields: [(String, String)] = [
            ("command_line", jsonText(commandLine.map(shellQuoted).joined(separator: " "))),
            ("commit", jsonText(build.commit)),
        ]
        if let endTime { fields.append(("end_time", jsonText(Self.timestamp(endTime)))) }
        fields += [
            ("hosts", "[" + hosts.map(jsonText).joined(separator: ", ") + "]"),
            ("isa", jsonText("\(Kernels.choice.isa)")),
            ("options", canonicalJSON(CheckpointConfig(model: modelConfig, training: recorded))),
            ("ranks", "\(communicator.size)"), ("start_time", jsonText(Self.timestamp(startTime))),
            ("threads", "\(model.threads.count)"), ("version", jsonText(build.version)),
        ]
        return jsonObject(fields)
    }

    /// Rank 0: OUT/run.json, replaced atomically.
    func writeRunRecord() throws {
        guard communicator.isRoot else { return }
        try AtomicFile.write(Array((runRecordJSON() + "\n").utf8), to: (options.output as NSString).appendingPathComponent("run.json"))
    }

    /// ISO 8601 in UTC, to the second: 2026-12-06T02:22:41Z.
    static func timestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec)
    }
}

/// A JSON string literal.
func jsonText(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

/// `word` as a POSIX shell reads it back: as is when it is plain, else in single quotes.
func shellQuoted(_ word: String) -> String {
    let plain = !word.isEmpty && word.unicodeScalars.allSatisfy {
        CharacterSet.alphanumerics.contains($0) || "-_./=:,+@%".unicodeScalars.contains($0)
    }
    return plain ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
